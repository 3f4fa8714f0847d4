"""Test features of new images from a trained ReID checkpoint, outside Kedro: the same
preprocessing and eval-mode forward pass as the evaluation pipeline, on PyTorch or ONNX Runtime."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from PIL import Image

from clip_reid.inference.images import decode_image
from clip_reid.inference.onnx_runner import OnnxRunner
from clip_reid.inference.text_queries import checked_sentences
from clip_reid.modeling import ClipReidModel, ReidCheckpoint, ReidConfig, TextEncoder
from clip_reid.modeling.text_tower import encode_tokens

BACKENDS = ("torch", "onnx")


class FeatureExtractor:
    """Callable: a list of images (paths, bytes, base64, PIL, arrays) → (N, feature_dim) features.

    ``checkpoint`` is a ReID checkpoint file (.pt) or a ReidCheckpoint (the ``reid_model``
    catalog entry). ``backend="onnx"`` runs ``onnx_model`` (path or bytes of the checkpoint's
    ONNX export) with onnxruntime instead of PyTorch; the PyTorch model is then never built.
    ``onnx_threads`` caps onnxruntime's intra-op threads (default: one per core), e.g. one per
    serving worker.
    """

    _last: ClassVar[dict[tuple[str, int], FeatureExtractor]] = {}  # see ``cached``
    _last_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, checkpoint: str | Path | ReidCheckpoint, device: str = "cpu",
                 batch_size: int = 64, backend: str = "torch", onnx_model: Any = None,
                 onnx_threads: int | None = None) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}.")
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}.")
        if backend == "onnx" and str(device) != "cpu":
            raise ValueError(f"The onnx backend runs on the CPU only; got device={device!r}.")
        checkpoint = _as_checkpoint(checkpoint)
        self._config = checkpoint.config
        self._transform = checkpoint.test_transform()
        self._checkpoint = checkpoint
        self.device = torch.device(device)
        self.batch_size = int(batch_size)
        self.backend = backend
        self._model: ClipReidModel | None = None
        self._text_encoder: TextEncoder | None = None
        self._onnx: OnnxRunner | None = None
        if backend == "onnx":
            self._onnx = OnnxRunner(onnx_model, self._config, checkpoint.feature_dim,
                                    onnx_threads)
        else:
            self._model = checkpoint.model().to(self.device).eval()

    @classmethod
    def cached(cls, checkpoint: ReidCheckpoint, batch_size: int = 64) -> FeatureExtractor:
        """The PyTorch CPU extractor of ``checkpoint``, reused while the same model (by
        fingerprint) and batch size are asked for: a served model gets a fresh deep copy of its
        checkpoint with every request, and rebuilding the network each time would dominate the
        latency. Only the latest is kept, so one model stays in memory."""
        key = (checkpoint.fingerprint, int(batch_size))
        with cls._last_lock:
            if key not in cls._last:
                cls._last.clear()
                cls._last[key] = cls(checkpoint, batch_size=batch_size)
            return cls._last[key]

    @property
    def config(self) -> ReidConfig:
        return self._config

    @property
    def checkpoint(self) -> ReidCheckpoint:
        return self._checkpoint

    @property
    def feature_dim(self) -> int:
        return self._checkpoint.feature_dim

    @property
    def projection_dim(self) -> int:
        """Width of the image projection: the LAST ``projection_dim`` columns of the test feature,
        and the width of :meth:`encode_text` features."""
        return self._checkpoint.projection_dim

    @property
    def supports_text(self) -> bool:
        """Whether the checkpoint stores the text tower that :meth:`encode_text` needs."""
        return self._checkpoint.has_text_tower

    @property
    def image_size(self) -> tuple[int, int]:
        """(height, width) every image is resized to."""
        return tuple(self._config.image_size)

    @property
    def fingerprint(self) -> str:
        """Stable hash of the checkpoint (see ReidCheckpoint.fingerprint). Computed on first use
        (or read from a published checkpoint): serving that only searches never pays for hashing
        the weights."""
        return self._checkpoint.fingerprint

    def __call__(self, images: Iterable[Any], camids: Sequence[int] | None = None) -> torch.Tensor:
        """Float32 CPU features, one row per image, in input order. ``camids`` (camera index per
        image) are required by models with a camera embedding (SIE) and ignored otherwise."""
        items = _as_list(images)
        cameras = self._camera_ids(camids, len(items))
        chunks = []
        for start in range(0, len(items), self.batch_size):
            batch = torch.stack([
                self._transform(decode_image(item, f"item {start + offset}"))
                for offset, item in enumerate(items[start:start + self.batch_size])
            ])
            batch_cams = None if cameras is None else cameras[start:start + self.batch_size]
            chunks.append(self._forward(batch, batch_cams))
        return torch.cat(chunks)

    def encode_text(self, sentences: Sequence[str], truncate: bool = False,
                    names: Sequence[str] | None = None) -> np.ndarray:
        """(n, projection_dim) float32 L2-normalised features of ``sentences``, for text-to-image
        search (:meth:`GalleryIndex.search_text`).

        They live in the space of the image PROJECTION feature, the one stage 2 aligns with the
        text tower (its i2t loss scores the projection against CLIP text features). The test
        feature ``__call__`` returns is concat(final, projection), so that space is its last
        :attr:`projection_dim` columns (e.g. 1024 of 3072 for RN50, 512 of 1280 for ViT-B/16);
        compare after L2-normalising that slice (cosine). The final feature has no text
        counterpart. The text tower is the frozen CLIP text encoder the model was trained with
        (caption-tuned when caption fine-tuning was on), stored in the checkpoint.

        Raises ``InvalidTextError`` (a ValueError) for a non-string, an empty sentence, or one
        longer than the context (77 tokens for CLIP, of which 75 are text) unless ``truncate``,
        which keeps the first 75 tokens as CLIP does; ``MissingTextTowerError`` for checkpoints
        trained before the text tower was stored. ``names`` label the sentences in those
        messages (default: their position).
        """
        if self._config.neck_feat != "before":
            raise ValueError(
                "Text search compares text with the image projection, but this model's test "
                f"feature is taken {self._config.neck_feat!r} its BN necks, which moves it out of "
                "the text space. Use a model trained with model.neck_feat: before (the default)."
            )
        encoder = self._text_tower()
        items = checked_sentences(sentences, encoder.tokenizer.encode, encoder.context_length,
                                  truncate, names)
        chunks = [
            encode_tokens(encoder, encoder.tokenize(items[start:start + self.batch_size]))
            for start in range(0, len(items), self.batch_size)
        ]
        features = torch.nn.functional.normalize(torch.cat(chunks).float().cpu(), dim=1)
        return features.numpy().astype(np.float32, copy=False)

    def _text_tower(self) -> TextEncoder:
        """Built on first use: image-only callers never pay for the text tower."""
        if self._text_encoder is None:
            self._text_encoder = self._checkpoint.text_encoder().to(self.device)
        return self._text_encoder

    @torch.inference_mode()
    def _forward(self, images: torch.Tensor, camids: torch.Tensor | None) -> torch.Tensor:
        if self._onnx is not None:
            return self._onnx(images, camids)
        cams = None if camids is None else camids.to(self.device)
        return self._model(images.to(self.device), cams).float().cpu()

    def _camera_ids(self, camids: Sequence[int] | None, count: int) -> torch.Tensor | None:
        num_cameras = self._config.num_cameras
        if num_cameras == 0:
            return None
        if camids is None:
            raise ValueError(
                f"This model has a camera embedding (SIE, {num_cameras} cameras): pass camids, "
                f"one camera index in [0, {num_cameras}) per image, e.g. extractor(images, "
                "camids=[0, 2, ...])."
            )
        cameras = torch.as_tensor(np.asarray(camids), dtype=torch.long).reshape(-1)
        if len(cameras) != count:
            raise ValueError(f"Got {len(cameras)} camids for {count} images: pass one per image.")
        if cameras.min() < 0 or cameras.max() >= num_cameras:
            raise ValueError(
                f"camids must be in [0, {num_cameras}) (the cameras the model was trained with), "
                f"got values from {int(cameras.min())} to {int(cameras.max())}."
            )
        return cameras


def _as_checkpoint(checkpoint: str | Path | ReidCheckpoint) -> ReidCheckpoint:
    if isinstance(checkpoint, str | Path):
        return ReidCheckpoint.load(checkpoint)
    if not isinstance(checkpoint, ReidCheckpoint):
        raise TypeError(
            f"checkpoint must be a ReidCheckpoint or the path of its file, got "
            f"{type(checkpoint).__name__}: load a saved dict with ReidCheckpoint.from_state.")
    return checkpoint


def _as_list(images: Iterable[Any]) -> list[Any]:
    if isinstance(images, str | bytes | Path | Image.Image | np.ndarray):
        raise ValueError(
            f"images must be a list of images, got a single {type(images).__name__}: wrap it in "
            "a list, e.g. extractor([image])."
        )
    items = list(images)
    if not items:
        raise ValueError("No images to embed: pass a non-empty list of images.")
    return items

