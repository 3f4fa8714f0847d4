"""Forgetting gallery crops: by image, by person ("delete this person's crops on request") and
by age (a retention period), in one call with the counts before and after, for the
`gallery_maintenance` pipeline and for services that call the library directly."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from clip_reid.inference.gallery_filter import SEPARATOR
from clip_reid.inference.milvus_gallery import MilvusGallery
from clip_reid.settings_base import Settings, setting

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class GalleryMaintenanceSettings(Settings):
    """What to delete; several may be given at once. Lists are YAML lists or one string with
    ";" between items (Kedro's --params splits at commas)."""

    delete_paths: str | tuple[str, ...] | None = None  # image paths as embedded
    delete_pids: str | int | tuple[int, ...] | None = None  # every crop of these people
    retention_days: float | None = setting(None, ge=0.0)  # crops older than this many days

    def __post_init__(self) -> None:
        self.pids()  # non-integer pids stop the run at its start

    def paths(self) -> list[str]:
        return _items(self.delete_paths)

    def pids(self) -> list[int]:
        try:
            return [int(item) for item in _items(self.delete_pids)]
        except ValueError:
            raise ValueError(f"gallery_maintenance.delete_pids must be integers, got "
                             f"{self.delete_pids!r}.") from None


def apply_maintenance(gallery: MilvusGallery, settings: GalleryMaintenanceSettings,
                      now: float | None = None) -> dict[str, Any]:
    """Delete what ``settings`` asks for; returns the row counts (before, each step, after)."""
    paths, pids, days = settings.paths(), settings.pids(), settings.retention_days
    if not paths and not pids and days is None:
        raise ValueError(
            "Nothing to delete: run with --params \"gallery_maintenance.delete_pids=5;7\", "
            "\"gallery_maintenance.delete_paths=<path>;<path>\" or "
            "gallery_maintenance.retention_days=30.")
    report: dict[str, Any] = {"uri": gallery.uri, "collection": gallery.collection,
                              "before": gallery.count()}
    if paths:
        report["deleted_images"] = gallery.delete_images(paths)
    if pids:
        report["deleted_pids"] = gallery.delete_pids(pids)
    if days is not None:
        report["expired"] = gallery.delete_older_than(days, now)
    report["after"] = gallery.count()
    logger.info("Gallery maintenance of %s/%s: %d -> %d rows.", gallery.uri, gallery.collection,
                report["before"], report["after"])
    return report


def _items(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [item.strip() for item in value.split(SEPARATOR) if item.strip()]
    if isinstance(value, int):
        return [str(value)]
    return [str(item) for item in value]
