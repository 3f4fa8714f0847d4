"""The dataset reference every block that names data shares, the `dataset` and `ingestion`
parameter blocks, as strict settings (checked at run start)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from clip_reid.data.layouts import LAYOUTS
from clip_reid.settings_base import Settings, setting

SOURCES = ("synthetic", "download", "local")
VARIANTS = ("labeled", "detected", "V1", "V2")
# The layout of a bare root: the Market-1501 folders, any number of cameras.
MARKET_LAYOUT = "demo"


@dataclass(frozen=True)
class DownloadSettings(Settings):
    """Where `dataset.source: download` fetches the archive from."""

    url: str | None = None  # credentials in it are redacted in every message
    sha256: str | None = None  # the published checksum, verified after download
    cache_dir: str | None = "data/01_raw/downloads"  # null: next to dataset.root


@dataclass(frozen=True)
class DatasetRef(Settings):
    """A dataset folder and the layout to read it with: one shape for every block that names
    data (``dataset``, ``evaluation.dataset``, ``inference.gallery``). ``root`` null means "the
    ingested dataset"; ``name`` null with a ``root`` reads the Market layout (any camera count),
    as a bare ``dataset.root`` does."""

    name: str | None = setting(None, choices=(None, *sorted(LAYOUTS)))
    root: str | None = None  # the folder as distributed (image_list: the CSV file)
    variant: str | None = setting(None, choices=(None, *VARIANTS))

    def __post_init__(self) -> None:
        if self.name is not None and self.root is None:
            raise ValueError(
                f"name is {self.name!r} but root is not set: a dataset reference needs the folder "
                "too (image_list: the CSV file), e.g. name=market1501,root=<folder>."
            )

    @property
    def is_set(self) -> bool:
        """Whether this names a folder of its own (else: the ingested dataset)."""
        return self.root is not None

    @property
    def layout_name(self) -> str:
        return self.name or MARKET_LAYOUT


@dataclass(frozen=True)
class DatasetSettings(DatasetRef):
    """The training dataset: which one, in which layout, obtained how."""

    name: str = setting("market1501", choices=tuple(sorted(LAYOUTS)))
    root: str = "data/01_raw/Market-1501-v15.09.15"
    source: str = setting("local", choices=SOURCES)
    synthetic: dict[str, Any] = setting(default_factory=dict)  # SyntheticConfig overrides
    download: DownloadSettings = setting(default_factory=DownloadSettings)


@dataclass(frozen=True)
class IngestionSettings(Settings):
    """How the crops are indexed."""

    verify_images: bool = True  # decode every image once; unreadable ones are reported
    num_workers: int = setting(2, ge=1)
    progress_every_s: float = setting(10.0, ge=0.0)
