"""Export the test-time image encoder to ONNX and check it against PyTorch with onnxruntime."""

from __future__ import annotations

import io
import warnings

import numpy as np
import onnxruntime as ort
import torch
from torch import Tensor, nn

from clip_reid.modeling.reid_model import ClipReidModel

# Largest |onnxruntime - torch| accepted on the test feature in fp32 (kernel differences are
# ~1e-6; a wrong graph differs by far more).
ONNX_TOLERANCE = 1e-4


class _TestTimeEncoder(nn.Module):
    """images (and camera ids, with SIE) → test feature; the graph ONNX runtimes execute."""

    def __init__(self, model: ClipReidModel) -> None:
        super().__init__()
        self.model = model.eval()

    def forward(self, images: Tensor, camids: Tensor | None = None) -> Tensor:
        return self.model(images, camids)


def export_onnx(model: ClipReidModel, opset: int = 17) -> bytes:
    """The model's test feature extractor as ONNX bytes, with a dynamic batch dimension."""
    height, width = model.config.image_size
    images = torch.randn(2, 3, height, width)
    uses_cameras = model.config.num_cameras > 0
    inputs = (images, torch.zeros(2, dtype=torch.long)) if uses_cameras else (images,)
    names = ["images", "camids"] if uses_cameras else ["images"]
    axes = {name: {0: "batch"} for name in [*names, "features"]}
    buffer = io.BytesIO()
    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)  # the fused attention kernel has no ONNX op
    try:
        _export(model, inputs, names, axes, opset, buffer)
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)
    return buffer.getvalue()


def _export(model: ClipReidModel, inputs: tuple, names: list[str], axes: dict, opset: int,
            buffer: io.BytesIO) -> None:
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer warnings about Python-side shape logic
        torch.onnx.export(_TestTimeEncoder(model), inputs, buffer, input_names=names,
                          output_names=["features"], dynamic_axes=axes, opset_version=opset,
                          dynamo=False)


def check_onnx(model: ClipReidModel, onnx_bytes: bytes, batch: int = 3, seed: int = 0) -> float:
    """Max absolute difference between onnxruntime and PyTorch features on random images."""
    height, width = model.config.image_size
    generator = torch.Generator().manual_seed(seed)
    images = torch.randn(batch, 3, height, width, generator=generator)
    feeds = {"images": images.numpy()}
    camids = None
    if model.config.num_cameras > 0:
        camids = torch.arange(batch) % model.config.num_cameras
        feeds["camids"] = camids.numpy()
    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    (onnx_features,) = session.run(["features"], feeds)
    with torch.no_grad():
        torch_features = model.eval()(images, camids).numpy()
    return float(np.abs(onnx_features - torch_features).max())
