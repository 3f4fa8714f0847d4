import dataclasses
from pathlib import Path

import pandas as pd
import pytest
from builders import TRAINING_DATASET, base_parameters, run_pipeline

from clip_reid.data.attribute_sentences import attribute_sentences
from clip_reid.data.attributes import read_attribute_mat
from clip_reid.data.caption_sources import attribute_captions
from clip_reid.evaluation.settings import EvaluationSettings
from clip_reid.pipelines.evaluation import create_baseline_pipeline, create_pipeline
from clip_reid.pipelines.evaluation.nodes import untrained_model
from clip_reid.settings_base import SettingsError


@pytest.fixture
def tiny_captions(tiny_index) -> pd.DataFrame:
    """The attribute sentences the synthetic generator's attribute file yields."""
    root = Path(tiny_index["path"].iloc[0]).parents[1]
    attributes = read_attribute_mat(root / "market_attribute.mat")
    return attribute_captions(attributes, tiny_index, attribute_sentences)


@pytest.fixture
def evaluation_params():
    return base_parameters("evaluation")["evaluation"]


def _inputs(tiny_index, tiny_captions, checkpoint, evaluation):
    return {"reid_model": checkpoint, "image_index": tiny_index, "image_captions": tiny_captions,
            **TRAINING_DATASET, "params:evaluation": evaluation, "params:trainer": {}}


def test_text_retrieval_metrics_of_test_identity_sentences(tiny_index, tiny_params,
                                                           tiny_backbone, tiny_captions,
                                                           evaluation_params):
    checkpoint = untrained_model(tiny_index, tiny_backbone, tiny_params["model"], {})
    out = run_pipeline(create_pipeline(),
                       _inputs(tiny_index, tiny_captions, checkpoint, evaluation_params))
    report = out["text_retrieval_metrics"]
    test_pids = set(tiny_index.loc[tiny_index.split != "train", "pid"]) - {0, -1}
    assert report["evaluated"] and report["num_identities"] == len(test_pids) == 6
    assert report["num_sentences"] == 2 * 6  # two attribute sentences per identity
    assert report["num_gallery"] == int((tiny_index.split == "gallery").sum())
    assert 0.0 <= report["rank1"] <= report["rank5"] <= report["rank10"] <= 1.0
    assert 0.0 < report["chance"]["rank1"] < report["chance"]["rank10"] <= 1.0
    assert set(out["text_retrieval_mlflow_metrics"]) == {
        "text_rank1", "text_rank5", "text_rank10", "text_mAP", "text_mINP"}


def test_text_retrieval_reports_why_it_did_not_run(tiny_index, tiny_params, tiny_backbone,
                                                  tiny_captions, evaluation_params):
    checkpoint = untrained_model(tiny_index, tiny_backbone, tiny_params["model"], {})
    old = dataclasses.replace(checkpoint, text_tower=None)
    out = run_pipeline(create_pipeline(),
                       _inputs(tiny_index, tiny_captions, old, evaluation_params))
    assert not out["text_retrieval_metrics"]["evaluated"]
    assert "retrain stage 2" in out["text_retrieval_metrics"]["reason"]
    off = dict(evaluation_params, text_retrieval={"enabled": False})
    out = run_pipeline(create_pipeline(), _inputs(tiny_index, tiny_captions, checkpoint, off))
    assert out["text_retrieval_metrics"]["reason"].endswith("enabled is false")
    csv_only = dict(evaluation_params, text_retrieval={"sources": ["csv"]})
    out = run_pipeline(create_pipeline(),
                       _inputs(tiny_index, tiny_captions, checkpoint, csv_only))
    assert "no caption of a test identity" in out["text_retrieval_metrics"]["reason"]


def test_text_settings_refuse_typos():
    settings = EvaluationSettings.from_params({}, "evaluation")
    assert settings.text_retrieval.sources == ("attributes",)
    with pytest.raises(SettingsError, match="evaluation.text_retrieval.sorces"):
        EvaluationSettings.from_params({"text_retrieval": {"sorces": None}}, "evaluation")


def test_baseline_writes_text_metrics_of_the_untrained_model(tiny_index, tiny_params,
                                                             tiny_backbone, tiny_captions,
                                                             evaluation_params):
    out = run_pipeline(create_baseline_pipeline(), {
        "image_index": tiny_index, "params:model": tiny_params["model"],
        "clip_backbone": tiny_backbone, "image_captions": tiny_captions,
        **TRAINING_DATASET, "params:evaluation": evaluation_params,
        "params:trainer": tiny_params["trainer"]})
    assert out["baseline.text_retrieval_metrics"]["evaluated"]
