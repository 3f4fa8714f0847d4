"""Bad inputs: what the dataset and caption files may hold never crashes a run or
vanishes silently. Bad file names (a 20-digit identity included), broken and looping symlinks,
corrupt images and decompression bombs are left out and counted (one INFO line of counts, a
WARNING naming each of the first ten, the counts in the ingestion summary); bad caption files
fail naming the file (and record); over-long captions are counted in one INFO line and truncated.
Ingestion never changes the dataset folder.

Bad images at query time: tests/inference/test_images.py (unreadable, truncated, decompression
bombs), tests/pipelines/test_inference.py (skipped query images) and the served model
(tests/project/test_serving.py, tests/reliability/test_serving_faults.py)."""

import json
import logging
import os
import re
from pathlib import Path

import pandas as pd
import pytest
from builders import base_parameters, write_crop
from PIL import Image

from clip_reid.data.caption_gathering import gather_captions
from clip_reid.data.caption_sources import CaptionSourceError, read_caption_csv, read_cuhk_pedes
from clip_reid.data.layouts import get_layout
from clip_reid.pipelines.captions.nodes import prepare_clip_backbone
from clip_reid.pipelines.data_ingestion.nodes import index_images
from clip_reid.text_limits import MAX_WORD_CHARS

MARKET = f"names not matching {get_layout('market1501').name_pattern}"


def _market(root: Path, train: list[str]) -> Path:
    for folder, names in {"bounding_box_train": train, "query": ["0001_c1s1_001051_00.jpg"],
                          "bounding_box_test": ["0001_c2s1_001101_01.jpg"]}.items():
        for i, name in enumerate(names):
            write_crop(root / folder / name, seed=i, size=(16, 32))
    return root


def _ingest(root: Path, caplog) -> tuple[pd.DataFrame, dict, str, list[str]]:
    """The data_ingestion node on ``root``: index, summary, the INFO count line, the WARNINGs."""
    with caplog.at_level(logging.INFO, logger="clip_reid.data"):
        index, summary = index_images(str(root), {"name": "market1501", "root": str(root)},
                                      {"num_workers": 1})
    [counts] = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Ingested")]
    warnings = [r.getMessage() for r in caplog.records
                if r.levelno == logging.WARNING and r.name.startswith("clip_reid.data")]
    return index, summary, counts, warnings


def test_a_20_digit_identity_is_a_bad_name_not_an_overflow(tmp_path, caplog, snapshot):
    root = _market(tmp_path / "market", ["0002_c1s1_000451_03.jpg",
                                         "12345678901234567890_c1s1_000451_03.jpg",
                                         "0002_c1s1_99999999999999999999_03.jpg"])
    before = snapshot(root)
    index, summary, counts, warnings = _ingest(root, caplog)
    assert len(index[index.split == "train"]) == 1
    assert summary["num_bad_names"] == 2
    assert sorted(Path(p).name for p in summary["bad_names"]) == [
        "0002_c1s1_99999999999999999999_03.jpg", "12345678901234567890_c1s1_000451_03.jpg"]
    assert f"left out: 0 junk (pid -1) dropped, 0 non-image files ignored, 2 {MARKET}" in counts
    assert sum("12345678901234567890_c1s1" in w for w in warnings) == 1
    assert snapshot(root) == before


def test_broken_and_looping_symlinks_are_counted(tmp_path, caplog, snapshot):
    root = _market(tmp_path / "market", ["0002_c1s1_000451_03.jpg"])
    train = root / "bounding_box_train"
    os.symlink(tmp_path / "gone.jpg", train / "0002_c2s1_000551_01.jpg")
    os.symlink(train / "0003_c1s1_000001_01.jpg", train / "0003_c1s1_000001_01.jpg")  # a loop
    before = snapshot(root)
    index, summary, counts, warnings = _ingest(root, caplog)
    assert len(index) == 3
    assert summary["num_broken_links"] == 2
    assert sorted(Path(p).name for p in summary["broken_links"]) == [
        "0002_c2s1_000551_01.jpg", "0003_c1s1_000001_01.jpg"]
    assert "2 broken symlinks" in counts
    assert sum(w.startswith("Skipped broken or looping symlink: ") for w in warnings) == 2
    assert snapshot(root) == before


def test_bad_names_and_corrupt_images_are_excluded_and_counted(tiny_market, caplog, snapshot):
    (tiny_market / "query" / "IMG_1234.jpg").write_bytes(b"not parsed anyway")
    corrupt = tiny_market / "bounding_box_train" / "0007_c2s1_000300_01.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff\xe0 truncated jpeg")
    before = snapshot(tiny_market)
    index, summary, counts, warnings = _ingest(tiny_market, caplog)
    assert summary["bad_names"] == [str(tiny_market / "query" / "IMG_1234.jpg")]
    assert [u["path"] for u in summary["unreadable"]] == [str(corrupt.resolve())]
    assert str(corrupt.resolve()) not in set(index["path"])
    assert summary["num_bad_names"] == 1 and summary["num_unreadable"] == 1
    assert f"1 {MARKET}" in counts and "1 unreadable images excluded" in counts
    assert any(w.startswith(f"Excluded unreadable image {corrupt.resolve()} (") for w in warnings)
    assert snapshot(tiny_market) == before


def test_a_decompression_bomb_in_the_dataset_is_counted_not_decoded(tmp_path, caplog, snapshot,
                                                                    monkeypatch):
    """Pillow's pixel limit (lowered here so that a small file is a 'bomb')."""
    root = _market(tmp_path / "market", ["0002_c1s1_000451_03.jpg"])
    bomb = root / "bounding_box_train" / "0003_c1s1_000001_01.png"
    Image.new("L", (400, 300)).save(bomb)  # 120,000 pixels, over twice the limit below
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 50_000)
    before = snapshot(root)
    index, summary, counts, _ = _ingest(root, caplog)
    assert str(bomb) not in set(index["path"])
    [unreadable] = summary["unreadable"]
    assert unreadable["path"] == str(bomb)
    assert unreadable["error"].startswith("DecompressionBombError: Image size (120000 pixels)")
    assert "1 unreadable images excluded" in counts
    assert snapshot(root) == before


INDEX = pd.DataFrame({"split": ["train", "train"], "pid": [2, 2],
                      "path": ["/d/t/0002_c1s1_000451_03.jpg", "/d/t/0002_c2s1_000551_01.jpg"]})


@pytest.mark.parametrize("reader", [read_cuhk_pedes, read_caption_csv])
def test_non_utf8_and_empty_caption_files_are_named(tmp_path, reader):
    latin = tmp_path / "latin1.txt"
    latin.write_bytes("image,caption\na.jpg,Un piéton.\n".encode("latin-1"))
    with pytest.raises(CaptionSourceError, match=rf"{latin} is not UTF-8"):
        reader(latin, INDEX)
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    with pytest.raises(CaptionSourceError, match=rf"{empty} is empty"):
        reader(empty, INDEX)


@pytest.mark.parametrize("value", [None, 5, ["nested"]])
def test_cuhk_pedes_captions_that_are_not_text_are_rejected(tmp_path, value):
    path = tmp_path / "reid_raw.json"
    path.write_text(json.dumps([{"file_path": "Market/0002_c1s1_000451_03.jpg",
                                 "captions": ["A man.", value]}]))
    with pytest.raises(CaptionSourceError, match=rf"{path}, record 0, caption 1: expected a "
                       r"string, got " + re.escape(json.dumps(value))):
        read_cuhk_pedes(path, INDEX)


def test_captions_longer_than_the_context_are_counted_in_one_line(caplog):
    """Counted once per distinct caption before training; TextEncoder.tokenize truncates them
    keeping the end-of-text token (tests/modeling/test_prompts.py)."""
    params = base_parameters("model", "captions")
    captions = pd.DataFrame({"path": INDEX.path.tolist() * 2, "pid": 2, "source": "csv",
                             "caption": [f"{'very ' * 80}long.", "Short.", "Short.",
                                         f"{'very ' * 80}long."]})
    with caplog.at_level(logging.INFO, logger="clip_reid.modeling.caption_length"):
        prepare_clip_backbone(INDEX, captions, params["model"], params["caption_finetune"],
                              params["trainer"], 0)
    lines = [r.getMessage() for r in caplog.records if "context" in r.getMessage()]
    assert lines == ["1 of 2 distinct captions exceed the 77-token context of the tiny-rn text "
                     "tower and will be truncated (end-of-text token kept)"]
    assert [r.levelno for r in caplog.records if "context" in r.getMessage()] == [logging.INFO]


@pytest.mark.parametrize("source", ["csv", "cuhk_pedes"])
def test_a_caption_of_20k_letters_is_cut_and_counted_before_tokenising(tmp_path, caplog, source,
                                                                        monkeypatch):
    """One 20,000-letter caption stalled the captions stage for minutes (CLIP's BPE is
    quadratic in word length). Every caption source is cut to the text caps, counted in one
    INFO line, before anything tokenises it."""
    from open_clip.tokenizer import SimpleTokenizer

    huge = "a" * 20_000
    if source == "csv":
        path = tmp_path / "captions.csv"
        path.write_text(f"image,caption\n0002_c1s1_000451_03.jpg,{huge}\n"
                        "0002_c2s1_000551_01.jpg,A man in a red top.\n")
    else:
        path = tmp_path / "reid_raw.json"
        path.write_text(json.dumps([{"file_path": "x/0002_c1s1_000451_03.jpg", "id": 2,
                                     "captions": [huge, "A man in a red top."]}]))
    with caplog.at_level(logging.INFO, logger="clip_reid.data"):
        table = gather_captions(INDEX, tmp_path, path if source == "cuhk_pedes" else None, None,
                                path if source == "csv" else None)
    assert sorted(table["caption"].map(len)) == [len("A man in a red top."), MAX_WORD_CHARS]
    assert "1 of 2 captions were cut to 1000 characters (words to 100) before tokenising" in [
        r.getMessage() for r in caplog.records]
    bpe = SimpleTokenizer.bpe
    monkeypatch.setattr(SimpleTokenizer, "bpe", lambda self, token: (
        bpe(self, token) if len(token) <= MAX_WORD_CHARS + 4 else pytest.fail(len(token))))
    params = base_parameters("model", "captions")
    prepare_clip_backbone(INDEX, table, params["model"], params["caption_finetune"],
                          params["trainer"], 0)


def test_a_camera_the_dataset_does_not_have_is_a_bad_name(tmp_path, caplog):
    """`c9` on Market-1501 (6 cameras) was indexed as a seventh... ninth camera."""
    root = _market(tmp_path / "market", ["0002_c1s1_000451_03.jpg", "0002_c9s1_000551_01.jpg",
                                         "0003_c7s1_000001_01.jpg"])
    index, summary, counts, warnings = _ingest(root, caplog)
    assert sorted(index.camid.unique()) == [0, 1] and len(index[index.split == "train"]) == 1
    assert summary["num_bad_names"] == 2
    assert f"2 {MARKET}" in counts
    assert sum("0002_c9s1_000551_01.jpg: camera 9, but market1501 has cameras 1-6" in w
               for w in warnings) == 1


def test_every_published_layout_knows_its_cameras():
    assert {name: get_layout(name).num_cameras for name in (
        "market1501", "dukemtmc", "occluded_duke", "cuhk03_np", "msmt17", "veri776", "demo",
        "image_list")} == {"market1501": 6, "dukemtmc": 8, "occluded_duke": 8, "cuhk03_np": 2,
                           "msmt17": 15, "veri776": 20, "demo": None, "image_list": None}
