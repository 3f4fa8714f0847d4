import numpy as np
import pytest
import torch

from clip_reid.evaluation import FeatureSet


def _set(count=3, dim=4) -> FeatureSet:
    return FeatureSet(torch.arange(count * dim, dtype=torch.float32).reshape(count, dim),
                      np.arange(count), [0] * count, [f"{i}.jpg" for i in range(count)], "m1")


def test_state_round_trip_keeps_every_row_and_the_model():
    features = _set()
    state = features.to_state()
    assert isinstance(state["pids"], torch.Tensor) and state["paths"] == ["0.jpg", "1.jpg", "2.jpg"]
    loaded = FeatureSet.from_state(state)
    assert torch.equal(loaded.features, features.features) and loaded.paths == features.paths
    assert loaded.pids.dtype == np.int64 and loaded.fingerprint == "m1" and len(loaded) == 3


def test_a_state_written_before_fingerprints_loads_with_an_unknown_model():
    state = _set().to_state()
    del state["fingerprint"]
    assert FeatureSet.from_state(state).fingerprint == ""


@pytest.mark.parametrize(("change", "message"), [
    ({"pids": np.arange(2)}, "pids has 2 entries"),
    ({"camids": [0.5, 0, 0]}, "camids must hold integer labels"),
    ({"paths": ["a.jpg"]}, "1 paths for 3 feature rows"),
    ({"features": torch.zeros(3)}, "features must be 2-d"),
])
def test_inconsistent_rows_are_refused_once_at_construction(change, message):
    fields = {"features": torch.zeros(3, 4), "pids": np.arange(3), "camids": [0, 0, 0],
              "paths": ["a", "b", "c"]} | change
    with pytest.raises(ValueError, match=message):
        FeatureSet(**fields)


def test_a_state_that_is_not_a_feature_set_names_its_source():
    with pytest.raises(ValueError, match="query_features.pt is not a feature set.*'paths'"):
        FeatureSet.from_state({"features": torch.zeros(1, 2)}, "query_features.pt")
