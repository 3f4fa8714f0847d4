import logging

import matplotlib
import pandas as pd
import pytest
from builders import REPO_ROOT, TRAINING_DATASET, base_parameters, run_pipeline

from clip_reid.data.evaluated_dataset import EvaluatedDatasetError
from clip_reid.data.synthetic import SyntheticConfig, generate_synthetic_market
from clip_reid.pipelines.evaluation import (
    create_baseline_pipeline,
    create_cross_dataset_pipeline,
    create_pipeline,
)
from clip_reid.pipelines.evaluation.nodes import untrained_model

matplotlib.use("Agg")
NO_CAPTIONS = pd.DataFrame(columns=["path", "pid", "caption", "source"])


@pytest.fixture
def evaluation_params():
    return base_parameters("evaluation")["evaluation"]


def test_evaluation_pipeline_outputs_and_printed_results(tiny_index, tiny_params, tiny_backbone,
                                                         evaluation_params, capsys, caplog):
    caplog.set_level(logging.INFO)
    checkpoint = untrained_model(tiny_index, tiny_backbone, tiny_params["model"],
                                 tiny_params["trainer"])
    out = run_pipeline(create_pipeline(), {"reid_model": checkpoint, "image_index": tiny_index,
                                           "image_captions": NO_CAPTIONS, **TRAINING_DATASET,
        "params:evaluation": evaluation_params, "params:trainer": tiny_params["trainer"]})
    printed = capsys.readouterr().out
    for name in ("Rank-1", "Rank-5", "Rank-10", "mAP", "mINP"):
        assert printed.count(f"Test Results - {name}: ") == 1
    assert "Validation Results" not in printed + caplog.text  # the results once, not twice
    metrics = out["evaluation_metrics"]
    assert 0.0 <= metrics["rank1"] <= metrics["rank5"] <= metrics["rank10"] <= 1.0
    assert metrics["num_valid_queries"] == int((tiny_index.split == "query").sum())
    predictions = out["query_predictions"]
    query = tiny_index[tiny_index.split == "query"]
    assert predictions["query_path"].tolist() == query["path"].tolist()
    hits = (predictions["predicted_pid"] == predictions["query_pid"]).mean()
    assert hits == pytest.approx(metrics["rank1"])
    assert len(predictions["topk_pids"][0].split()) == 10
    assert out["query_features"].features.shape == (len(query), 640)
    assert len(out["cmc_curve"].axes) == 1


def test_rerank_and_faiss_options(tiny_index, tiny_params, tiny_backbone, evaluation_params):
    checkpoint = untrained_model(tiny_index, tiny_backbone, tiny_params["model"],
                                 tiny_params["trainer"])
    dense = run_pipeline(create_pipeline(), {"reid_model": checkpoint, "image_index": tiny_index,
                                             "image_captions": NO_CAPTIONS, **TRAINING_DATASET,
        "params:evaluation": evaluation_params, "params:trainer": tiny_params["trainer"]})
    faiss = dict(evaluation_params, retrieval="faiss", retrieval_k=10_000)
    out = run_pipeline(create_pipeline(), {"reid_model": checkpoint, "image_index": tiny_index,
                                           "image_captions": NO_CAPTIONS,
                                           **TRAINING_DATASET, "params:evaluation": faiss,
                                           "params:trainer": tiny_params["trainer"]})
    assert out["evaluation_metrics"]["mAP"] == pytest.approx(dense["evaluation_metrics"]["mAP"],
                                                              abs=1e-6)
    for column in ("predicted_pid", "topk_pids"):
        assert out["query_predictions"][column].tolist() == (
            dense["query_predictions"][column].tolist())
    rerank = dict(evaluation_params, rerank=dict(evaluation_params["rerank"], enabled=True,
                                                 k1=5, k2=2))
    out = run_pipeline(create_pipeline(), {"reid_model": checkpoint, "image_index": tiny_index,
                                           "image_captions": NO_CAPTIONS,
                                           **TRAINING_DATASET, "params:evaluation": rerank,
                                           "params:trainer": tiny_params["trainer"]})
    assert 0.0 <= out["evaluation_metrics"]["mAP"] <= 1.0


def test_baseline_pipeline_evaluates_the_untrained_backbone(tiny_index, tiny_params,
                                                            tiny_backbone, evaluation_params):
    out = run_pipeline(create_baseline_pipeline(), {
        "image_index": tiny_index, "params:model": tiny_params["model"],
        "clip_backbone": tiny_backbone,
        "image_captions": NO_CAPTIONS, **TRAINING_DATASET,
        "params:evaluation": evaluation_params, "params:trainer": tiny_params["trainer"]})
    assert isinstance(out["baseline.query_predictions"], pd.DataFrame)
    assert 0.0 <= out["baseline.evaluation_metrics"]["mAP"] <= 1.0


def test_cross_dataset_evaluation_scores_the_other_dataset_and_says_so(
        tiny_index, tiny_params, tiny_backbone, evaluation_params, tmp_path, capsys):
    checkpoint = untrained_model(tiny_index, tiny_backbone, tiny_params["model"],
                                 tiny_params["trainer"])
    other = tmp_path / "other"
    generate_synthetic_market(other, SyntheticConfig(seed=11, num_train_ids=2, num_test_ids=5,
                                                     num_distractors=0, num_junk=0))
    cross = dict(evaluation_params, dataset={"name": "demo", "root": str(other)})
    out = run_pipeline(create_cross_dataset_pipeline(), {
        "reid_model": checkpoint, "image_index": tiny_index, "image_captions": NO_CAPTIONS,
        **TRAINING_DATASET, "params:evaluation": cross, "params:trainer": tiny_params["trainer"]})
    assert not {"evaluation_metrics", "query_predictions", "cmc_curve"} & set(out)  # not replaced
    out = {name.removeprefix("cross_dataset."): value for name, value in out.items()}
    metrics = out["evaluation_metrics"]
    assert metrics["dataset"] == {"name": "demo", "variant": None, "root": str(other),
                                  "cross_dataset": True,
                                  "trained_on": "demo (data/01_raw/demo_market)"}
    queries = out["query_predictions"]["query_path"]
    assert len(queries) == metrics["num_valid_queries"] > 0
    assert all(path.startswith(str(other)) for path in queries)  # not the training dataset's
    assert f"Evaluated on demo ({other}), cross-dataset" in capsys.readouterr().out
    assert out["text_retrieval_metrics"]["evaluated"] is False  # the demo's captions don't apply


def test_the_training_set_evaluation_ignores_evaluation_dataset_and_says_where_it_goes(
        tiny_index, tiny_params, tiny_backbone, evaluation_params, caplog):
    checkpoint = untrained_model(tiny_index, tiny_backbone, tiny_params["model"],
                                 tiny_params["trainer"])
    cross = dict(evaluation_params, dataset={"name": "demo", "root": "elsewhere"})
    out = run_pipeline(create_pipeline(), {"reid_model": checkpoint, "image_index": tiny_index,
                                           "image_captions": NO_CAPTIONS, **TRAINING_DATASET,
                                           "params:evaluation": cross,
                                           "params:trainer": tiny_params["trainer"]})
    assert out["evaluation_metrics"]["dataset"]["cross_dataset"] is False
    assert "--pipelines cross_dataset_evaluation" in caplog.text


def test_cross_dataset_evaluation_needs_the_dataset_named(tiny_index, evaluation_params):
    with pytest.raises(EvaluatedDatasetError, match="set evaluation.dataset.name and "):
        run_pipeline(create_cross_dataset_pipeline(), {
            "reid_model": {}, "image_index": tiny_index, "image_captions": NO_CAPTIONS,
            **TRAINING_DATASET, "params:evaluation": evaluation_params, "params:trainer": {}})


def test_cross_dataset_outputs_have_their_own_files():
    """The catalog gives `cross_dataset.*` files of their own, so the latest training-set
    evaluation (what the notebook and `--load-versions`-less reads see) stays in place."""
    from kedro.config import OmegaConfigLoader
    from kedro.io import DataCatalog

    conf = OmegaConfigLoader(str(REPO_ROOT / "conf"), base_env="base", default_run_env="base")
    catalog = DataCatalog.from_config(conf["catalog"])
    outputs = create_cross_dataset_pipeline().all_outputs()
    for name in ("evaluation_metrics", "query_predictions", "cmc_curve", "ranked_results",
                 "text_retrieval_metrics"):
        assert f"cross_dataset.{name}" in outputs
        own, training = (str(catalog.get(n)._filepath) for n in (f"cross_dataset.{name}", name))
        assert own != training and "cross_dataset_" in own
