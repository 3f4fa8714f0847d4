"""The `dataset` and `ingestion` parameter blocks as strict settings (checked at run start)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from clip_reid.data.layouts import LAYOUTS
from clip_reid.settings_base import Settings, setting

SOURCES = ("synthetic", "download", "local")
VARIANTS = ("labeled", "detected", "V1", "V2")


@dataclass(frozen=True)
class DownloadSettings(Settings):
    """Where `dataset.source: download` fetches the archive from."""

    url: str | None = None  # credentials in it are redacted in every message
    sha256: str | None = None  # the published checksum, verified after download
    cache_dir: str | None = None  # null: next to dataset.root


@dataclass(frozen=True)
class DatasetSettings(Settings):
    """Which dataset, in which layout, obtained how."""

    name: str = setting("market1501", choices=tuple(sorted(LAYOUTS)))
    root: str = "data/01_raw/Market-1501-v15.09.15"
    variant: str | None = setting(None, choices=(None, *VARIANTS))
    source: str = setting("local", choices=SOURCES)
    synthetic: dict[str, Any] = setting(default_factory=dict)  # SyntheticConfig overrides
    download: DownloadSettings = setting(default_factory=DownloadSettings)


@dataclass(frozen=True)
class IngestionSettings(Settings):
    """How the crops are indexed."""

    verify_images: bool = True  # decode every image once; unreadable ones are reported
    num_workers: int = setting(2, ge=1)
    progress_every_s: float = setting(10.0, ge=0.0)
