import pytest
from builders import run_pipeline
from matplotlib.figure import Figure

from clip_reid.inference import FeatureExtractor, GalleryIndex, InvalidTextError
from clip_reid.inference.gallery_store import embed_into_milvus
from clip_reid.inference.listing import frame_timestamps
from clip_reid.inference.text_search import TextSearchSettings
from clip_reid.io import MilvusGalleryDataset
from clip_reid.pipelines.evaluation.nodes import untrained_model
from clip_reid.pipelines.text_search import create_pipeline
from clip_reid.pipelines.text_search.nodes import read_text_queries
from clip_reid.settings_base import SettingsError

SETTINGS = {"queries": None, "queries_file": None, "top_k": 3, "truncate": False,
            "batch_size": 8, "cameras": None, "time_from": None, "time_to": None}


@pytest.fixture
def model_and_gallery(tiny_index, tiny_params, tiny_backbone):
    checkpoint = untrained_model(tiny_index, tiny_backbone, tiny_params["model"], {})
    gallery = tiny_index[tiny_index.split == "gallery"]
    index = GalleryIndex.build(FeatureExtractor(checkpoint), gallery["path"].tolist(),
                               gallery["pid"].tolist(), gallery["camid"].tolist())
    return checkpoint, index


def _run(checkpoint, index, store=None, **settings):
    """The pipeline over a GalleryIndex, or (``store``: (reference, dataset)) a Milvus one."""
    reference, dataset = store or (index, MilvusGalleryDataset(uri="unused.db"))
    return run_pipeline(create_pipeline(), {
        "reid_model": checkpoint, "gallery_index": reference, "gallery_store": dataset.load(),
        "params:text_search": {**SETTINGS, **settings}})


def test_a_milvus_gallery_gives_the_faiss_results_within_the_cameras(model_and_gallery,
                                                                      tiny_index, tmp_path):
    checkpoint, index = model_and_gallery
    gallery = tiny_index[tiny_index.split == "gallery"]
    gallery = gallery.assign(timestamp=frame_timestamps(gallery))
    dataset = MilvusGalleryDataset(uri=str(tmp_path / "gallery.db"))
    with dataset.load() as handle:
        reference = embed_into_milvus(FeatureExtractor(checkpoint), gallery, handle.gallery,
                                      "cosine")
    filters = {"queries": "a man in black;a woman in red", "cameras": "0;2"}
    stored = _run(checkpoint, index, (reference, dataset), **filters)["text_search.results"]
    expected = _run(checkpoint, index, **filters)["text_search.results"]
    assert stored[["query", "rank", "pid", "camid", "path"]].equals(
        expected[["query", "rank", "pid", "camid", "path"]])
    assert (stored["similarity"] - expected["similarity"]).abs().max() < 1e-5
    assert set(stored["camid"]) <= {0, 2}


def test_results_and_pictures_match_gallery_search(model_and_gallery):
    checkpoint, index = model_and_gallery
    queries = ["a woman in a red top", "a man with a backpack"]
    out = _run(checkpoint, index, queries=queries)
    results = out["text_search.results"]
    assert list(results.columns) == ["query", "rank", "pid", "camid", "path", "similarity"]
    assert results["query"].tolist() == [q for q in queries for _ in range(3)]
    assert results["rank"].tolist() == [1, 2, 3, 1, 2, 3]
    expected = index.search_text(FeatureExtractor(checkpoint).encode_text(queries), k=3)
    assert results["pid"].tolist() == sum(expected["topk_pids"].tolist(), [])
    assert results["path"].tolist() == sum(expected["topk_paths"].tolist(), [])
    for _, answers in results.groupby("query"):
        assert answers["similarity"].is_monotonic_decreasing
    figures = out["text_search.figures"]
    assert list(figures) == ["01_a-woman-in-a-red-top.png", "02_a-man-with-a-backpack.png"]
    assert all(isinstance(figure, Figure) for figure in figures.values())
    assert len(figures["01_a-woman-in-a-red-top.png"].axes) == 3


def test_queries_are_read_from_the_settings(tmp_path):
    file = tmp_path / "queries.txt"
    file.write_text("a man in black shorts\n")
    settings = {**SETTINGS, "queries": "a woman; a man", "queries_file": str(file)}
    assert read_text_queries(settings) == ["a woman", "a man", "a man in black shorts"]
    with pytest.raises(SettingsError, match="text_search.top_k"):
        read_text_queries({**SETTINGS, "top_k": 0})


def test_bad_text_and_a_foreign_gallery_are_refused(model_and_gallery, tiny_index, tiny_params,
                                                    tiny_backbone):
    checkpoint, index = model_and_gallery
    with pytest.raises(InvalidTextError, match="query 1 is empty"):
        _run(checkpoint, index, queries="a man;  ;a woman")
    with pytest.raises(InvalidTextError, match="tokens long"):
        _run(checkpoint, index, queries=" ".join(["red"] * 90))
    assert len(_run(checkpoint, index, queries=" ".join(["red"] * 90), truncate=True)[
        "text_search.results"]) == 3
    other = untrained_model(tiny_index, tiny_backbone,
                            {**tiny_params["model"], "image_size": [64, 48]}, {})
    with pytest.raises(ValueError, match="embedded by model .* re-embed"):
        _run(other, index, queries="a man")


def test_pipeline_is_namespaced_with_public_inputs():
    pipeline = create_pipeline()
    assert pipeline.inputs() == {"reid_model", "gallery_index", "gallery_store",
                                 "params:text_search"}
    assert pipeline.outputs() == {"text_search.results", "text_search.figures"}


def test_a_bad_filter_is_refused_with_the_settings():
    with pytest.raises(ValueError, match="Cameras must be integers"):
        TextSearchSettings.from_params({**SETTINGS, "cameras": "1;x"}, "text_search")
    settings = TextSearchSettings.from_params({**SETTINGS, "cameras": "3;1", "time_to": 9.5},
                                              "text_search")
    assert settings.where.expression() == "camid in [1, 3] and timestamp <= 9.5"
