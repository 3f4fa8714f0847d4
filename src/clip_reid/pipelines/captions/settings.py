"""The `captions` block: which text sources to read."""

from __future__ import annotations

from dataclasses import dataclass

from clip_reid.settings_base import Settings, setting


@dataclass(frozen=True)
class CaptionSources(Settings):
    """Each source is a path, or null to go without it."""

    cuhk_pedes: str | None = None  # CUHK-PEDES reid_raw.json
    # market_attribute.mat: "beside_dataset" = in the dataset folder when there, or a path
    attributes: str | None = "beside_dataset"
    csv: str | None = None  # a CSV with columns image,caption


@dataclass(frozen=True)
class CaptionsSettings(Settings):
    sources: CaptionSources = setting(default_factory=CaptionSources)
