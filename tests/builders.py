"""Builders of tiny test data (Market-layout trees of random crops), importable from any test."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from kedro.io import DataCatalog, MemoryDataset
from kedro.pipeline import Pipeline
from kedro.runner import SequentialRunner
from PIL import Image

from clip_reid.modeling import ClipReidModel, ReidCheckpoint, load_clip
from clip_reid.modeling.features import recalibrate_batch_norm
from clip_reid.modeling.model_settings import ModelSettings

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATASETS = REPO_ROOT.parent / "shared" / "datasets"


def write_crop(path: Path, seed: int, size: tuple[int, int] = (64, 128)) -> None:
    """A small random JPEG crop (width, height) at ``path``."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, quality=90)


def write_labelled_crops(folder: Path, pids: list[int]) -> list[str]:
    """One random crop per identity, ``<pid>.jpg`` seeded by its pid; returns the paths."""
    paths = [str(folder / f"{pid:04d}.jpg") for pid in pids]
    for pid, path in zip(pids, paths, strict=True):
        write_crop(Path(path), seed=pid)
    return paths


def write_market_tree(root: Path, names: dict[str, list[str]]) -> Path:
    """Write crops named as given under each split folder (``train``/``query``/``gallery``)."""
    folders = {"train": "bounding_box_train", "query": "query", "gallery": "bounding_box_test"}
    for split, files in names.items():
        (root / folders[split]).mkdir(parents=True, exist_ok=True)
        for i, name in enumerate(files):
            write_crop(root / folders[split] / name, seed=hash((split, i)) % 2**32)
    return root


class KeptDataset(MemoryDataset):
    """A MemoryDataset the runner cannot release, so tests can inspect intermediate outputs."""

    def _release(self) -> None:
        pass


def run_pipeline(pipeline: Pipeline, inputs: dict[str, Any]) -> dict[str, Any]:
    """Run ``pipeline`` with SequentialRunner on in-memory ``inputs``; return every output."""
    catalog = DataCatalog()
    for name, value in inputs.items():
        catalog[name] = value
    for name in pipeline.all_outputs():
        catalog[name] = KeptDataset()
    SequentialRunner().run(pipeline, catalog)
    return {name: catalog.load(name) for name in pipeline.all_outputs()}


# The training dataset's parameters the evaluation pipeline reads (it evaluates that dataset's
# own query and gallery unless evaluation.dataset names another).
TRAINING_DATASET = {"params:dataset": {"name": "demo", "root": "data/01_raw/demo_market"},
                    "params:ingestion": {}}


def base_parameters(*names: str) -> dict:
    """Parameters as conf/base defines them (the demo defaults)."""
    params = {}
    for name in names:
        path = REPO_ROOT / "conf" / "base" / f"parameters_{name}.yml"
        params |= yaml.safe_load(path.read_text())
    return params


def tiny_reid_checkpoint(index: pd.DataFrame, arch: str = "tiny-rn",
                         image_size: tuple[int, int] = (64, 32)) -> ReidCheckpoint:
    """An untrained ReID checkpoint whose BatchNorm statistics come from ``index``'s images
    (random-init statistics would make every feature the same)."""
    model = ModelSettings.from_params({"clip": {"arch": arch, "weights": "random", "seed": 0},
                                       "image_size": list(image_size)})
    config = model.reid_config(num_classes=4, num_cameras=0)
    clip = load_clip(config.clip)
    reid_model = ClipReidModel(config, clip)
    recalibrate_batch_norm(reid_model.image_encoder, index, model.eval_transform())
    mean, std = model.normalization()
    return ReidCheckpoint.from_model(reid_model.eval(), {"mean": mean, "std": std},
                                     text_tower=clip)


def big_png(width: int, height: int) -> bytes:
    """A valid, tiny (~80 kB at 9000x9000) all-black greyscale PNG, compressed row by row."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    compressor = zlib.compressobj(9)
    row = b"\0" * (width + 1)  # filter byte + pixels
    data = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data)
            + chunk(b"IEND", b""))
