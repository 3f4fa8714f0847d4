"""Each dataset layout on a small fixture written in that exact layout (names, lists, folders)."""

import logging
from dataclasses import asdict
from pathlib import Path

import pytest
from builders import SHARED_DATASETS, write_crop

from clip_reid.data.image_index import (
    INDEX_COLUMNS,
    DatasetLayoutError,
    DatasetProtocolError,
    dataset_statistics,
)
from clip_reid.data.layouts import LAYOUTS, class_word_for, parse_layout, read_split
from clip_reid.data.msmt17 import TEST_PID_OFFSET
from clip_reid.data.settings import IngestionSettings

CUHK03 = SHARED_DATASETS / "cuhk03_labeled_market"
# the ingestion block's defaults, one decoding thread
CHECKED = asdict(IngestionSettings(num_workers=1))


def _write(folder: Path, names: list[str]) -> None:
    for i, name in enumerate(names):
        write_crop(folder / name, seed=i, size=(16, 32))


def _stats(index) -> dict:
    return {row.subset: (row.num_ids, row.num_images, row.num_cameras)
            for row in dataset_statistics(index).itertuples()}


def test_every_layout_named_in_the_issue_is_registered():
    assert set(LAYOUTS) == {"market1501", "dukemtmc", "occluded_duke", "demo", "cuhk03_np",
                            "msmt17", "veri776", "image_list"}
    assert class_word_for("veri776") == "vehicle"
    assert class_word_for("market1501") == class_word_for("msmt17") == "person"


def test_unknown_name_and_stray_variant_are_refused(tmp_path):
    with pytest.raises(DatasetLayoutError, match="Unknown dataset.name 'market'.*market1501"):
        parse_layout("market", tmp_path, **CHECKED)
    with pytest.raises(DatasetLayoutError, match="layout market1501 has no variants"):
        parse_layout("market1501", tmp_path, variant="labeled", **CHECKED)


@pytest.mark.parametrize("name", ["dukemtmc", "occluded_duke"])
def test_duke_names_in_market_layout(tmp_path, name):
    root = tmp_path / "DukeMTMC-reID"
    _write(root / "bounding_box_train", ["0001_c2_f0046182.jpg", "0001_c6_f0101512.jpg",
                                         "0007_c8_f0017213.jpg"])
    _write(root / "query", ["0005_c2_f0046985.jpg"])
    _write(root / "bounding_box_test", ["0005_c5_f0051341.jpg", "0005_c2_f0046999.jpg",
                                        "4000_c7_f0000001.jpg"])
    index, report = parse_layout(name, root, **CHECKED)
    assert list(index.columns) == INDEX_COLUMNS
    assert _stats(index) == {"train": (2, 3, 3), "query": (1, 1, 1), "gallery": (2, 3, 3)}
    assert index.loc[index.split == "train", "frame"].tolist() == [46182, 101512, 17213]
    assert index.loc[index.split == "train", "camid"].tolist() == [1, 5, 7]
    assert report.bad_names == [] and report.warnings == []


def _cuhk03_np(root: Path) -> Path:
    for variant, extra in (("labeled", []), ("detected", ["0003_c2_10.png"])):
        base = root / variant
        _write(base / "bounding_box_train", ["0003_c1_1.png", "0003_c2_6.png", "0005_c1_2.png",
                                             *extra])
        _write(base / "query", ["0001_c1_1.png", "0002_c2_7.png"])
        _write(base / "bounding_box_test", ["0001_c2_6.png", "0001_c1_2.png", "0002_c1_3.png"])
    return root


def test_cuhk03_np_reads_the_chosen_variant(tmp_path):
    root = _cuhk03_np(tmp_path / "cuhk03-np")
    labeled, report = parse_layout("cuhk03_np", root, **CHECKED)
    detected, _ = parse_layout("cuhk03_np", root, variant="detected", **CHECKED)
    assert _stats(labeled) == {"train": (2, 3, 2), "query": (2, 2, 2), "gallery": (2, 3, 2)}
    assert _stats(detected)["train"] == (2, 4, 2)
    assert all("/labeled/" in p for p in labeled.path)
    assert labeled.loc[labeled.split == "train", "frame"].tolist() == [1, 6, 2]
    assert report.bad_names == []


def test_cuhk03_np_layout_errors_name_the_folder(tmp_path):
    root = _cuhk03_np(tmp_path / "cuhk03-np")
    with pytest.raises(DatasetLayoutError, match="one of .'labeled', 'detected'."):
        parse_layout("cuhk03_np", root, variant="Labelled", **CHECKED)
    with pytest.raises(DatasetLayoutError, match="itself is in Market-1501 layout"):
        parse_layout("cuhk03_np", root / "labeled", **CHECKED)
    (root / "detected" / "query").rename(root / "detected" / "queries")
    with pytest.raises(DatasetLayoutError, match=r"lacks query\nExpected CUHK03-NP"):
        parse_layout("cuhk03_np", root, variant="detected", **CHECKED)


def _msmt17(root: Path, train: str = "train", test: str = "test") -> Path:
    lists = {
        "list_train.txt": (train, [("0000/0000_000_01_0303morning_0015_0.jpg", 0),
                                   ("0000/0000_001_05_0303noon_0020_1.jpg", 0)]),
        "list_val.txt": (train, [("0001/0001_000_15_0113afternoon_0042_0.jpg", 1)]),
        "list_query.txt": (test, [("0000/0000_000_02_0302morning_0011_0.jpg", 0)]),
        "list_gallery.txt": (test, [("0000/0000_001_03_0302noon_0012_0.jpg", 0),
                                    ("0001/0001_000_02_0114morning_0099_3.jpg", 1)]),
    }
    root.mkdir(parents=True)
    for list_name, (folder, entries) in lists.items():
        _write(root / folder, [path for path, _ in entries])
        (root / list_name).write_text("".join(f"{path} {pid}\n" for path, pid in entries))
    return root


def test_msmt17_v1_lists_cameras_and_disjoint_test_pids(tmp_path):
    root = _msmt17(tmp_path / "MSMT17_V1")
    index, report = parse_layout("msmt17", root, **CHECKED)
    assert _stats(index) == {"train": (2, 3, 3), "query": (1, 1, 1), "gallery": (2, 2, 2)}
    train = index[index.split == "train"]
    assert train.camid.tolist() == [0, 4, 14]  # camera from the name, 0-based
    assert train.label.tolist() == [0, 0, 1]  # list_val.txt joins training
    assert sorted(index.loc[index.split != "train", "pid"].unique()) == [
        TEST_PID_OFFSET, TEST_PID_OFFSET + 1]
    assert report.warnings == []  # no false "identities in train and test" warning


def test_msmt17_v2_folders_missing_files_and_bad_lines(tmp_path):
    root = _msmt17(tmp_path / "MSMT17_V2", "mask_train_v2", "mask_test_v2")
    with (root / "list_gallery.txt").open("a") as lines:
        lines.write("0002/0002_000_04_0302noon_0001_0.jpg 2\nnot a line\n\n")
    index, report = parse_layout("msmt17", root, **CHECKED)
    assert len(index) == 6
    assert [Path(p).name for p in report.missing_files] == ["0002_000_04_0302noon_0001_0.jpg"]
    assert report.bad_names == [f"{root / 'list_gallery.txt'}:4: not a line"]
    with pytest.raises(DatasetLayoutError, match="lacks the image folders train/ . test/"):
        parse_layout("msmt17", root, variant="V1", **CHECKED)


def test_msmt17_missing_list_or_wrong_root_is_named(tmp_path):
    root = _msmt17(tmp_path / "MSMT17_V1")
    (root / "list_gallery.txt").unlink()
    with pytest.raises(DatasetLayoutError, match=r"lacks list_gallery.txt\nExpected MSMT17"):
        parse_layout("msmt17", root, **CHECKED)
    with pytest.raises(DatasetLayoutError, match="holds MSMT17_V1/: set dataset.root to that"):
        parse_layout("msmt17", tmp_path, **CHECKED)


def test_veri776_folders_names_and_class_word(tmp_path):
    root = tmp_path / "VeRi"
    _write(root / "image_train", ["0001_c001_00016450_0.jpg", "0001_c012_00016460_1.jpg",
                                  "0004_c020_00020000_0.jpg", "name_train.jpg"])
    _write(root / "image_query", ["0002_c002_00030600_0.jpg"])
    _write(root / "image_test", ["0002_c002_00030600_0.jpg", "0002_c003_00030605_1.jpg",
                                 "0006_c004_00000010_0.jpg"])
    (root / "name_train.txt").write_text("0001_c001_00016450_0.jpg\n")
    index, report = parse_layout("veri776", root, **CHECKED)
    assert _stats(index) == {"train": (2, 3, 3), "query": (1, 1, 1), "gallery": (2, 3, 3)}
    assert index.loc[index.split == "train", "camid"].tolist() == [0, 11, 19]
    assert [Path(p).name for p in report.bad_names] == ["name_train.jpg"]
    (root / "image_query").rename(root / "query")
    with pytest.raises(DatasetLayoutError, match=r"lacks image_query\nExpected VeRi-776"):
        parse_layout("veri776", root, **CHECKED)


def test_image_list_reads_paths_relative_to_the_csv(tmp_path):
    root = tmp_path / "mine"
    _write(root / "cam_a", ["p1_a.jpg", "p1_b.jpg", "p3_a.jpg", "noise.jpg"])
    _write(root / "cam_b", ["p1_c.jpg", "p2_a.jpg", "p2_b.jpg"])
    csv = root / "lists" / "images.csv"
    csv.parent.mkdir()
    csv.write_text(
        "image,pid,camid,split\n"
        "../cam_a/p1_a.jpg,1,0,train\n../cam_b/p1_c.jpg,1,1,train\n../cam_a/p3_a.jpg,3,0,train\n"
        f"{root / 'cam_b' / 'p2_a.jpg'},2,1,query\n../cam_a/p1_b.jpg,2,0,gallery\n"
        "../cam_b/p2_b.jpg,-1,1,gallery\n../cam_a/gone.jpg,4,0,gallery\n"
        "../cam_a/noise.jpg,0,0,gallery\n"
    )
    index, report = parse_layout("image_list", csv, **CHECKED)
    assert _stats(index) == {"train": (2, 3, 2), "query": (1, 1, 1), "gallery": (2, 2, 1)}
    assert report.junk_dropped["gallery"] == 1
    assert [Path(p).name for p in report.missing_files] == ["gone.jpg"]
    assert all(Path(p).is_absolute() and ".." not in p for p in index.path)


def test_image_list_errors_name_rows_and_columns(tmp_path):
    csv = tmp_path / "images.csv"
    csv.write_text("image,pid,camid,split\na.jpg,x,0,train\nb.jpg,1,-2,tets\n")
    with pytest.raises(DatasetLayoutError, match=r"line 2: pid 'x'.*line 3: camid '-2'.*'tets'"):
        parse_layout("image_list", csv, **CHECKED)
    csv.write_text("image,pid,split\na.jpg,1,train\n")
    with pytest.raises(DatasetLayoutError, match=r"lacks column\(s\) \['camid'\]"):
        parse_layout("image_list", csv, **CHECKED)
    csv.write_bytes(b"image,pid,camid,split\n\xff\xfe,1,0,train\n")
    with pytest.raises(DatasetLayoutError, match="images.csv is not UTF-8"):
        parse_layout("image_list", csv, **CHECKED)
    with pytest.raises(DatasetLayoutError, match="is a folder"):
        parse_layout("image_list", tmp_path, **CHECKED)


def test_verification_logs_progress_lines(tiny_market, caplog):
    with caplog.at_level(logging.INFO, logger="clip_reid.data.image_index"):
        parse_layout("market1501", tiny_market, **(CHECKED | {"progress_every_s": 0.0}))
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("verified")]
    assert lines[0].startswith("verified 1/11 images (9%)")
    assert lines[-1].startswith("verified 11/11 images (100%)") and "s left" in lines[-1]


@pytest.mark.skipif(not CUHK03.is_dir(), reason="shared CUHK03 (Market layout) not present")
def test_real_cuhk03_read_as_the_labeled_variant_of_cuhk03_np(tmp_path):
    (tmp_path / "cuhk03-np").mkdir()
    (tmp_path / "cuhk03-np" / "labeled").symlink_to(CUHK03)
    index, report = parse_layout("cuhk03_np", tmp_path / "cuhk03-np",
                                 **(CHECKED | {"verify_images": False}))
    assert _stats(index) == {"train": (743, 7239, 2), "query": (100, 200, 2),
                             "gallery": (100, 738, 2)}
    assert report.bad_names == [] and report.broken_links == []


def test_read_split_gives_one_split_without_the_protocols_checks(tmp_path):
    """A gallery-only image list cannot be ingested (no train, no query) but is a gallery; its
    extra timestamp column stays, and the layout's own checks still apply."""
    _write(tmp_path / "crops", ["a.jpg", "b.jpg"])
    (tmp_path / "gallery.csv").write_text("image,pid,camid,split,timestamp\n"
                                          "crops/a.jpg,3,0,gallery,10\ncrops/b.jpg,-1,1,gallery,\n"
                                          "crops/missing.jpg,4,1,gallery,\n")
    with pytest.raises(DatasetProtocolError, match="train split"):
        parse_layout("image_list", tmp_path / "gallery.csv", None, verify_images=False,
                     num_workers=1, progress_every_s=10.0)
    gallery, report = read_split("image_list", tmp_path / "gallery.csv", None, "gallery")
    assert gallery[["pid", "camid", "timestamp"]].values.tolist() == [[3, 0, 10.0]]
    assert list(gallery.columns) == [*INDEX_COLUMNS[:-1], "timestamp"]
    assert report.junk_dropped["gallery"] == 1 and report.missing_files == [
        str(tmp_path / "crops" / "missing.jpg")]
    assert read_split("image_list", tmp_path / "gallery.csv", None, "query")[0].empty
    with pytest.raises(DatasetLayoutError, match="lacks bounding_box_train"):
        read_split("market1501", tmp_path, None, "gallery")
