"""Run the ONNX export of a ReID model with onnxruntime on the CPU, after checking that it is
the export of the checkpoint's architecture (a model of another backbone or image size would
otherwise fail late, or worse, give features that silently do not match the gallery's)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from clip_reid.modeling import ReidConfig


class OnnxRunner:
    """An onnxruntime session over ``export_onnx`` output: images (and camids) → features."""

    def __init__(self, onnx_model: str | Path | bytes, config: ReidConfig, feature_dim: int,
                 threads: int | None = None) -> None:
        if onnx_model is None:
            raise ValueError(
                "backend='onnx' needs onnx_model: the path or bytes of the model's ONNX export "
                "(the reid_model_onnx catalog entry, or clip_reid.modeling.onnx_export's "
                "export_onnx)."
            )
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        source = str(onnx_model) if isinstance(onnx_model, Path) else onnx_model
        self.session = ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
        self.uses_cameras = config.num_cameras > 0
        _check_signature(self.session, config, feature_dim, self.uses_cameras)

    def __call__(self, images: torch.Tensor, camids: torch.Tensor | None) -> torch.Tensor:
        feeds = {"images": images.numpy()}
        if self.uses_cameras:
            feeds["camids"] = camids.numpy().astype(np.int64)
        (features,) = self.session.run(["features"], feeds)
        return torch.from_numpy(features).float()


def _check_signature(session: ort.InferenceSession, config: ReidConfig, feature_dim: int,
                     uses_cameras: bool) -> None:
    inputs = {node.name: node.shape for node in session.get_inputs()}
    outputs = {node.name: node.shape for node in session.get_outputs()}
    expected_inputs = {"images", "camids"} if uses_cameras else {"images"}
    if set(inputs) != expected_inputs or "features" not in outputs:
        raise ValueError(
            f"The ONNX model has inputs {sorted(inputs)} and outputs {sorted(outputs)}, but this "
            f"checkpoint needs inputs {sorted(expected_inputs)} and output 'features': it is not "
            "this checkpoint's export. Re-export it with "
            "clip_reid.modeling.onnx_export.export_onnx."
        )
    height, width = config.image_size
    found = (*inputs["images"][2:4], outputs["features"][-1])
    wanted = (height, width, feature_dim)
    if any(isinstance(got, int) and got != want for got, want in zip(found, wanted, strict=True)):
        raise ValueError(
            f"The ONNX model takes {found[0]}x{found[1]} images and gives {found[2]}-d features, "
            f"but the checkpoint ({config.clip.arch}) takes {height}x{width} images and gives "
            f"{feature_dim}-d features: the ONNX file is the export of another model. Use the "
            "reid_model_onnx written with this reid_model, or re-export it with export_onnx."
        )
