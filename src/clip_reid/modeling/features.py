"""Batched test-time feature extraction (optional flip averaging, fp32 or bf16 on CPU)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pandas as pd
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from clip_reid.data.image_dataset import ReidImageDataset

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
# Batch-norm statistics settle within a few thousand images; more only costs time.
CALIBRATION_BATCHES = 20


@torch.inference_mode()
def extract_features(
    model: nn.Module,
    frame: pd.DataFrame,
    transform,
    *,
    batch_size: int,
    flip: bool,
    dtype: str,
    num_workers: int,
    device: str | torch.device,
    use_cameras: bool = False,
    description: str = "features",
) -> Tensor:
    """Test features of every row of ``frame`` (in row order), as float32 on the CPU. The
    loader and precision options are the calling stage's settings, given explicitly."""
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {dtype!r}.")
    device = torch.device(device)
    model = model.eval().to(device)
    loader = DataLoader(
        ReidImageDataset(frame.reset_index(drop=True), transform), batch_size=batch_size,
        shuffle=False, num_workers=num_workers,
    )
    chunks = []
    # disable=None: a bar on a terminal, nothing in a plain log file (no carriage-return soup)
    for batch in tqdm(loader, desc=description, leave=False, disable=None):
        images = batch["image"].to(device)
        cameras = batch["camid"].to(device) if use_cameras else None
        chunks.append(test_forward(model, images, cameras, flip, dtype))
    return torch.cat(chunks) if chunks else torch.empty(0, 0)


@torch.inference_mode()
def test_forward(model: nn.Module, images: Tensor, cameras: Tensor | None, flip: bool,
                 dtype: str) -> Tensor:
    """Float32 CPU test features of one batch of transformed images (eval-mode ``model`` on the
    images' device): the one forward rule of every embedding engine, so they agree."""
    autocast = (
        torch.autocast(images.device.type, dtype=DTYPES[dtype])
        if dtype != "fp32" else contextlib.nullcontext()
    )
    with autocast:
        features = model(images, cameras).float()
        if flip:
            features = (features + model(images.flip(3), cameras).float()) / 2
    return features.cpu()


@contextlib.contextmanager
def batch_norm_calibration(model: nn.Module) -> Iterator[bool]:
    """Reset the BatchNorm running statistics of `model` and re-estimate them from the forward
    passes run inside the block; yields whether the model has any BatchNorm to calibrate.

    Inside, momentum is None, so the statistics are a cumulative average in which every
    calibration batch weighs the same however many there are; afterwards each norm gets back its
    own momentum (and the model its train/eval mode), so later training updates as configured.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    was_training, momenta = model.training, [norm.momentum for norm in norms]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None
    model.train()
    try:
        yield bool(norms)
    finally:
        for norm, momentum in zip(norms, momenta, strict=True):
            norm.momentum = momentum
        model.train(was_training)


@torch.no_grad()
def recalibrate_batch_norm(
    model: nn.Module, frame: pd.DataFrame, transform, batch_size: int = 64,
    max_batches: int = CALIBRATION_BATCHES, seed: int = 0, device: str | torch.device = "cpu",
) -> None:
    """Re-estimate BatchNorm running statistics on real images (for randomly initialised CLIP).

    A random-init ResNet has running stats of (0, 1) that do not describe its activations, so
    eval-mode features collapse to a constant. Averaging batch statistics over a few batches of
    the data fixes that without training any weight.
    """
    with batch_norm_calibration(model) as has_norms:
        if not has_norms:
            return
        sample = frame.sample(n=min(len(frame), batch_size * max_batches), random_state=seed)
        loader = DataLoader(ReidImageDataset(sample.reset_index(drop=True), transform),
                            batch_size=batch_size, shuffle=False)
        model.to(device)
        for batch in loader:
            model(batch["image"].to(device))
