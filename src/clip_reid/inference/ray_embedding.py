"""Embedding on Ray Data (``embedding.engine: ray``): the same features as the local loop.

The dataset holds image paths, never pixels; one ``map_batches`` stage decodes and resizes on
CPUs (the first half of the checkpoint's test transform, giving uint8 pixels: a quarter of
float32's bytes through the object store); the model runs in a pool of actors, each loading the
checkpoint once from the object store and scaling and normalising its batch (the second half);
the driver puts the rows back in input order and checks that every row came back exactly once
(an actor killed mid-run has its batch retried). Imported only when the Ray engine is chosen.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import ray
import torch
from PIL import Image

from clip_reid.data.image_dataset import ImageReadError, read_rgb
from clip_reid.data.splits import select_split
from clip_reid.data.transforms import build_normaliser, build_test_resize
from clip_reid.engine_settings import EmbeddingEngineSettings
from clip_reid.evaluation.feature_set import FeatureSet
from clip_reid.inference.images import InvalidImageError, decode_image
from clip_reid.modeling.features import DTYPES, test_forward
from clip_reid.modeling.reid_checkpoint import ReidCheckpoint
from clip_reid.ray_session import connect
from clip_reid.settings_base import SettingsError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Reader:
    """How one engine path opens an image, and the error it raises, so the Ray engine reports
    an unreadable image with the local path's exception and message."""

    read: Callable[[str, int], Image.Image]
    error: type[Exception]


def _inference_read(path: str, row: int) -> Image.Image:
    return decode_image(path, f"item {row}")  # FeatureExtractor's label for list position row


def _evaluation_read(path: str, row: int) -> Image.Image:
    return read_rgb(path)


INFERENCE_READER = Reader(_inference_read, InvalidImageError)
EVALUATION_READER = Reader(_evaluation_read, ImageReadError)


def _decode(batch: dict[str, np.ndarray], reader: Reader,
            size: Sequence[int]) -> dict[str, np.ndarray]:
    """CPU stage: paths → resized uint8 images; a failure is kept as the row's message."""
    resize = build_test_resize(size)
    images, errors = [], []
    for path, row in zip(batch["path"], batch["row"], strict=True):
        try:
            images.append(resize(reader.read(str(path), int(row))).numpy())
            errors.append("")
        except reader.error as error:
            images.append(np.zeros((3, *size), dtype=np.uint8))
            errors.append(str(error))
    # the other columns (row, camid, and what a Parquet output carries) pass through
    return {**batch, "image": np.stack(images), "error": np.array(errors, dtype=object)}


# glibc malloc settings of the model actors. Ray runs an actor's batches on a worker thread, which
# glibc serves from its own arena of mmap'd 64 MiB heaps: every batch's activations were mapped,
# page-faulted and unmapped again (a quarter of a CPU actor's time was kernel time). One arena,
# blocks up to glibc's 32 MiB maximum from the heap, and freed memory kept mapped: kernel time
# 0.2 s of 12.8 s instead of 4.1 s of 17 s, one actor 121 instead of 88-101 images/s (the
# benchmark's model, 3000 crops). Ray merges these into the job's runtime_env; other C libraries
# ignore them.
KEEP_FREED_MEMORY = {"MALLOC_ARENA_MAX": "1", "MALLOC_MMAP_THRESHOLD_": str(32 * 2**20),
                     "MALLOC_TRIM_THRESHOLD_": str(2**30)}


class _EmbedActor:
    """One model replica: built once from the checkpoint in the object store."""

    def __init__(self, checkpoint_ref: list[Any], flip: bool, dtype: str, use_gpu: bool,
                 as_arrow: bool = False) -> None:
        self.device = torch.device("cuda" if use_gpu else "cpu")
        checkpoint = ray.get(checkpoint_ref[0])
        self.model = checkpoint.model().to(self.device).eval()
        self.normalise = build_normaliser(checkpoint.normalization.mean,
                                          checkpoint.normalization.std)
        self.use_cameras = self.model.config.num_cameras > 0
        self.flip, self.dtype, self.as_arrow = flip, dtype, as_arrow

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray] | pa.Table:
        images = self.normalise(torch.from_numpy(batch["image"]).to(self.device))
        cameras = torch.from_numpy(batch["camid"]).to(self.device) if self.use_cameras else None
        features = test_forward(self.model, images, cameras, self.flip, self.dtype)
        rows = {key: value for key, value in batch.items() if key != "image"}
        if self.as_arrow:
            return arrow_rows(rows, features.numpy())
        return {**rows, "feature": features.numpy()}


def arrow_rows(columns: dict[str, np.ndarray], features: np.ndarray) -> pa.Table:
    """Rows with a plain ``vector`` column (fixed-size list of float32), which any Parquet
    reader takes (Ray's own tensor type needs Ray to read it back)."""
    flat = pa.array(np.ascontiguousarray(features, dtype=np.float32).reshape(-1))
    vector = pa.FixedSizeListArray.from_arrays(flat, features.shape[1])
    table = {key: pa.array(value.tolist() if value.dtype == object else value)
             for key, value in columns.items()}
    return pa.table({**table, "vector": vector})


def embedding_dataset(checkpoint_ref: Any, checkpoint: ReidCheckpoint, paths: Sequence[str],
                      camids: Sequence[int], settings: EmbeddingEngineSettings, batch_size: int,
                      reader: Reader, flip: bool, dtype: str,
                      columns: Mapping[str, Sequence[Any]] | None = None,
                      arrow_output: bool = False) -> ray.data.Dataset:
    """The lazy pipeline paths → decoded crops → features (rows tagged with their position and
    carrying ``columns``; ``arrow_output``: rows as ``arrow_rows`` makes them, for Parquet)."""
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {dtype!r}.")
    frame = pd.DataFrame({"row": np.arange(len(paths), dtype=np.int64),
                          "path": [str(path) for path in paths],
                          "camid": np.asarray(camids, dtype=np.int64), **(columns or {})})
    # One block per model batch, split here (Ray's own split fails on pandas 3 frames).
    blocks = [frame.iloc[start:start + batch_size] for start in range(0, len(frame), batch_size)]
    return (
        ray.data.from_pandas(blocks)
        # max_calls=0 is Ray's default (task workers are reused), stated because Ray fuses map
        # stages whose remote arguments are equal: that would decode inside the model actors,
        # and decoding is meant to be a CPU stage of its own.
        .map_batches(_decode, batch_format="numpy", num_cpus=settings.decode_cpus,
                     max_calls=0,
                     fn_kwargs={"reader": reader, "size": checkpoint.image_size})
        .map_batches(_EmbedActor, batch_format="numpy", batch_size=batch_size,
                     fn_constructor_args=([checkpoint_ref], flip, dtype,
                                          settings.gpus_per_actor > 0, arrow_output),
                     compute=ray.data.ActorPoolStrategy(
                         min_size=min(settings.actors, len(blocks)), max_size=settings.actors),
                     num_cpus=settings.cpus_per_actor, num_gpus=settings.gpus_per_actor,
                     runtime_env={"env_vars": KEEP_FREED_MEMORY})
    )


def collect_in_order(dataset: ray.data.Dataset, count: int, reader: Reader) -> torch.Tensor:
    """Run ``dataset`` and return its features in input order; every row must come back once,
    and the first unreadable image (in input order) raises the local path's error."""
    rows, features, errors = [], [], []
    for batch in dataset.iter_batches(batch_format="numpy", batch_size=None):
        rows.append(batch["row"])
        features.append(batch["feature"])
        errors.append(batch["error"])
    row = np.concatenate(rows) if rows else np.empty(0, dtype=np.int64)
    order = np.argsort(row, kind="stable")
    if not np.array_equal(row[order], np.arange(count)):
        raise RuntimeError(f"Ray returned {len(row)} rows for {count} images ("
                           f"{len(np.unique(row))} distinct): rows were lost or duplicated.")
    error = np.concatenate(errors)[order]
    failed = np.flatnonzero(error != "")
    if len(failed):
        logger.error("%d of %d images could not be read.", len(failed), count)
        raise reader.error(error[failed[0]])
    return torch.from_numpy(np.concatenate(features)[order])


def embed_on_ray(checkpoint: ReidCheckpoint, paths: Sequence[str], camids: Sequence[int],
                 settings: EmbeddingEngineSettings, batch_size: int,
                 reader: Reader, flip: bool, dtype: str) -> torch.Tensor:
    """(len(paths), feature_dim) float32 features of ``paths``, in input order."""
    if not len(paths):
        raise ValueError("No images to embed: pass a non-empty list of image paths.")
    connect(settings.address)
    checkpoint_ref = ray.put(checkpoint)
    dataset = embedding_dataset(checkpoint_ref, checkpoint, paths, camids, settings, batch_size,
                                reader, flip, dtype)
    return collect_in_order(dataset, len(paths), reader)


class RayCheckpointEmbedder:
    """What every Ray gallery embedder holds: the checkpoint, the engine settings, the batch
    size, and the model's identity and widths (a store checks them before adding rows)."""

    def __init__(self, checkpoint: ReidCheckpoint, settings: EmbeddingEngineSettings,
                 batch_size: int) -> None:
        self._checkpoint = checkpoint
        self._settings = settings
        self._batch_size = batch_size
        self.fingerprint = checkpoint.fingerprint
        self.projection_dim = checkpoint.projection_dim
        self.feature_dim = checkpoint.feature_dim


class RayEmbedder(RayCheckpointEmbedder):
    """The ``Embedder`` of ``GalleryIndex.build`` on Ray: same fingerprint and features as a
    FeatureExtractor of the same checkpoint (to float tolerance)."""

    def __call__(self, images: list[Any], camids: Sequence[int] | None = None) -> torch.Tensor:
        cameras = checked_cameras(self._checkpoint, camids, len(images))
        # plain fp32 features of the unflipped images, as FeatureExtractor gives
        return embed_on_ray(self._checkpoint, [str(image) for image in images], cameras,
                            self._settings, self._batch_size, INFERENCE_READER, flip=False,
                            dtype="fp32")


def checked_cameras(checkpoint: ReidCheckpoint, camids: Sequence[int] | None,
                    count: int) -> list[int]:
    """The gallery's camera ids (0 when not given), each one the model was trained with."""
    cameras = list(camids) if camids is not None else [0] * count
    cameras_used = checkpoint.config.num_cameras
    if cameras_used and not all(0 <= int(cam) < cameras_used for cam in cameras):
        raise ValueError(f"camids must be in [0, {cameras_used}) (the cameras the model was "
                         "trained with) for every gallery image.")
    return cameras


def embed_splits_on_ray(checkpoint: ReidCheckpoint, image_index: pd.DataFrame,
                        splits: tuple[str, ...], settings: EmbeddingEngineSettings,
                        batch_size: int, flip: bool, dtype: str) -> tuple[FeatureSet, ...]:
    """``embed_splits`` on Ray: the features of each split's images."""
    if settings.output != "memory":
        raise SettingsError("evaluation.embedding.output must be memory: evaluation ranks every "
                            "query against the whole gallery in this process.")
    outputs = []
    for split in splits:
        frame = select_split(image_index, split)
        features = embed_on_ray(checkpoint, frame["path"].astype(str).tolist(),
                                frame["camid"].astype(int).tolist(), settings, batch_size,
                                EVALUATION_READER, flip, dtype)
        outputs.append(FeatureSet(features, frame["pid"].to_numpy(), frame["camid"].to_numpy(),
                                  tuple(frame["path"]), checkpoint.fingerprint))
    return tuple(outputs)
