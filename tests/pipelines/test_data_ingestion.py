import pytest
from builders import run_pipeline, write_crop

from clip_reid.data.image_index import DatasetLayoutError
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
    assert outputs["dataset_metrics"]["train_ids"] == {"value": 3.0, "step": 0}


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


def test_pipeline_reads_the_layout_dataset_name_selects(tmp_path, capsys):
    root = tmp_path / "VeRi"
    names = {"image_train": ["0001_c001_00016450_0.jpg", "0001_c002_00016460_0.jpg"],
             "image_query": ["0002_c002_00030600_0.jpg"],
             "image_test": ["0002_c002_00030600_0.jpg", "0002_c003_00030605_1.jpg"]}
    for folder, files in names.items():
        for i, name in enumerate(files):
            write_crop(root / folder / name, seed=i, size=(16, 32))
    outputs = _run({"name": "veri776", "root": str(root), "source": "local", "variant": None})
    report = outputs["ingestion_report"]
    assert (report["layout"], report["class_word"]) == ("veri776", "vehicle")
    assert outputs["dataset_stats"].set_index("subset").loc["gallery", "num_cameras"] == 2
    assert "=> veri776 statistics:" in capsys.readouterr().out


def test_wrong_layout_for_the_folder_names_what_is_missing(tiny_market):
    with pytest.raises(DatasetLayoutError, match=r"(?s)lacks the image folders.*Expected MSMT17"):
        _run({"name": "msmt17", "root": str(tiny_market), "source": "local"})


def test_synthetic_source_needs_the_demo_layout(tmp_path):
    with pytest.raises(ValueError, match="set dataset.name to demo"):
        _run({"name": "veri776", "root": str(tmp_path / "d"), "source": "synthetic"})
