"""conf/logging.yml: without a terminal, one plain line per log record."""

import re

from kedro_project import copy_project, kedro, output

PLAIN = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d (DEBUG|INFO|WARNING|ERROR|CRITICAL) [\w.]+: ")


def test_a_piped_run_logs_one_line_per_record(tmp_path):
    project = copy_project(tmp_path)
    result = kedro(project, "run", "--pipelines", "data_ingestion", "--env", "e2e")
    log = output(result)
    assert result.returncode == 0, log[-3000:]
    records = [line for line in log.splitlines() if PLAIN.match(line)]
    assert len(records) > 10
    assert any(line.endswith("Using 'conf/logging.yml' as logging configuration. You can change "
                             "this by setting the KEDRO_LOGGING_CONFIG environment variable "
                             "accordingly.") for line in records)  # 150 characters, one line
    assert any("Pipeline execution completed successfully" in line for line in records)
    rich_layout = [line for line in log.splitlines() if line.startswith(("[", " " * 20))]
    assert rich_layout == []  # no time column, no wrapped continuation lines
