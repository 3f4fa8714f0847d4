import torch

from clip_reid.inference import FeatureExtractor
from clip_reid.inference.fingerprint import model_fingerprint


def test_fingerprint_is_stable_and_tracks_the_weights(rn_checkpoint, tmp_path):
    path = tmp_path / "reid_model.pt"
    torch.save({**rn_checkpoint, "epoch": 7}, path)  # metadata does not change the features
    first = FeatureExtractor(rn_checkpoint).fingerprint
    assert len(first) == 16
    assert FeatureExtractor(path).fingerprint == first
    state = dict(rn_checkpoint["state_dict"])
    state["bottleneck.running_mean"] = state["bottleneck.running_mean"] + 1e-3
    changed = {**rn_checkpoint, "state_dict": state}
    assert FeatureExtractor(changed).fingerprint != first
    assert model_fingerprint(rn_checkpoint) == first
