from pathlib import Path

import pandas as pd
import pytest
from builders import SHARED_DATASETS, write_market_tree

from clip_reid.data.image_index import (
    INDEX_COLUMNS,
    DatasetLayoutError,
    DatasetProtocolError,
    dataset_statistics,
    format_statistics,
)
from clip_reid.data.market import build_image_index, parse_market_name


def test_parse_market_name_decodes_fields_and_rejects_others():
    name = parse_market_name("0002_c1s1_000451_03.jpg")
    assert (name.pid, name.camid, name.seq, name.frame, name.bbox) == (2, 0, 1, 451, 3)
    assert parse_market_name("-1_c6s4_002300_01.jpg").pid == -1
    assert parse_market_name("0000_c4s1_000001_01.jpg").pid == 0
    bad_names = ["Thumbs.db", "0002c1s1_000451_03.jpg", "abcd_c1s1_000451_03.jpg", "0002_c0s1.jpg"]
    for bad in bad_names:
        assert parse_market_name(bad) is None


def test_index_has_contract_columns_sorted_rows_and_contiguous_labels(tiny_market):
    index, report = build_image_index(tiny_market)
    assert list(index.columns) == INDEX_COLUMNS
    train = index[index["split"] == "train"]
    assert sorted(train["label"].unique()) == [0, 1, 2]
    assert train.groupby("pid")["label"].first().to_dict() == {2: 0, 7: 1, 10: 2}
    assert (index.loc[index["split"] != "train", "label"] == -1).all()
    assert train["camid"].tolist() == [0, 1, 0, 2, 5]
    names = [Path(p).name for p in train["path"]]
    assert names == sorted(names)
    assert all(Path(p).is_absolute() for p in index["path"])


def test_junk_dropped_distractors_kept_and_quirks_ignored(tiny_market):
    index, report = build_image_index(tiny_market)
    gallery = index[index["split"] == "gallery"]
    assert -1 not in set(gallery["pid"])
    assert 0 in set(gallery["pid"])
    assert report.junk_dropped == {"train": 0, "query": 0, "gallery": 1}
    assert report.non_images_ignored["gallery"] == 1
    assert report.bad_names == [] and report.unreadable == []


def test_missing_root_or_split_names_expected_layout(tmp_path):
    with pytest.raises(DatasetLayoutError, match="bounding_box_train"):
        build_image_index(tmp_path / "nowhere")
    (tmp_path / "half" / "query").mkdir(parents=True)
    with pytest.raises(DatasetLayoutError, match="lacks bounding_box_train, bounding_box_test"):
        build_image_index(tmp_path / "half")


def test_single_camera_makes_evaluation_impossible(tmp_path):
    root = write_market_tree(
        tmp_path,
        {
            "train": ["0002_c1s1_000451_03.jpg"],
            "query": ["0001_c1s1_001051_00.jpg"],
            "gallery": ["0001_c1s1_001101_01.jpg"],
        },
    )
    with pytest.raises(DatasetProtocolError, match="one camera only"):
        build_image_index(root)


def test_query_without_cross_camera_match_raises_or_warns(tmp_path):
    root = write_market_tree(
        tmp_path / "none",
        {
            "train": ["0002_c1s1_000451_03.jpg"],
            "query": ["0001_c1s1_001051_00.jpg"],
            "gallery": ["0001_c1s1_001101_01.jpg", "0005_c2s1_001101_01.jpg"],
        },
    )
    with pytest.raises(DatasetProtocolError, match="No query"):
        build_image_index(root)
    root = write_market_tree(
        tmp_path / "some",
        {
            "train": ["0002_c1s1_000451_03.jpg"],
            "query": ["0001_c1s1_001051_00.jpg", "0005_c1s1_001051_00.jpg"],
            "gallery": ["0001_c2s1_001101_01.jpg", "0005_c1s1_001101_01.jpg"],
        },
    )
    _, report = build_image_index(root)
    assert any("1 of 2 query images" in w for w in report.warnings)


def test_identities_shared_by_train_and_test_warn(tmp_path):
    root = write_market_tree(
        tmp_path,
        {
            "train": ["0001_c1s1_000451_03.jpg"],
            "query": ["0001_c1s1_001051_00.jpg"],
            "gallery": ["0001_c2s1_001101_01.jpg"],
        },
    )
    _, report = build_image_index(root)
    assert any("both train and test" in w for w in report.warnings)


def test_statistics_table(tiny_market):
    index, _ = build_image_index(tiny_market)
    stats = dataset_statistics(index)
    assert stats.to_dict("records") == [
        {"subset": "train", "num_ids": 3, "num_images": 5, "num_cameras": 4},
        {"subset": "query", "num_ids": 2, "num_images": 2, "num_cameras": 2},
        {"subset": "gallery", "num_ids": 3, "num_images": 4, "num_cameras": 3},
    ]
    table = format_statistics(stats)
    assert "  subset   | # ids | # images | # cameras" in table
    assert "  train    |     3 |        5 |         4" in table


CUHK03 = SHARED_DATASETS / "cuhk03_labeled_market"


@pytest.mark.skipif(not CUHK03.is_dir(), reason="shared CUHK03 (Market layout) not present")
def test_real_cuhk03_statistics():
    index, report = build_image_index(CUHK03)
    stats = dataset_statistics(index).set_index("subset")
    assert stats.loc["train"].tolist() == [743, 7239, 2]
    assert stats.loc["query"].tolist() == [100, 200, 2]
    assert stats.loc["gallery"].tolist() == [100, 738, 2]
    assert report.unreadable == [] and report.bad_names == []
    assert isinstance(index, pd.DataFrame)
