"""Cross-dataset evaluation: which query and gallery evaluation scores, and the settings."""

import logging

import pandas as pd
import pytest

from clip_reid.data.evaluated_dataset import describe_dataset, evaluated_query_gallery
from clip_reid.data.image_index import DatasetLayoutError
from clip_reid.data.settings import DatasetRef, DatasetSettings, IngestionSettings
from clip_reid.settings_base import SettingsError

TRAINING = DatasetSettings(name="demo", root="data/01_raw/demo_market")
INGESTION = IngestionSettings(num_workers=1)


def test_no_target_evaluates_the_training_index_itself():
    index = pd.DataFrame({"split": ["train", "query"], "path": ["a.jpg", "b.jpg"]})
    evaluated, about = evaluated_query_gallery(index, TRAINING, DatasetRef(),
                                               INGESTION)
    assert evaluated is index
    assert about == {"name": "demo", "variant": None, "root": "data/01_raw/demo_market",
                     "cross_dataset": False}
    assert describe_dataset(about) == "demo (data/01_raw/demo_market)"


def test_target_folder_is_indexed_with_its_layout_and_only_query_gallery_kept(tiny_market,
                                                                              caplog):
    target = DatasetRef(name="market1501", root=str(tiny_market))
    with caplog.at_level(logging.INFO):
        evaluated, about = evaluated_query_gallery(pd.DataFrame(), TRAINING, target, INGESTION)
    assert sorted(evaluated["split"].unique()) == ["gallery", "query"]
    assert (evaluated["split"] == "query").sum() == 2
    assert (evaluated["split"] == "gallery").sum() == 4  # the junk crop is counted, not kept
    assert all(path.startswith(str(tiny_market)) for path in evaluated["path"])
    assert about["cross_dataset"] and about["trained_on"] == "demo (data/01_raw/demo_market)"
    assert "cross-dataset: the model's training set is demo (data/01_raw/demo_market)" in (
        describe_dataset(about))
    assert "1 junk (pid -1) dropped" in caplog.text
    assert "evaluated on market1501" in caplog.text


def test_a_missing_target_folder_names_it(tmp_path):
    target = DatasetRef(name="market1501", root=str(tmp_path / "nowhere"))
    with pytest.raises(DatasetLayoutError, match="nowhere"):
        evaluated_query_gallery(pd.DataFrame(), TRAINING, target, INGESTION)


def test_a_name_without_a_root_is_refused_naming_the_block():
    with pytest.raises(SettingsError, match="evaluation.dataset: name is 'market1501' but root"):
        DatasetRef.from_params({"name": "market1501"}, "evaluation.dataset")


def test_a_root_without_a_name_reads_the_market_layout(tiny_market):
    target = DatasetRef.from_params({"root": str(tiny_market)}, "evaluation.dataset")
    evaluated, about = evaluated_query_gallery(pd.DataFrame(), TRAINING, target, INGESTION)
    assert about["name"] == "demo" and (evaluated["split"] == "gallery").sum() == 4


def test_unknown_layout_is_refused_with_the_choices():
    with pytest.raises(SettingsError, match="evaluation.dataset.name.*market1501"):
        DatasetRef.from_params({"name": "market", "root": "x"}, "evaluation.dataset")
