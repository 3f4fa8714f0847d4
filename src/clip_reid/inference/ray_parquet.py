"""Gallery embedding on Ray written as Parquet (``embedding.output: parquet``) and streamed into
the gallery store ``stream_rows`` at a time, for galleries larger than the driver's memory.

Ray's workers write the rows (image id, path, vector, pid, camid, timestamp, plus the input
position and the read error) as files in a folder of this run's own; the driver checks them
(every input row exactly once; the first unreadable image raises the local path's error) before
a single row reaches the store, then reads them back in bounded chunks. The folder is removed
afterwards, also when the run fails; no other folder is touched. Imported only with the Ray engine.
"""

from __future__ import annotations

import logging
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import ray
import torch

from clip_reid.inference.milvus_gallery import image_id
from clip_reid.inference.ray_embedding import (
    INFERENCE_READER,
    RayCheckpointEmbedder,
    Reader,
    checked_cameras,
    embedding_dataset,
)
from clip_reid.ray_session import connect

logger = logging.getLogger(__name__)

ROW_COLUMNS = ["row", "id", "path", "pid", "camid", "timestamp"]  # what a chunk's frame holds
FOLDER_PREFIX = "gallery-embedding-"



@contextmanager
def run_folder(root: str | None) -> Iterator[tuple[pafs.FileSystem, str]]:
    """A new folder for one run's files under ``root`` (a path or a URI such as s3://bucket/x;
    None = the system temp folder, which only a one-machine cluster shares), removed afterwards."""
    base = root or tempfile.gettempdir()
    filesystem, base_path = pafs.FileSystem.from_uri(
        base if "://" in base else str(Path(base).resolve()))
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    path = f"{base_path.rstrip('/')}/{FOLDER_PREFIX}{stamp}-{uuid.uuid4().hex[:12]}"
    if filesystem.get_file_info(path).type != pafs.FileType.NotFound:
        raise FileExistsError(f"{path} exists already: it belongs to another run; not reused.")
    try:
        yield filesystem, path
    finally:
        if filesystem.get_file_info(path).type != pafs.FileType.NotFound:
            filesystem.delete_dir(path)


def _files(filesystem: pafs.FileSystem, path: str) -> pads.Dataset:
    return pads.dataset(path, filesystem=filesystem, format="parquet")


def _batches(filesystem: pafs.FileSystem, path: str, columns: list[str],
             rows: int) -> Iterator[pa.RecordBatch]:
    """The files' ``columns``, at most ``rows`` rows per batch, one file's row group decoded at
    a time. (The dataset scanner's ``to_batches`` read every file ahead of a slow consumer: 60
    MB of Arrow memory at the first 4,096-row chunk of a 20,000-row gallery.)"""
    for fragment in _files(filesystem, path).get_fragments():
        with filesystem.open_input_file(fragment.path) as source:
            yield from pq.ParquetFile(source).iter_batches(batch_size=rows, columns=columns,
                                                           use_threads=False)


def verify_written(filesystem: pafs.FileSystem, path: str, count: int, reader: Reader,
                   rows: int) -> None:
    """Every input row 0..count-1 written exactly once, and no unreadable image; else the memory
    path's errors (the first bad image in input order). Reads only the row and error columns,
    with one byte per image to mark it seen."""
    seen = np.zeros(count, dtype=bool)
    total, failed, first_error = 0, 0, (count, "")
    for batch in _batches(filesystem, path, ["row", "error"], rows):
        row = batch.column("row").to_numpy()
        if row.size and (row.min() < 0 or row.max() >= count):
            raise RuntimeError(f"{path} holds rows outside 0..{count - 1}: not this run's files.")
        total += len(row)
        seen[row] = True
        error = batch.column("error").to_numpy(zero_copy_only=False)
        bad = np.flatnonzero(error != "")
        failed += len(bad)
        if len(bad) and row[bad].min() < first_error[0]:
            at = bad[np.argmin(row[bad])]
            first_error = (int(row[at]), str(error[at]))
    if total != count or not seen.all():
        raise RuntimeError(f"Ray wrote {total} rows to {path} for {count} images "
                           f"({int(seen.sum())} distinct): rows were lost or duplicated.")
    if failed:
        logger.error("%d of %d images could not be read.", failed, count)
        raise reader.error(first_error[1])


def read_chunks(filesystem: pafs.FileSystem, path: str,
                rows: int) -> Iterator[tuple[pd.DataFrame, torch.Tensor]]:
    """The written rows, at most ``rows`` at a time: (row, id, path, pid, camid, timestamp
    frame, their float32 vectors)."""
    for batch in _batches(filesystem, path, [*ROW_COLUMNS, "vector"], rows):
        vectors = batch.column("vector").flatten().to_numpy().reshape(len(batch), -1)
        frame = pa.Table.from_batches([batch.drop_columns(["vector"])]).to_pandas()
        yield frame, torch.from_numpy(vectors.copy())


class ParquetRayEmbedder(RayCheckpointEmbedder):
    """The Ray embedder of ``output: parquet``: ``stream`` embeds a gallery frame in one Ray run
    whose rows go to Parquet, then yields them back in chunks of ``stream_rows`` (in file order,
    each row tagged with its position in the frame)."""

    def stream(self, images: pd.DataFrame) -> Iterator[tuple[pd.DataFrame, torch.Tensor]]:
        """``images`` (path, pid, camid, timestamp) embedded: (rows, features) chunks; the rows'
        ``row`` is the position in ``images``, ``id`` the stores' ``image_id`` of the path."""
        if not len(images):
            return
        paths = images["path"].astype(str).tolist()
        cameras = checked_cameras(self._checkpoint, images["camid"].tolist(), len(paths))
        connect(self._settings.address)
        columns = {"id": np.array([image_id(path) for path in paths], dtype=np.int64),
                   "pid": images["pid"].to_numpy(dtype=np.int64),
                   "timestamp": images["timestamp"].to_numpy(dtype=np.float64)}
        rows = self._settings.stream_rows
        with run_folder(self._settings.parquet_dir) as (filesystem, path):
            # plain fp32 features of the unflipped images, as FeatureExtractor gives
            dataset = embedding_dataset(ray.put(self._checkpoint), self._checkpoint, paths,
                                        cameras, self._settings, self._batch_size,
                                        INFERENCE_READER, False, "fp32", columns,
                                        arrow_output=True)
            dataset.write_parquet(path, filesystem=filesystem, min_rows_per_file=rows)
            verify_written(filesystem, path, len(paths), INFERENCE_READER, rows)
            logger.info("Ray wrote %d gallery rows to %s; streaming them %d at a time.",
                        len(paths), path, rows)
            yield from read_chunks(filesystem, path, rows)
