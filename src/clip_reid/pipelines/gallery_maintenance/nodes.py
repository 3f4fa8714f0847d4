"""Node of gallery_maintenance; the work is in clip_reid.inference.gallery_retention."""

from __future__ import annotations

from typing import Any

from clip_reid.inference.gallery_retention import GalleryMaintenanceSettings, apply_maintenance
from clip_reid.io.milvus_dataset import MilvusGalleryHandle


def maintain_gallery(gallery_store: MilvusGalleryHandle,
                     gallery_maintenance: dict[str, Any]) -> dict[str, Any]:
    """Delete the crops ``gallery_maintenance`` names from the catalog's gallery_store; the
    counts before and after are logged and saved as a report."""
    settings = GalleryMaintenanceSettings.from_params(gallery_maintenance, "gallery_maintenance")
    with gallery_store as store:
        return apply_maintenance(store.gallery, settings)
