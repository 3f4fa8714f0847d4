"""Which images inference works on: query folders and the labelled gallery (the ingested index's
gallery split, or that of another dataset in any layout, an image_list CSV included)."""

import re

import pandas as pd
import pytest
from builders import write_crop

from clip_reid.data.image_index import DatasetLayoutError
from clip_reid.data.market import build_image_index
from clip_reid.inference.listing import (
    FRAMES_PER_SECOND,
    GallerySettings,
    folder_queries,
    gallery_images,
)
from clip_reid.settings_base import SettingsError


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


def _image_list(folder, rows: str) -> str:
    for number in range(3):
        write_crop(folder / "crops" / f"{number}.jpg", seed=number)
    (folder / "gallery.csv").write_text(rows)
    return str(folder / "gallery.csv")


def test_a_gallery_csv_is_an_image_list_whose_gallery_rows_win_over_the_index(tmp_path):
    csv = _image_list(tmp_path, "image,pid,camid,split,timestamp\ncrops/0.jpg,7,0,gallery,1.5\n"
                                "crops/1.jpg,7,1,gallery,\ncrops/2.jpg,9,1,gallery,3\n"
                                "crops/0.jpg,8,0,query,0\n")
    gallery = gallery_images(GallerySettings(name="image_list", root=csv), None)
    assert gallery["pid"].tolist() == [7, 7, 9] and gallery["camid"].tolist() == [0, 1, 1]
    assert gallery["path"].tolist() == [str(tmp_path / "crops" / f"{n}.jpg") for n in range(3)]
    assert gallery["timestamp"].tolist()[::2] == [1.5, 3.0] and pd.isna(gallery["timestamp"][1])


def test_a_gallery_csv_without_timestamps_has_unknown_times(tmp_path):
    csv = _image_list(tmp_path, "image,pid,camid,split\ncrops/0.jpg,7,0,gallery\n")
    assert gallery_images(GallerySettings(name="image_list", root=csv), None)[
        "timestamp"].isna().all()


def test_any_ingestion_layout_serves_as_a_gallery(tmp_path):
    """A CUHK03-NP folder (variant detected): the layout's own parser, its gallery split."""
    for variant in ("labeled", "detected"):
        for folder, name in (("bounding_box_train", "0001_c1_1.png"), ("query", "0002_c1_1.png"),
                             ("bounding_box_test", "0002_c2_1.png")):
            write_crop(tmp_path / variant / folder / name, seed=len(variant))
    ref = GallerySettings(name="cuhk03_np", root=str(tmp_path), variant="detected")
    gallery = gallery_images(ref, None)
    assert gallery["path"].tolist() == [str(tmp_path / "detected/bounding_box_test/0002_c2_1.png")]
    assert gallery[["pid", "camid"]].values.tolist() == [[2, 1]]


@pytest.mark.parametrize("rows, message", [
    ("image,pid,camid,split\n", "is empty"),
    ("image,pid,split\na.jpg,1,gallery\n", "lacks column(s) ['camid']"),
    ("image,pid,camid,split\nx.jpg,one,0,gallery\n", "pid 'one' is not -1 or an integer"),
    ("image,pid,camid,split,timestamp\nx.jpg,1,0,gallery,noon\n", "timestamp 'noon' is not"),
])
def test_bad_gallery_csvs_fail_clearly(tmp_path, rows, message):
    write_crop(tmp_path / "x.jpg", seed=0)
    (tmp_path / "gallery.csv").write_text(rows)
    with pytest.raises((ValueError, DatasetLayoutError), match=re.escape(message)):
        gallery_images(GallerySettings(name="image_list", root=str(tmp_path / "gallery.csv")),
                       None)


def test_the_old_labels_csv_key_fails_naming_its_replacement():
    with pytest.raises(SettingsError, match=re.escape(
            "inference.gallery.labels_csv is no longer a parameter: a gallery CSV is an "
            "image_list now: inference.gallery.name=image_list,inference.gallery.root=<the CSV>")):
        GallerySettings.from_params({"labels_csv": "labels.csv"}, "inference.gallery")


def test_an_empty_gallery_split_fails_clearly(tiny_market):
    index, _ = build_image_index(tiny_market)
    with pytest.raises(ValueError, match="is empty"):
        gallery_images(GallerySettings(), index[index["split"] != "gallery"])
