"""ReidImageDataset: item fields, default collation, and clear errors for unreadable images."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from builders import write_crop
from PIL import Image
from torch.utils.data import DataLoader

from clip_reid.data.image_dataset import ImageReadError, ReidImageDataset
from clip_reid.data.transforms import build_test_transform

TRANSFORM = build_test_transform((16, 8), (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))


def index_of(paths: list[Path]) -> pd.DataFrame:
    count = len(paths)
    return pd.DataFrame(
        {
            "split": ["train"] * count,
            "path": [str(path) for path in paths],
            "pid": [10 + i for i in range(count)],
            "camid": [i % 2 for i in range(count)],
            "seq": [1] * count,
            "frame": list(range(count)),
            "label": list(range(count)),
        },
        index=[100 + i for i in range(count)],  # a filtered frame: labels are not positions
    )


@pytest.fixture
def crops(tmp_path: Path) -> list[Path]:
    paths = [tmp_path / f"crop_{i}.jpg" for i in range(3)]
    for seed, path in enumerate(paths):
        write_crop(path, seed=seed, size=(8, 16))
    return paths


def test_items_carry_the_image_and_the_row_fields(crops):
    dataset = ReidImageDataset(index_of(crops), TRANSFORM)
    assert len(dataset) == 3
    item = dataset[2]
    assert set(item) == {"image", "label", "pid", "camid", "index"}
    assert item["image"].shape == (3, 16, 8)
    assert (item["label"], item["pid"], item["camid"], item["index"]) == (2, 12, 0, 2)
    assert torch.equal(item["image"], TRANSFORM(Image.open(crops[2]).convert("RGB")))


def test_grayscale_images_become_rgb(tmp_path):
    gray = tmp_path / "gray.jpg"
    Image.fromarray(np.full((16, 8), 128, dtype=np.uint8), mode="L").save(gray)
    item = ReidImageDataset(index_of([gray]), TRANSFORM)[0]
    assert item["image"].shape == (3, 16, 8)


def test_default_collate_stacks_items_into_tensors(crops):
    batch = next(iter(DataLoader(ReidImageDataset(index_of(crops), TRANSFORM), batch_size=3)))
    assert batch["image"].shape == (3, 3, 16, 8)
    assert batch["label"].tolist() == [0, 1, 2]
    assert batch["pid"].tolist() == [10, 11, 12]
    assert batch["camid"].tolist() == [0, 1, 0]
    assert batch["index"].tolist() == [0, 1, 2]


def test_missing_file_error_names_the_path(tmp_path, crops):
    missing = tmp_path / "gone.jpg"
    dataset = ReidImageDataset(index_of([*crops, missing]), TRANSFORM)
    with pytest.raises(ImageReadError, match="gone.jpg.*data_ingestion"):
        dataset[3]


def test_corrupt_and_truncated_files_error_naming_the_path(tmp_path, crops):
    garbage = tmp_path / "garbage.jpg"
    garbage.write_bytes(b"not a jpeg at all")
    truncated = tmp_path / "truncated.jpg"
    write_crop(truncated, seed=5, size=(64, 128))
    truncated.write_bytes(truncated.read_bytes()[:400])
    dataset = ReidImageDataset(index_of([garbage, truncated]), TRANSFORM)
    for position, name in enumerate(["garbage.jpg", "truncated.jpg"]):
        with pytest.raises(ImageReadError, match=name):
            dataset[position]


def test_missing_columns_are_named(crops):
    with pytest.raises(ValueError, match="camid"):
        ReidImageDataset(index_of(crops).drop(columns="camid"), TRANSFORM)
