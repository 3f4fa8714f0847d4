"""The `dataset` and `ingestion` parameter blocks as strict settings (checked at run start)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from clip_reid.data.layouts import LAYOUTS
from clip_reid.settings_base import Settings, SettingsError, setting

SOURCES = ("synthetic", "download", "local")
VARIANTS = ("labeled", "detected", "V1", "V2")


@dataclass(frozen=True)
class DownloadSettings(Settings):
    """Where `dataset.source: download` fetches the archive from."""

    url: str | None = None  # credentials in it are redacted in every message
    sha256: str | None = None  # the published checksum, verified after download
    cache_dir: str | None = "data/01_raw/downloads"  # null: next to dataset.root


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


@dataclass(frozen=True)
class EvaluatedDatasetSettings(Settings):
    """`evaluation.dataset`: score another dataset's query and gallery without retraining
    (cross-domain evaluation); ``name`` null evaluates the training dataset's own test split."""

    name: str | None = setting(None, choices=(None, *sorted(LAYOUTS)))
    root: str | None = None  # the folder as distributed (image_list: the CSV file)
    variant: str | None = setting(None, choices=(None, *VARIANTS))

    def __post_init__(self) -> None:
        if (self.name is None) != (self.root is None):
            given, missing = ("name", "root") if self.root is None else ("root", "name")
            raise SettingsError(
                f"evaluation.dataset.{given} is set but evaluation.dataset.{missing} is not: "
                "a cross-dataset evaluation needs both the layout (name) and its folder (root), "
                "e.g. --params evaluation.dataset.name=market1501,evaluation.dataset.root=<folder>."
            )

    @property
    def cross_dataset(self) -> bool:
        return self.name is not None
