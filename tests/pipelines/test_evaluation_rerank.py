"""evaluation.rerank.normalize reaches re-ranking: features L2-normalised by default, raw if off
(seen in the distances of the predictions the pipeline writes)."""

import matplotlib
import numpy as np
import pandas as pd
import pytest
from builders import TRAINING_DATASET, base_parameters, run_pipeline

from clip_reid.metrics import re_rank
from clip_reid.metrics.protocol import excluded_from_ranking
from clip_reid.pipelines.evaluation import create_pipeline
from clip_reid.pipelines.evaluation import nodes as evaluation_nodes

matplotlib.use("Agg")
NO_CAPTIONS = pd.DataFrame(columns=["path", "pid", "caption", "source"])


def _top1_distances(query, gallery, rerank: dict, normalize: bool) -> np.ndarray:
    """Each query's closest re-ranked distance over the gallery items the protocol keeps."""
    distances = re_rank(query["features"], gallery["features"], rerank["k1"], rerank["k2"],
                        rerank["lambda_value"], metric=rerank["metric"],
                        normalize=normalize).numpy()
    excluded = excluded_from_ranking(query["pids"].numpy()[:, None],
                                     query["camids"].numpy()[:, None],
                                     gallery["pids"].numpy()[None], gallery["camids"].numpy()[None])
    return np.where(excluded, np.inf, distances).min(axis=1)


@pytest.mark.parametrize("normalize", [None, True, False])
def test_the_evaluation_rerank_block_is_passed_through(
    tiny_index, tiny_params, tiny_backbone, normalize
):
    evaluation = base_parameters("evaluation")["evaluation"]
    rerank = dict(evaluation["rerank"], enabled=True, k1=5, k2=2)
    if normalize is None:
        assert rerank["normalize"] is True  # the default, as the official evaluator
    else:
        rerank["normalize"] = normalize
    checkpoint = evaluation_nodes.untrained_model(tiny_index, tiny_backbone, tiny_params["model"],
                                                  tiny_params["trainer"])
    outputs = run_pipeline(create_pipeline(), {
        "reid_model": checkpoint, "image_index": tiny_index, **TRAINING_DATASET,
        "params:evaluation": dict(evaluation, rerank=rerank), "image_captions": NO_CAPTIONS,
        "params:trainer": tiny_params["trainer"]})
    written = outputs["query_predictions"]["distance"].to_numpy(dtype=float)
    query, gallery = outputs["query_features"], outputs["gallery_features"]
    used = normalize is not False
    np.testing.assert_allclose(written, _top1_distances(query, gallery, rerank, used), rtol=1e-6)
    assert not np.allclose(written, _top1_distances(query, gallery, rerank, not used))
