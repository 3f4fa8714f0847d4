import copy
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

import clip_reid
from clip_reid.data.transforms import build_test_transform
from clip_reid.inference import FeatureExtractor, InvalidImageError


def _images(count: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (96 + i, 48, 3), dtype=np.uint8) for i in range(count)]


def _direct_features(checkpoint, images, camids=None) -> torch.Tensor:
    """What the evaluation pipeline computes: test transform, model in eval mode."""
    norm = checkpoint.normalization
    model = checkpoint.model()
    transform = build_test_transform(model.config.image_size, norm.mean, norm.std)
    batch = torch.stack([transform(Image.fromarray(image)) for image in images])
    with torch.no_grad():
        return model.eval()(batch, camids)


def test_features_equal_the_eval_model_output_in_batches(rn_checkpoint):
    images = _images(5)
    extractor = FeatureExtractor(rn_checkpoint, batch_size=2)
    features = extractor(images)
    assert features.dtype == torch.float32 and features.shape == (5, extractor.feature_dim)
    assert extractor.feature_dim == 640 and extractor.image_size == (64, 32)
    assert torch.allclose(features, _direct_features(rn_checkpoint, images), atol=1e-5)
    assert features.std(0).mean() > 0.01  # images give different features: a real comparison


def test_checkpoint_file_and_top_level_export(tmp_path, rn_checkpoint):
    path = tmp_path / "reid_model.pt"
    torch.save(rn_checkpoint.to_state(), path)
    images = _images(2)
    from_file = clip_reid.FeatureExtractor(str(path))(images)
    assert torch.allclose(from_file, FeatureExtractor(rn_checkpoint)(images))
    assert FeatureExtractor(path).fingerprint == rn_checkpoint.fingerprint


def test_sie_models_need_camids(make_checkpoint):
    checkpoint = make_checkpoint("tiny-vit", num_cameras=3)
    extractor = FeatureExtractor(checkpoint)
    images = _images(2)
    with pytest.raises(ValueError, match="camera embedding.*pass camids"):
        extractor(images)
    with pytest.raises(ValueError, match=r"camids must be in \[0, 3\)"):
        extractor(images, camids=[0, 3])
    expected = _direct_features(checkpoint, images, torch.tensor([2, 1]))
    assert torch.allclose(extractor(images, camids=[2, 1]), expected, atol=1e-5)


def test_input_errors(rn_checkpoint):
    extractor = FeatureExtractor(rn_checkpoint)
    with pytest.raises(ValueError, match="No images"):
        extractor([])
    with pytest.raises(ValueError, match="list of images, got a single str"):
        extractor("person.jpg")
    with pytest.raises(InvalidImageError, match="item 1"):
        extractor([_images(1)[0], b"not an image"])
    with pytest.raises(ValueError, match="backend must be one of"):
        FeatureExtractor(rn_checkpoint, backend="tensorrt")
    with pytest.raises(TypeError, match="ReidCheckpoint.from_state"):
        FeatureExtractor(rn_checkpoint.to_state())


def test_cached_returns_one_extractor_per_model_and_batch_size(rn_checkpoint, make_checkpoint):
    served = rn_checkpoint.published()
    first = FeatureExtractor.cached(copy.deepcopy(served), batch_size=4)
    assert FeatureExtractor.cached(copy.deepcopy(served), batch_size=4) is first  # per request
    assert FeatureExtractor.cached(rn_checkpoint, batch_size=4) is first  # same weights
    assert first.fingerprint == served.to_state()["fingerprint"] == rn_checkpoint.fingerprint
    other = FeatureExtractor.cached(make_checkpoint(seed=1), batch_size=4)
    assert other is not first and other.fingerprint != first.fingerprint
    assert FeatureExtractor.cached(rn_checkpoint, batch_size=8) is not first
    assert FeatureExtractor.cached(rn_checkpoint, batch_size=8).batch_size == 8


def test_importing_the_package_stays_light():
    code = "import sys, clip_reid; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)
