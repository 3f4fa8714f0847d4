"""Secrets: credentials in `dataset.download.url` (`user:password@`, `?token=`,
presigned signatures) never reach a record: download errors and logs, the MLflow run's
parameters and its `runtime_params` tag (the command's `--params`) show them as `***`.

End to end (`kedro run --params dataset.download.url=...`, the tracking database searched for the
secret): tests/project/test_mlflow_hooks.py::test_run_is_tagged_and_records_no_credentials."""

import logging
import sqlite3

import mlflow
import pytest
from kedro.io import DataCatalog
from kedro.pipeline import node
from kedro_project import run_params
from mlflow.tracking import MlflowClient

from clip_reid.data.download import DownloadError, download_file, redact_url
from clip_reid.pipelines.data_ingestion.nodes import prepare_dataset
from clip_reid.project.redaction import redact, redact_text

SECRET_URL = "https://alice:s3cr3t-pw@example.org/market.zip?token=t0k3n-abc&v=2"
SHOWN_URL = "https://***@example.org/market.zip?token=***&v=2"
SECRETS = ("alice", "s3cr3t-pw", "t0k3n-abc")


@pytest.mark.parametrize(("text", "expected"), [
    (SECRET_URL, SHOWN_URL),
    ("s3://AKIA:SECRET@bucket/key", "s3://***@bucket/key"),
    ("https://ghp_abc@github.com/x.zip", "https://***@github.com/x.zip"),
    ("https://h/x.zip?X-Amz-Credential=AK%2F1&X-Amz-Signature=ff00",
     "https://h/x.zip?X-Amz-Credential=***&X-Amz-Signature=***"),
    ("https://h/x.zip?sig=abc&api_key=k", "https://h/x.zip?sig=***&api_key=***"),
    ("https://example.org/market.zip", "https://example.org/market.zip"),
    ("data/01_raw/Market-1501 (user@host notes)", "data/01_raw/Market-1501 (user@host notes)"),
])
def test_redact_text(text, expected):
    assert redact_text(text) == expected


def test_redact_copies_nested_values_without_changing_them():
    params = {"dataset": {"download": {"url": SECRET_URL, "sha256": None}}, "tags": ("a",),
              "seeds": [1, 2]}
    redacted = redact(params)
    assert redacted["dataset"]["download"]["url"].startswith("https://***@")
    assert redacted["tags"] == ("a",) and redacted["seeds"] == [1, 2]
    assert params["dataset"]["download"]["url"] == SECRET_URL


def test_redact_url_hides_credentials_and_query_values():
    assert redact_url("https://user:s3cret@host.org:8443/a/m.zip?token=abc&dl=1#frag") == (
        "https://***@host.org:8443/a/m.zip?token=***&dl=***#***")
    assert redact_url("https://ghp_TOKEN@host.org/m.zip") == "https://***@host.org/m.zip"
    assert redact_url("http://host.org/m.zip") == "http://host.org/m.zip"


def test_download_errors_and_logs_never_show_credentials(tmp_path, caplog):
    url = "http://alice:s3cretpw@127.0.0.1:9/market.zip?token=tok3n-value"
    with caplog.at_level(logging.DEBUG), pytest.raises(DownloadError) as raised:
        download_file(url, tmp_path / "market.zip", None, timeout=2)
    text = str(raised.value) + "".join(r.getMessage() for r in caplog.records)
    assert "127.0.0.1:9/market.zip?token=***" in text
    assert "s3cretpw" not in text and "tok3n-value" not in text and "alice" not in text
    assert raised.value.__cause__ is None  # the chained error would repeat the URL


def test_the_ingestion_node_fails_without_showing_them(tmp_path, caplog):
    url = "http://alice:s3cr3t-pw@127.0.0.1:9/market.zip?token=t0k3n-abc"
    dataset = {"name": "market1501", "root": str(tmp_path / "market"), "source": "download",
               "download": {"url": url, "cache_dir": str(tmp_path / "cache")}}
    with caplog.at_level(logging.DEBUG), pytest.raises(DownloadError) as raised:
        prepare_dataset(dataset)
    text = str(raised.value) + "".join(r.getMessage() for r in caplog.records)
    assert "127.0.0.1:9/market.zip?token=***" in text
    assert not any(secret in text for secret in SECRETS)


def _record(tmp_path, mlflow_hook, url: str):
    """A run recorded by the project's MLflow hook for `kedro run --pipeline data_ingestion
    --params dataset.download.url=<url>`; returns the tracking database and the run."""
    database = tmp_path / "mlflow.db"
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(f"sqlite:///{database}")
    experiment = mlflow.create_experiment("secrets", artifact_location=(tmp_path / "a").as_uri())
    dataset = {"name": "demo", "root": "data/01_raw/demo_market", "source": "download",
               "download": {"url": url, "sha256": None}}
    hook = mlflow_hook({"dataset": dataset})
    try:
        with mlflow.start_run(experiment_id=experiment) as run:
            hook.before_pipeline_run(run_params=run_params(
                "data_ingestion", {"dataset": {"download": {"url": url}}}),
                pipeline=None, catalog=None)
            hook.before_node_run(node(prepare_dataset, "params:dataset", "dataset_root"),
                                 DataCatalog(), {"params:dataset": dataset}, False)
            while mlflow.active_run():  # the node hook reopens the run, as in a Kedro run
                mlflow.end_run()
        return database, MlflowClient().get_run(run.info.run_id)
    finally:
        mlflow.set_tracking_uri(previous)


@pytest.fixture
def tracked(tmp_path, mlflow_hook):
    return _record(tmp_path, mlflow_hook, SECRET_URL)


def test_mlflow_parameters_and_tags_hold_no_credentials(tracked):
    database, run = tracked
    assert run.data.params["dataset.download.url"] == SHOWN_URL
    assert run.data.tags["runtime_params"] == str(
        {"dataset": {"download": {"url": SHOWN_URL}}})
    assert run.data.tags["pipeline"] == "data_ingestion"  # the hook ran in full
    with sqlite3.connect(database) as connection:
        dump = "\n".join(connection.iterdump())
    assert SHOWN_URL in dump
    assert not any(secret in dump for secret in SECRETS)


# URL forms beyond `user:pass@` and `?token=` kept parts of their secrets.
URL_FORMS = [
    ("https://alice:p@ssw0rd@example.org/m.zip", "https://***@example.org/m.zip",
     ("alice", "p@ssw0rd", "ssw0rd")),
    ("https://example.org/m.zip?dl=1&pass=hunter22x", "https://example.org/m.zip?dl=1&pass=***",
     ("hunter22x",)),
    ("https://example.org/cb#access_token=tok-9999&token_type=bearer",
     "https://example.org/cb#access_token=***&token_type=***", ("tok-9999",)),
    ("https://h.org/m.zip?client_secret=cs-1111&Signature=sg-2222&X-Goog-Credential=gc-3333"
     "&auth=au-4444&password=pw-5555&api-key=ak-6666&page=2",
     "https://h.org/m.zip?client_secret=***&Signature=***&X-Goog-Credential=***&auth=***"
     "&password=***&api-key=***&page=2",
     ("cs-1111", "sg-2222", "gc-3333", "au-4444", "pw-5555", "ak-6666")),
]


@pytest.mark.parametrize(("url", "shown", "secrets"), URL_FORMS,
                         ids=["@ in password", "&pass=", "#access_token=", "secret-like keys"])
def test_every_url_form_is_redacted_in_the_stored_record(tmp_path, mlflow_hook, url, shown,
                                                         secrets):
    """The MLflow parameter, the runtime_params tag and the whole tracking database."""
    database, run = _record(tmp_path, mlflow_hook, url)
    assert run.data.params["dataset.download.url"] == shown
    assert run.data.tags["runtime_params"] == str({"dataset": {"download": {"url": shown}}})
    with sqlite3.connect(database) as connection:
        dump = "\n".join(connection.iterdump())
    assert shown in dump
    assert not any(secret in dump for secret in secrets)
