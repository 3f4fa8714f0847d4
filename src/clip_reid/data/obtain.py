"""Make a dataset available in its layout: generate the demo set, download it, or check it."""

from __future__ import annotations

from pathlib import Path

from clip_reid.data.download import fetch_dataset
from clip_reid.data.layouts import get_layout
from clip_reid.data.settings import DatasetSettings
from clip_reid.data.synthetic import SyntheticConfig, ensure_synthetic_market

SYNTHETIC_LAYOUTS = ("demo", "market1501")


def obtain_dataset(dataset: DatasetSettings) -> Path:
    """The dataset root, ready to index; errors say which parameter to change."""
    layout = get_layout(dataset.name)
    root = Path(dataset.root)
    if dataset.source == "synthetic":
        if layout.name not in SYNTHETIC_LAYOUTS:
            raise ValueError(
                f"dataset.source 'synthetic' writes the demo in Market-1501 layout, but "
                f"dataset.name is {layout.name!r}: set dataset.name to demo, or dataset.source to "
                "local (or download) for a real dataset."
            )
        ensure_synthetic_market(root, SyntheticConfig(**dataset.synthetic))
    elif dataset.source == "download":
        download = dataset.download
        if not download.url:
            raise ValueError(
                "dataset.source is 'download' but dataset.download.url is empty: set the archive "
                "URL (and dataset.download.sha256) in your environment's parameters, or download "
                f"the dataset yourself, unzip it to {root} and set dataset.source: local."
            )
        if layout.name == "image_list":
            raise ValueError("dataset.name image_list reads your own CSV: set dataset.source: "
                             "local and dataset.root to the CSV file.")
        cache_dir = Path(download.cache_dir) if download.cache_dir else root.parent
        fetch_dataset(download.url, download.sha256, root, cache_dir,
                      check=lambda folder: layout.check(folder, dataset.variant))
    else:
        layout.check(root, dataset.variant)
    return root
