import json
import logging

import pandas as pd
import pytest

from clip_reid.data.caption_sources import (
    CaptionSourceError,
    attribute_captions,
    caption_coverage,
    read_caption_csv,
    read_cuhk_pedes,
    training_pairs,
)

INDEX = pd.DataFrame(
    {
        "split": ["train", "train", "query", "gallery"],
        "path": ["/d/t/0002_c1s1_000451_03.jpg", "/d/t/0002_c2s1_000551_01.jpg",
                 "/d/q/0001_c1s1_001051_00.jpg", "/d/g/0001_c3s1_001201_01.jpg"],
        "pid": [2, 2, 1, 1],
    }
)


def test_cuhk_pedes_matches_by_file_name(tmp_path):
    path = tmp_path / "reid_raw.json"
    records = [
        {"file_path": "Market/0002_c1s1_000451_03.jpg", "captions": ["A man.", "A walker. "],
         "id": 1, "split": "train"},
        {"file_path": "CUHK01/0001001.png", "captions": ["Not in this dataset."], "id": 9},
    ]
    path.write_text(json.dumps(records))
    captions = read_cuhk_pedes(path, INDEX)
    assert captions.to_dict("records") == [
        {"path": INDEX.path[0], "pid": 2, "caption": "A man.", "source": "cuhk_pedes"},
        {"path": INDEX.path[0], "pid": 2, "caption": "A walker.", "source": "cuhk_pedes"},
    ]


def test_cuhk_pedes_malformed_record_is_named(tmp_path):
    path = tmp_path / "reid_raw.json"
    path.write_text(json.dumps([{"file_path": "a.jpg", "captions": ["x"]}, {"captions": "oops"}]))
    with pytest.raises(CaptionSourceError, match="reid_raw.json, record 1"):
        read_cuhk_pedes(path, INDEX)


def test_csv_reader_and_its_errors(tmp_path):
    good = tmp_path / "captions.csv"
    good.write_text("image,caption\n0001_c3s1_001201_01.jpg,\"A woman, walking.\"\n")
    assert read_caption_csv(good, INDEX)["caption"].tolist() == ["A woman, walking."]
    bad = tmp_path / "bad.csv"
    bad.write_text("file,text\na.jpg,x\n")
    with pytest.raises(CaptionSourceError, match="missing column"):
        read_caption_csv(bad, INDEX)
    empty = tmp_path / "empty.csv"
    empty.write_text("image,caption\na.jpg,x\nb.jpg,\n")
    with pytest.raises(CaptionSourceError, match=r"empty caption on data row\(s\) \[2\]"):
        read_caption_csv(empty, INDEX)


def test_attribute_captions_cover_all_images_of_an_identity_and_coverage():
    attributes = pd.DataFrame({"pid": [2], "split": ["train"], "code": [1]})
    captions = attribute_captions(attributes, INDEX, lambda codes: [f"code {codes['code']}"])
    assert captions["path"].tolist() == INDEX.path[:2].tolist()
    coverage = caption_coverage(INDEX, captions).set_index(["source", "split"])
    assert coverage.loc[("attributes", "train"), "image_coverage"] == 1.0
    assert coverage.loc[("all", "query"), "images_covered"] == 0
    assert coverage.loc[("all", "train"), "ids_covered"] == 1


def test_a_file_name_shared_by_two_identities_gets_no_caption(tmp_path, caplog):
    index = pd.DataFrame({"split": ["train", "query", "gallery"],
                          "path": ["/d/train/0000/0000_000_01_0303morning_0015_0.jpg",
                                   "/d/test/0000/0000_000_01_0303morning_0015_0.jpg",
                                   "/d/test/0001/0001_000_02_0303noon_0016_0.jpg"],
                          "pid": [0, 10000, 10001]})
    csv = tmp_path / "captions.csv"
    csv.write_text("image,caption\n0000_000_01_0303morning_0015_0.jpg,Who?\n"
                   "0001_000_02_0303noon_0016_0.jpg,A man.\n")
    with caplog.at_level(logging.WARNING):
        captions = read_caption_csv(csv, index)
    assert captions["pid"].tolist() == [10001]
    assert "1 file names belong to several identities" in caplog.text


def test_training_pairs_hold_only_training_images_in_a_stable_order():
    captions = pd.DataFrame({"path": INDEX["path"].tolist()[::-1] + [INDEX["path"][1]],
                             "pid": [1, 1, 2, 2, 2], "caption": ["g", "q", "b", "a", "c"],
                             "source": "csv"})
    pairs = training_pairs(INDEX, captions)
    assert pairs["path"].tolist() == [INDEX["path"][0]] + [INDEX["path"][1]] * 2
    assert pairs["caption"].tolist() == ["a", "b", "c"]
