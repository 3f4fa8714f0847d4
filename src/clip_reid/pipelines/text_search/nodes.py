"""Nodes of text_search: read the sentences, then search the gallery with them and draw the
answers. The work is in clip_reid.inference.text_search and clip_reid.metrics.text_plots."""

from __future__ import annotations

from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from clip_reid.inference import FeatureExtractor
from clip_reid.inference.gallery_store import MilvusReference, SavedGallery, open_gallery
from clip_reid.inference.text_search import TextSearchSettings, read_sentences, search_by_text
from clip_reid.io.milvus_dataset import MilvusGalleryHandle
from clip_reid.metrics.text_plots import plot_text_search
from clip_reid.modeling.reid_checkpoint import ReidCheckpoint


def read_text_queries(text_search: dict[str, Any]) -> list[str]:
    """The sentences of ``text_search.queries`` then ``text_search.queries_file``."""
    return read_sentences(TextSearchSettings.from_params(text_search, "text_search"))


def search_gallery_by_text(
    queries: list[str], reid_model: ReidCheckpoint, gallery_index: SavedGallery,
    gallery_store: MilvusGalleryHandle, text_search: dict[str, Any],
) -> tuple[pd.DataFrame, dict[str, Figure]]:
    """One CSV row per (sentence, rank): pid, camid, path and cosine similarity of the top-k
    gallery images (faiss or the Milvus collection ``gallery_index`` refers to), within the
    settings' cameras and time window; and a picture per sentence with those crops."""
    settings = TextSearchSettings.from_params(text_search, "text_search")
    with gallery_store as store:
        gallery = open_gallery(gallery_index,
                               store.gallery if isinstance(gallery_index, MilvusReference)
                               else None)
        results = search_by_text(queries, FeatureExtractor(reid_model,
                                                           batch_size=settings.batch_size),
                                 gallery, settings)
    return results, plot_text_search(results)
