"""Which images inference works on: query folders and the labelled gallery's three sources."""

import re

import pandas as pd
import pytest
from builders import write_crop

from clip_reid.data.market import build_image_index
from clip_reid.inference.listing import (
    FRAMES_PER_SECOND,
    GallerySettings,
    folder_queries,
    gallery_images,
)


def test_query_folder_takes_any_names_and_skips_what_is_not_an_image(tmp_path, caplog):
    folder = tmp_path / "queries"
    write_crop(folder / "a person.JPG", seed=1)
    write_crop(folder / "sub" / "x.png", seed=2)
    (folder / "notes.txt").write_text("not an image")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 truncated")
    queries = folder_queries(folder)
    assert queries["name"].tolist() == ["a person.JPG", "sub/x.png"]
    assert queries["image"].tolist() == [str(folder / "a person.JPG"), str(folder / "sub/x.png")]
    assert "Skipped 1 non-image file(s)" in caplog.text
    assert "Skipped unreadable query image" in caplog.text and "broken.jpg" in caplog.text


def test_a_missing_or_imageless_query_folder_fails_clearly(tmp_path):
    with pytest.raises(FileNotFoundError, match="Set inference.queries"):
        folder_queries(tmp_path / "absent")
    (tmp_path / "notes.txt").write_text("no image here")
    with pytest.raises(ValueError, match="No readable image"):
        folder_queries(tmp_path)


def test_the_default_gallery_is_the_gallery_split_of_the_image_index(tiny_market):
    index, _ = build_image_index(tiny_market)
    gallery = gallery_images(GallerySettings(), index)
    expected = index[index["split"] == "gallery"]
    assert gallery["path"].tolist() == expected["path"].tolist()
    assert list(gallery.columns) == ["path", "pid", "camid", "timestamp"]
    assert gallery["timestamp"].tolist() == (expected["frame"] / FRAMES_PER_SECOND).tolist()
    assert gallery_images(GallerySettings(root=str(tiny_market)), index.iloc[:0]).equals(gallery)


def test_gallery_from_a_labels_csv_wins_over_the_index(tmp_path):
    for number in range(3):
        write_crop(tmp_path / "crops" / f"{number}.jpg", seed=number)
    pd.DataFrame({"image": [f"crops/{n}.jpg" for n in range(3)], "pid": [7, 7, 9]}).to_csv(
        tmp_path / "labels.csv", index=False)
    gallery = gallery_images(GallerySettings(labels_csv=str(tmp_path / "labels.csv")), None)
    assert gallery["pid"].tolist() == [7, 7, 9] and (gallery["camid"] == -1).all()
    assert gallery["timestamp"].isna().all()  # no timestamp column: unknown times
    assert gallery["path"].tolist() == [str(tmp_path / "crops" / f"{n}.jpg") for n in range(3)]


@pytest.mark.parametrize("labels, message", [
    ("image,pid\n", "is empty"),
    ("image,person\na.jpg,1\n", "lacks column(s) ['pid']"),
    ("image,pid\nmissing.jpg,1\n", "do not exist"),
    ("image,pid\nx.jpg,one\n", "every pid must be an integer"),
])
def test_bad_gallery_labels_fail_clearly(tmp_path, labels, message):
    write_crop(tmp_path / "x.jpg", seed=0)
    (tmp_path / "labels.csv").write_text(labels)
    with pytest.raises((ValueError, FileNotFoundError), match=re.escape(message)):
        gallery_images(GallerySettings(labels_csv=str(tmp_path / "labels.csv")), None)


def test_an_empty_gallery_split_fails_clearly(tiny_market):
    index, _ = build_image_index(tiny_market)
    with pytest.raises(ValueError, match="is empty"):
        gallery_images(GallerySettings(), index[index["split"] != "gallery"])
