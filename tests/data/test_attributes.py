import numpy as np
import pandas as pd
import pytest
import scipy.io
from builders import SHARED_DATASETS

from clip_reid.data.attributes import (
    ATTRIBUTE_FIELDS,
    AttributeFileError,
    read_attribute_mat,
    write_attribute_mat,
)

REAL = SHARED_DATASETS / "market1501_attributes" / "market_attribute.mat"


def _frame() -> pd.DataFrame:
    rows = []
    for split, pid in [("train", 2), ("train", 7), ("test", 1)]:
        row = {"split": split, "pid": pid} | {f: 1 for f in ATTRIBUTE_FIELDS}
        rows.append(row | {"age": 3, "upred": 2, "downblue": 2, "shoe": 4})
    return pd.DataFrame(rows)


def test_round_trip_keeps_values_and_extra_fields(tmp_path):
    path = tmp_path / "attrs.mat"
    write_attribute_mat(path, _frame())
    loaded = read_attribute_mat(path)
    pd.testing.assert_frame_equal(loaded[_frame().columns], _frame(), check_dtype=False)


def test_written_layout_matches_the_real_schema(tmp_path):
    path = tmp_path / "attrs.mat"
    write_attribute_mat(path, _frame())
    train = scipy.io.loadmat(path)["market_attribute"][0, 0]["train"][0, 0]
    assert train["age"].dtype == np.uint8 and train["age"].shape == (1, 2)
    assert [str(np.asarray(c).ravel()[0]) for c in train["image_index"].ravel()] == ["0002", "0007"]


def test_missing_field_is_named(tmp_path):
    path = tmp_path / "attrs.mat"
    write_attribute_mat(path, _frame())
    content = scipy.io.loadmat(path)
    train = content["market_attribute"][0, 0]["train"][0, 0]
    fields = {n: train[n] for n in train.dtype.names if n != "hat"}
    test = content["market_attribute"][0, 0]["test"][0, 0]
    scipy.io.savemat(path, {"market_attribute": {
        "train": fields, "test": {n: test[n] for n in test.dtype.names}}})
    with pytest.raises(AttributeFileError, match=r"train lacks field\(s\) \['hat'\]"):
        read_attribute_mat(path)


def test_not_an_attribute_file(tmp_path):
    path = tmp_path / "other.mat"
    scipy.io.savemat(path, {"x": np.zeros(3)})
    with pytest.raises(AttributeFileError, match="no 'market_attribute' struct"):
        read_attribute_mat(path)


@pytest.mark.skipif(not REAL.is_file(), reason="shared Market-1501 attribute file not present")
def test_real_market_attribute_file():
    attributes = read_attribute_mat(REAL)
    assert (attributes.split == "train").sum() == 751
    assert (attributes.split == "test").sum() == 750
    assert attributes.pid.is_unique
    assert set(attributes.age) <= {1, 2, 3, 4}


def test_written_file_has_no_creation_time(tmp_path):
    path = tmp_path / "attrs.mat"
    write_attribute_mat(path, _frame())
    header = path.read_bytes()[:116]
    assert b"Created on" not in header and header.startswith(b"MATLAB 5.0 MAT-file")
