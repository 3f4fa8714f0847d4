import onnxruntime as ort
import pytest
import torch

from clip_reid.modeling import ClipReidModel, ClipSpec, load_clip
from clip_reid.modeling.model_settings import ModelSettings
from clip_reid.modeling.onnx_export import check_onnx, export_onnx


@pytest.mark.parametrize(("arch", "cameras"), [("tiny-rn", 0), ("tiny-vit", 3)])
def test_onnx_matches_pytorch_with_a_dynamic_batch(arch, cameras):
    settings = ModelSettings(clip=ClipSpec(arch), image_size=(64, 32), use_sie=cameras > 0)
    config = settings.reid_config(num_classes=5, num_cameras=cameras)
    model = ClipReidModel(config, load_clip(config.clip)).eval()
    onnx_bytes = export_onnx(model)
    assert check_onnx(model, onnx_bytes, batch=3) < 1e-4
    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    feeds = {"images": torch.randn(5, 3, 64, 32).numpy()}
    if cameras:
        feeds["camids"] = torch.zeros(5, dtype=torch.long).numpy()
    assert session.run(["features"], feeds)[0].shape == (5, model.feature_dim)
