import pytest
from builders import run_pipeline

from clip_reid.data.market import DatasetLayoutError
from clip_reid.pipelines.data_ingestion import create_pipeline


def _run(dataset_params: dict) -> dict:
    inputs = {"params:dataset": dataset_params, "params:ingestion": {"num_workers": 1}}
    return run_pipeline(create_pipeline(), inputs)


def test_pipeline_indexes_a_local_market_tree(tiny_market):
    outputs = _run({"root": str(tiny_market), "source": "local"})
    index = outputs["image_index"]
    assert len(index) == 11
    assert outputs["ingestion_report"]["junk_dropped"]["gallery"] == 1
    stats = outputs["dataset_stats"].set_index("subset")
    assert stats.loc["gallery", "num_images"] == 4
    assert outputs["dataset_metrics"]["train.num_ids"] == {"value": 3.0, "step": 0}


def test_pipeline_generates_and_indexes_the_synthetic_demo(tmp_path):
    synthetic = {"seed": 3, "num_train_ids": 6, "num_test_ids": 5, "num_distractors": 3,
                 "num_junk": 2}
    outputs = _run({"root": str(tmp_path / "demo"), "source": "synthetic", "synthetic": synthetic})
    stats = outputs["dataset_stats"].set_index("subset")
    assert stats.loc["train", "num_ids"] == 6
    assert stats.loc["query", "num_cameras"] > 1
    assert outputs["ingestion_report"]["junk_dropped"]["gallery"] == 2


def test_pipeline_local_source_missing_folder_fails_clearly(tmp_path):
    with pytest.raises(DatasetLayoutError, match="Expected a dataset in Market-1501 layout"):
        _run({"root": str(tmp_path / "missing"), "source": "local"})


def test_download_source_without_url_explains(tmp_path):
    with pytest.raises(ValueError, match="dataset.download.url is empty"):
        _run({"root": str(tmp_path / "m"), "source": "download", "download": {"url": None}})
