"""Fetch a dataset archive: download with progress, verify its SHA-256, extract atomically."""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Callable
from pathlib import Path

from tqdm.auto import tqdm

from clip_reid.data.image_index import DatasetLayoutError
from clip_reid.data.market import check_layout

logger = logging.getLogger(__name__)

_CHUNK = 1 << 20


class DownloadError(RuntimeError):
    """A download failed, was offline, or did not match its published checksum."""


def redact_url(url: str) -> str:
    """``url`` safe to print or log: user info and every query value and fragment become ``***``.

    Download URLs carry their secrets there (``user:password@``, ``?token=``, signed URLs'
    ``Signature=``); the host and path stay readable.
    """
    parts = urllib.parse.urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "***@" + netloc.rsplit("@", 1)[1]
    query = "&".join(f"{key}=***" for key, _ in
                     urllib.parse.parse_qsl(parts.query, keep_blank_values=True))
    if parts.query and not query:
        query = "***"
    return urllib.parse.urlunsplit(
        (parts.scheme, netloc, parts.path, query, "***" if parts.fragment else "")
    )


def _scrub(text: str, url: str) -> str:
    """``text`` (e.g. an exception message) with ``url`` and its secret parts redacted."""
    parts = urllib.parse.urlsplit(url)
    secrets = [url, parts.netloc.rsplit("@", 1)[0] if "@" in parts.netloc else "",
               parts.query, parts.fragment]
    secrets += [value for _, value in urllib.parse.parse_qsl(parts.query) if len(value) >= 4]
    for secret in sorted(filter(None, secrets), key=len, reverse=True):
        text = text.replace(secret, redact_url(url) if secret == url else "***")
    return text


def _request(url: str) -> urllib.request.Request:
    """A request for ``url``; ``user:password@`` becomes a Basic Authorization header, as urllib
    would otherwise read the password as a port number."""
    parts = urllib.parse.urlsplit(url)
    if parts.username is None:
        return urllib.request.Request(url)
    host = parts.netloc.rsplit("@", 1)[1]
    user, password = (urllib.parse.unquote(part or "") for part in (parts.username, parts.password))
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return urllib.request.Request(urllib.parse.urlunsplit(parts._replace(netloc=host)),
                                  headers={"Authorization": f"Basic {token}"})


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
    if destination.is_file() and (sha256 is None or sha256_of(destination) == sha256.lower()):
        logger.info("Using cached %s", destination)
        return destination
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(destination.name + ".part")
    try:
        with (urllib.request.urlopen(_request(url), timeout=timeout) as response,
              open(partial, "wb") as out):
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=destination.name,
                      disable=None) as bar:
                for block in iter(lambda: response.read(_CHUNK), b""):
                    out.write(block)
                    bar.update(len(block))
    except (urllib.error.URLError, TimeoutError, OSError, ValueError) as error:
        partial.unlink(missing_ok=True)
        raise DownloadError(
            f"Could not download {redact_url(url)}: {_scrub(str(error), url)}. If this machine "
            f"is offline, download the file on a machine with internet access and place it at "
            f"{destination}."
        ) from None  # the chained error would print the URL with its credentials
    actual = sha256_of(partial)
    if sha256 is None:
        logger.warning(
            "No SHA-256 given for %s; downloaded file has sha256=%s. Set it in the parameters "
            "to verify future downloads.", redact_url(url), actual,
        )
    elif actual != sha256.lower():
        partial.unlink(missing_ok=True)
        raise DownloadError(
            f"Checksum mismatch for {redact_url(url)}: expected sha256={sha256}, got {actual}. The "
            "file was deleted; check the URL and the published checksum."
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


def _find_dataset_folder(extracted: Path, check: Callable[[Path], None]) -> Path:
    """The shallowest folder inside an extracted archive that passes the layout ``check``."""
    first_error = None
    for folder, subfolders, _ in sorted(os.walk(extracted), key=lambda w: (w[0].count(os.sep),
                                                                           w[0])):
        subfolders.sort()
        try:
            check(Path(folder))
        except DatasetLayoutError as error:
            first_error = first_error or error
            continue
        return Path(folder)
    raise DownloadError(
        f"The archive holds no folder in the layout expected. At its top: {first_error}"
    )


def fetch_dataset(
    url: str, sha256: str | None, root: Path, cache_dir: Path,
    check: Callable[[Path], None] = check_layout,
) -> Path:
    """Make ``root`` a dataset passing ``check`` from the archive at ``url`` (no-op when
    present)."""
    root = Path(root)
    if root.is_dir():
        check(root)
        return root
    archive_name = Path(urllib.request.url2pathname(urllib.parse.urlsplit(url).path)).name
    archive = download_file(url, Path(cache_dir) / (archive_name or "dataset.zip"), sha256)
    root.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root.parent, prefix=f".{root.name}-") as staging:
        staging = Path(staging)
        extract_archive(archive, staging)
        found = _find_dataset_folder(staging, check)
        found.replace(root)
        if found == staging:
            staging.mkdir()  # let TemporaryDirectory remove the name it created
    logger.info("Extracted %s to %s", archive, root)
    return root
