import matplotlib
import numpy as np
import pytest
import torch
from PIL import Image

from clip_reid.evaluation import EvaluationSettings, FeatureSet, Ranking
from clip_reid.metrics import evaluate_rank, re_rank
from clip_reid.metrics.distance import compute_distance_matrix

matplotlib.use("Agg")


def _pair(seed=0, num_ids=6, per_id=3, folder=None):
    """Query: one image per identity (camera 0); gallery: ``per_id`` noisy copies on camera 1.
    With ``folder``, the paths are real (blank) images there, for the ranked-results figure."""
    generator = torch.Generator().manual_seed(seed)
    centres = torch.randn(num_ids, 8, generator=generator)
    query = FeatureSet(centres + 0.3 * torch.randn(num_ids, 8, generator=generator),
                       np.arange(num_ids), np.zeros(num_ids, dtype=int),
                       _paths("q", num_ids, folder), "model")
    gallery_pids = np.repeat(np.arange(num_ids), per_id)
    gallery = FeatureSet(centres[gallery_pids] + 0.6 * torch.randn(len(gallery_pids), 8,
                                                                   generator=generator),
                         gallery_pids, np.ones(len(gallery_pids), dtype=int),
                         _paths("g", len(gallery_pids), folder), "model")
    return query, gallery


def _paths(prefix, count, folder):
    paths = [f"{prefix}{i}.png" if folder is None else str(folder / f"{prefix}{i}.png")
             for i in range(count)]
    if folder is not None:
        for path in paths:
            Image.new("RGB", (4, 8)).save(path)
    return paths


def test_dense_ranking_reports_what_the_array_evaluator_computes(tmp_path):
    query, gallery = _pair(folder=tmp_path)
    settings = EvaluationSettings(top_k=4, ranked_queries=2)
    outcome = Ranking(query, gallery, settings).outcome()
    distances = compute_distance_matrix(query.features, gallery.features, "cosine")
    expected = evaluate_rank(distances, query.pids, gallery.pids, query.camids, gallery.camids)
    assert outcome.report["mAP"] == pytest.approx(expected.mAP)
    assert outcome.report["rank1"] == pytest.approx(expected.rank(1))
    order = distances.numpy().argsort(axis=1, kind="stable")[:, :4]
    predictions = outcome.predictions
    assert predictions["query_path"].tolist() == list(query.paths)
    assert predictions["predicted_pid"].tolist() == gallery.pids[order[:, 0]].tolist()
    assert predictions["topk_paths"][0].split() == [gallery.paths[i] for i in order[0]]
    assert outcome.report["settings"]["top_k"] == 4 and len(outcome.cmc_figure.axes) == 1


def test_faiss_retrieval_of_the_whole_gallery_equals_dense(tmp_path):
    query, gallery = _pair(seed=1, folder=tmp_path)
    dense = Ranking(query, gallery, EvaluationSettings()).outcome()
    faiss = Ranking(query, gallery, EvaluationSettings(retrieval="faiss", retrieval_k=100)
                    ).outcome()
    assert faiss.report["mAP"] == pytest.approx(dense.report["mAP"], abs=1e-6)
    assert faiss.predictions["topk_pids"].tolist() == dense.predictions["topk_pids"].tolist()


@pytest.mark.parametrize("normalize", [True, False])
def test_re_ranking_uses_the_rerank_block(normalize):
    query, gallery = _pair(seed=2)
    rerank = {"enabled": True, "k1": 4, "k2": 2, "normalize": normalize}
    settings = EvaluationSettings.from_params({"rerank": rerank}, "evaluation")
    ranking = Ranking(query, gallery, settings)
    expected = re_rank(query.features, gallery.features, 4, 2, 0.3, metric="euclidean",
                       normalize=normalize)
    assert np.allclose(ranking.distances_of(np.arange(len(query))), expected.numpy())


def test_query_and_gallery_of_different_models_or_widths_are_refused():
    query, gallery = _pair()
    other = FeatureSet(gallery.features, gallery.pids, gallery.camids, gallery.paths, "another")
    with pytest.raises(ValueError, match="from model model, gallery features from another"):
        Ranking(query, other, EvaluationSettings())
    narrow = FeatureSet(gallery.features[:, :4], gallery.pids, gallery.camids, gallery.paths,
                        "model")
    with pytest.raises(ValueError, match="8-d but gallery features 4-d"):
        Ranking(query, narrow, EvaluationSettings())


def test_the_old_rerank_metric_key_is_refused_with_its_new_name():
    from clip_reid.settings_base import SettingsError

    with pytest.raises(SettingsError, match="evaluation.rerank.metric .*is now called "
                       "evaluation.rerank.distance"):
        EvaluationSettings.from_params({"rerank": {"metric": "cosine"}}, "evaluation")
