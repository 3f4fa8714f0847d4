import math

import numpy as np
import pytest

from clip_reid.inference.gallery_filter import GalleryFilter


@pytest.mark.parametrize("cameras, expected", [
    ("3;4;5", (3, 4, 5)), ("5,3", (3, 5)), ([4, 4, 1], (1, 4)), (2, (2,)), ("", None),
    (None, None), ([], None), (float("nan"), None),
])
def test_cameras_are_read_from_lists_numbers_and_strings(cameras, expected):
    where = GalleryFilter.from_fields(cameras)
    assert (where.camids if where else None) == expected


def test_nothing_given_is_no_filter_and_a_window_alone_is_one():
    assert GalleryFilter.from_fields(None, "", float("nan")) is None
    assert GalleryFilter.from_fields(None, "10", None) == GalleryFilter(start=10.0)


@pytest.mark.parametrize("fields, message", [
    (("a;b",), "Cameras must be integers"),
    ((None, "noon"), "start must be a number"),
    ((None, 20, 10), r"starts \(20.0\) after it ends \(10.0\)"),
    ((None, math.inf), "must be a finite number"),
])
def test_bad_fields_are_refused_with_the_reason(fields, message):
    with pytest.raises(ValueError, match=message):
        GalleryFilter.from_fields(*fields)


def test_the_mask_and_the_milvus_expression_say_the_same():
    where = GalleryFilter(camids=(1, 3), start=5.0, end=7.5)
    camids = np.array([1, 3, 3, 2, 1])
    times = np.array([5.0, 7.5, 8.0, 6.0, np.nan])
    assert where.mask(camids, times).tolist() == [True, True, False, False, False]
    assert where.expression() == "camid in [1, 3] and timestamp >= 5.0 and timestamp <= 7.5"
    with pytest.raises(ValueError, match="camera filter is empty"):
        GalleryFilter(camids=())
