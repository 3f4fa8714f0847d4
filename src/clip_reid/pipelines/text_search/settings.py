"""The `text_search` block: which sentences to search the gallery with, and how."""

from __future__ import annotations

from dataclasses import dataclass

from clip_reid.settings_base import Settings, setting


@dataclass(frozen=True)
class TextSearchSettings(Settings):
    """Sentences from the parameters and/or a file; the top-k gallery images of each."""

    queries: tuple[str, ...] | str | None = None  # a list, or one string with ";" between
    queries_file: str | None = None  # a UTF-8 .txt file, one sentence per line
    top_k: int = setting(10, ge=1)
    truncate: bool = False  # over 75 BPE tokens: refused (false) or the first 75 kept (true)
    batch_size: int = setting(64, ge=1)
