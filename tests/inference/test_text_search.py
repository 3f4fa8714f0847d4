"""Sentences for a text search, and the table of the gallery images that answer them."""

import pytest
from builders import write_labelled_crops

from clip_reid.inference import FeatureExtractor, GalleryIndex
from clip_reid.inference.text_search import (
    RESULT_COLUMNS,
    TextSearchSettings,
    read_sentences,
    search_by_text,
)


def test_sentences_from_a_string_a_list_and_a_file(tmp_path):
    file = tmp_path / "queries.txt"
    file.write_text("# my searches\na man in black shorts\n\n  an elderly woman  \n")
    settings = TextSearchSettings(queries="a woman in a red top; a man", queries_file=str(file))
    assert read_sentences(settings) == ["a woman in a red top", "a man",
                                        "a man in black shorts", "an elderly woman"]
    assert read_sentences(TextSearchSettings(queries=("x y",))) == ["x y"]
    with pytest.raises(ValueError, match="No text query"):
        read_sentences(TextSearchSettings())
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        read_sentences(TextSearchSettings(queries_file=str(tmp_path / "missing.txt")))


@pytest.fixture(scope="module")
def gallery(rn_checkpoint, tmp_path_factory):
    paths = write_labelled_crops(tmp_path_factory.mktemp("gallery"), [1, 2, 3, 4])
    extractor = FeatureExtractor(rn_checkpoint)
    return extractor, GalleryIndex.build(extractor, paths, [1, 2, 3, 4], camids=[0, 1, 2, 3])


def test_one_row_per_sentence_and_rank_as_search_text_ranks(gallery):
    extractor, index = gallery
    queries = ["a woman in a red top", "a man with a backpack"]
    results = search_by_text(queries, extractor, index, TextSearchSettings(top_k=3))
    assert list(results.columns) == RESULT_COLUMNS
    assert results["query"].tolist() == [q for q in queries for _ in range(3)]
    assert results["rank"].tolist() == [1, 2, 3, 1, 2, 3]
    expected = index.search_text(extractor.encode_text(queries), k=3)
    assert results["pid"].tolist() == sum(expected["topk_pids"].tolist(), [])
    assert (results["camid"] == results["pid"] - 1).all()  # each path's own camera
    assert results["similarity"].tolist() == pytest.approx(
        [1 - d for d in sum(expected["topk_distances"].tolist(), [])])


def test_a_gallery_of_another_model_is_refused(gallery, make_checkpoint):
    _, index = gallery
    other = FeatureExtractor(make_checkpoint(seed=1))
    with pytest.raises(ValueError, match="embedded by model .* re-embed"):
        search_by_text(["a man"], other, index, TextSearchSettings())
