"""metrics/ is pure functions over arrays: it imports nothing else of the project, so it can be
read, tested and reused without the data, model or inference layers."""

import ast
import subprocess
import sys
from pathlib import Path

METRICS = Path(__file__).parents[2] / "src" / "clip_reid" / "metrics"


def _imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_metrics_imports_only_metrics_of_the_project():
    outside = {
        f"{path.name}: {module}"
        for path in sorted(METRICS.glob("*.py"))
        for module in _imported_modules(path)
        if module.startswith("clip_reid") and not module.startswith("clip_reid.metrics")
    }
    assert not outside, sorted(outside)
    assert len(list(METRICS.glob("*.py"))) > 10  # the folder was found


def test_the_protocol_labels_load_without_torch():
    """The dataset readers use JUNK_PID / DISTRACTOR_PID: reading them costs no torch import."""
    code = ("import sys, clip_reid.data.image_index; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)
