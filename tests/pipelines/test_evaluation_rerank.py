"""evaluation.rerank.normalize reaches re-ranking: features L2-normalised by default, raw if off."""

import matplotlib
import pandas as pd
import pytest
from builders import TRAINING_DATASET, base_parameters, run_pipeline

from clip_reid.metrics import evaluation as evaluation_module
from clip_reid.metrics import re_rank
from clip_reid.pipelines.evaluation import create_pipeline
from clip_reid.pipelines.evaluation import nodes as evaluation_nodes

matplotlib.use("Agg")
NO_CAPTIONS = pd.DataFrame(columns=["path", "pid", "caption", "source"])


@pytest.mark.parametrize("normalize", [None, True, False])
def test_the_evaluation_rerank_block_is_passed_through(
    tiny_index, tiny_params, tiny_backbone, monkeypatch, normalize
):
    calls = []

    def recording_re_rank(*args, **kwargs):
        calls.append(kwargs)
        return re_rank(*args, **kwargs)

    monkeypatch.setattr(evaluation_module, "re_rank", recording_re_rank)
    evaluation = base_parameters("evaluation")["evaluation"]
    rerank = dict(evaluation["rerank"], enabled=True, k1=5, k2=2)
    if normalize is None:
        assert rerank["normalize"] is True  # the default, as the official evaluator
    else:
        rerank["normalize"] = normalize
    checkpoint = evaluation_nodes.untrained_model(tiny_index, tiny_backbone, tiny_params["model"],
                                                  tiny_params["trainer"])
    run_pipeline(create_pipeline(), {"reid_model": checkpoint, "image_index": tiny_index,
                                     **TRAINING_DATASET,
                                     "params:evaluation": dict(evaluation, rerank=rerank),
                                     "image_captions": NO_CAPTIONS,
                                     "params:trainer": tiny_params["trainer"]})
    assert [call["normalize"] for call in calls] == [normalize is not False]
