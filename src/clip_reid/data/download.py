"""Fetch a dataset archive: download with progress, verify its SHA-256, extract atomically."""

from __future__ import annotations

import hashlib
import logging
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from tqdm.auto import tqdm

from clip_reid.data.market import SPLIT_FOLDERS, check_layout
from clip_reid.redaction import redact_text

logger = logging.getLogger(__name__)

_CHUNK = 1 << 20


class DownloadError(RuntimeError):
    """A download failed, was offline, or did not match its published checksum."""


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file, read in chunks so large archives need little memory."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def download_file(url: str, destination: Path, sha256: str | None, timeout: float = 60.0) -> Path:
    """Download ``url`` to ``destination`` (temp file, verify, rename); reuse a verified copy."""
    destination = Path(destination)
    shown = redact_text(url)  # messages must not carry credentials in the URL
    if destination.is_file() and (sha256 is None or sha256_of(destination) == sha256.lower()):
        logger.info("Using cached %s", destination)
        return destination
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(destination.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(partial, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=destination.name) as bar:
                for block in iter(lambda: response.read(_CHUNK), b""):
                    out.write(block)
                    bar.update(len(block))
    except (urllib.error.URLError, TimeoutError, OSError) as error:
        partial.unlink(missing_ok=True)
        raise DownloadError(
            f"Could not download {shown}: {error}. If this machine is offline, download the file "
            f"on a machine with internet access and place it at {destination}."
        ) from error
    actual = sha256_of(partial)
    if sha256 is None:
        logger.warning(
            "No SHA-256 given for %s; downloaded file has sha256=%s. Set it in the parameters "
            "to verify future downloads.", shown, actual,
        )
    elif actual != sha256.lower():
        partial.unlink(missing_ok=True)
        raise DownloadError(
            f"Checksum mismatch for {shown}: expected sha256={sha256}, got {actual}. The file was "
            "deleted; check the URL and the published checksum."
        )
    partial.replace(destination)
    return destination


def extract_archive(archive: Path, destination: Path) -> None:
    """Unpack a zip or tar archive; member paths cannot escape ``destination``."""
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as bundle:
                bundle.extractall(destination)  # zipfile strips absolute and ".." parts
        else:
            with tarfile.open(archive) as bundle:
                bundle.extractall(destination, filter="data")
    except (tarfile.TarError, zipfile.BadZipFile, OSError) as error:
        raise DownloadError(
            f"Cannot extract {archive}: {error}. Delete it and download it again."
        ) from error


def _find_dataset_folder(extracted: Path) -> Path:
    """The folder inside an extracted archive that holds the Market split folders."""
    marker = SPLIT_FOLDERS["train"]
    candidates = sorted(p.parent for p in extracted.rglob(marker) if p.is_dir())
    if not candidates:
        raise DownloadError(
            f"The archive has no {marker}/ folder anywhere inside: not a Market-layout dataset."
        )
    return candidates[0]


def fetch_dataset(url: str, sha256: str | None, root: Path, cache_dir: Path) -> Path:
    """Make ``root`` a Market-layout dataset from the archive at ``url`` (no-op when present)."""
    root = Path(root)
    if root.is_dir():
        check_layout(root)
        return root
    archive_name = Path(urllib.request.url2pathname(url.split("?")[0])).name or "dataset.zip"
    archive = download_file(url, Path(cache_dir) / archive_name, sha256)
    root.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root.parent, prefix=f".{root.name}-") as staging:
        staging = Path(staging)
        extract_archive(archive, staging)
        dataset = _find_dataset_folder(staging)
        check_layout(dataset)
        dataset.replace(root)
    logger.info("Extracted %s to %s", archive, root)
    return root
