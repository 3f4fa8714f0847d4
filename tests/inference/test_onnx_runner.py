import numpy as np
import pytest

from clip_reid.inference import FeatureExtractor
from clip_reid.modeling.onnx_export import export_onnx


def _images(count: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (96, 48 + i, 3), dtype=np.uint8) for i in range(count)]


def test_torch_and_onnx_backends_agree(rn_checkpoint, rn_onnx, tmp_path):
    images = _images(3)
    onnx_path = tmp_path / "model.onnx"
    onnx_path.write_bytes(rn_onnx)
    torch_features = FeatureExtractor(rn_checkpoint)(images)
    for model in (rn_onnx, onnx_path):
        onnx = FeatureExtractor(rn_checkpoint, backend="onnx", onnx_model=model, batch_size=2)
        assert (onnx(images) - torch_features).abs().max() < 1e-4
        assert onnx.fingerprint == FeatureExtractor(rn_checkpoint).fingerprint


def test_onnx_of_another_image_size_or_backbone_is_rejected(make_checkpoint, rn_checkpoint):
    for other in (make_checkpoint(image_size=(96, 48)), make_checkpoint("tiny-vit")):
        onnx_bytes = export_onnx(other.model())
        with pytest.raises(ValueError, match="export of another model"):
            FeatureExtractor(rn_checkpoint, backend="onnx", onnx_model=onnx_bytes)
    with pytest.raises(ValueError, match="needs onnx_model"):
        FeatureExtractor(rn_checkpoint, backend="onnx")


def test_onnx_backend_feeds_camera_ids_to_sie_models(make_checkpoint):
    checkpoint = make_checkpoint("tiny-vit", num_cameras=3)
    onnx_bytes = export_onnx(checkpoint.model())
    images, camids = _images(3), [0, 2, 1]
    expected = FeatureExtractor(checkpoint)(images, camids)
    onnx = FeatureExtractor(checkpoint, backend="onnx", onnx_model=onnx_bytes)
    assert (onnx(images, camids) - expected).abs().max() < 1e-4
    with pytest.raises(ValueError, match="pass camids"):
        onnx(images)
