"""Open-set identification of a batch of image and text queries against a labelled gallery."""

import base64
from pathlib import Path

import pandas as pd
import pytest
from builders import write_labelled_crops

from clip_reid.inference import UNKNOWN_PID, FeatureExtractor, GalleryIndex, InvalidImageError
from clip_reid.inference.identify import identify


@pytest.fixture(scope="module")
def served(rn_checkpoint, tmp_path_factory):
    """An extractor and a gallery of four crops (pids 1..4) it embedded."""
    paths = write_labelled_crops(tmp_path_factory.mktemp("gallery"), [1, 2, 3, 4])
    extractor = FeatureExtractor(rn_checkpoint, batch_size=2)
    return extractor, GalleryIndex.build(extractor, paths, [1, 2, 3, 4]), paths


def test_images_and_descriptions_are_answered_in_request_order(served):
    extractor, gallery, paths = served
    queries = pd.DataFrame({"image": [None, paths[2]], "text": ["a man in black", None],
                            "name": ["said", ""]})
    found = identify(queries, extractor, gallery, threshold=None, top_k=2)
    assert found["name"].tolist() == ["said", "query 1"]
    assert found.loc[1, "predicted_pid"] == 3 and found.loc[1, "distance"] == pytest.approx(
        0, abs=1e-5)
    assert found["topk_pids"].map(len).eq(2).all() and found["known"].all()


def test_a_far_image_is_unknown_but_a_description_never_is(served):
    extractor, gallery, paths = served
    queries = pd.DataFrame({"image": [paths[0], None], "text": [None, "a woman"]})
    found = identify(queries, extractor, gallery, threshold=-1.0, top_k=3)
    assert found["predicted_pid"].tolist()[0] == UNKNOWN_PID and not found.loc[0, "known"]
    assert found.loc[1, "known"] and found.loc[1, "predicted_pid"] in {1, 2, 3, 4}


@pytest.mark.parametrize("queries, error, message", [
    (pd.DataFrame({"name": ["x"]}), ValueError, "needs an 'image' column"),
    (pd.DataFrame({"image": []}), ValueError, "No query image"),
    (pd.DataFrame({"image": ["aGk=", None], "text": ["hi", None], "name": ["a", "b"]}),
     ValueError, "both given for a; neither given for b"),
    (pd.DataFrame({"image": ["bm90IGFuIGltYWdl", "aGk="], "name": ["one", "two"]}),
     InvalidImageError, "2 of 2 query image.*one.*two"),
])
def test_bad_queries_fail_with_every_reason(served, queries, error, message):
    extractor, gallery, _ = served
    with pytest.raises(error, match=message):
        identify(queries, extractor, gallery, 0.5, 3)


def test_a_server_refuses_paths_and_a_gallery_of_another_model(served, make_checkpoint):
    extractor, gallery, paths = served
    as_path = pd.DataFrame({"image": [paths[0]]})
    with pytest.raises(InvalidImageError, match="1 of 1"):
        identify(as_path, extractor, gallery, 0.5, 3, allow_paths=False)
    uploaded = pd.DataFrame({"image": [base64.b64encode(Path(paths[0]).read_bytes()).decode()]})
    assert identify(uploaded, extractor, gallery, 0.5, 3, allow_paths=False).loc[
        0, "predicted_pid"] == 1
    other = FeatureExtractor(make_checkpoint(seed=1))
    with pytest.raises(ValueError, match="The gallery was embedded by model"):
        identify(as_path, other, gallery, 0.5, 3)
