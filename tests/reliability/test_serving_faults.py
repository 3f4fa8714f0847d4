"""Serving under abuse: oversized images and requests are refused before they cost
memory, parallel requests decode one at a time, answers reveal no server paths, and damaged
checkpoint files fail with their name."""

import base64
import io
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
from builders import base_parameters, big_png, tiny_reid_checkpoint, write_crop
from mlflow.exceptions import MlflowException
from PIL import Image

from clip_reid.app.search import SearchService
from clip_reid.inference import FeatureExtractor, decode_image
from clip_reid.inference.images import ImageTooLargeError
from clip_reid.inference.serving import ServingSettings, shown_paths
from clip_reid.inference.text_search import TextSearchSettings, search_by_text
from clip_reid.modeling.checkpoint_file import CheckpointFileError
from clip_reid.pipelines.inference import nodes
from clip_reid.pipelines.inference.nodes import embed_gallery, identify_queries_served
from clip_reid.text_limits import MAX_WORD_CHARS


def _inference(serving: dict | None = None) -> dict:
    """The inference block as served: threshold 0.5, top 3, batches of 8, ``serving`` limits."""
    block = base_parameters("inference")["inference"]
    return block | {"threshold": 0.5, "top_k": 3, "batch_size": 8,
                    "serving": block["serving"] | (serving or {})}


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A tiny model with a gallery of 6 crops under <tmp>/site/gallery/ (absolute paths)."""
    root = tmp_path_factory.mktemp("site")
    for pid in range(1, 7):
        write_crop(root / "gallery" / f"{pid:04d}_c1s1_000001_00.jpg", seed=pid)
    index = pd.DataFrame({"path": sorted(str(p) for p in (root / "gallery").glob("*.jpg")),
                          "pid": range(1, 7), "camid": [0] * 6, "split": "train",
                          "label": range(6)})
    checkpoint = tiny_reid_checkpoint(index)
    labels = root / "gallery.csv"
    pd.DataFrame({"image": [f"gallery/{Path(p).name}" for p in index["path"]],
                  "pid": index["pid"], "camid": 0, "split": "gallery"}).to_csv(labels, index=False)
    inference = _inference()
    inference["gallery"] = inference["gallery"] | {"name": "image_list", "root": str(labels)}
    gallery = embed_gallery(checkpoint, None, index, inference, None)
    return checkpoint, gallery, root


def _query(image: bytes, count: int = 1) -> pd.DataFrame:
    encoded = base64.b64encode(image).decode()
    return pd.DataFrame({"image": [encoded] * count, "name": [f"q{i}" for i in range(count)]})


def _jpeg(seed: int = 1) -> bytes:
    buffer = io.BytesIO()
    Image.effect_noise((64, 128), 40 + seed).convert("RGB").save(buffer, format="JPEG")
    return buffer.getvalue()


def test_a_9000x9000_png_is_refused_from_its_header_before_decoding(monkeypatch):
    bomb = big_png(9000, 9000)
    assert len(bomb) < 200_000
    decoded = []
    monkeypatch.setattr(Image.Image, "load", lambda self: decoded.append(self) or None)
    with pytest.raises(ImageTooLargeError, match=r"9000x9000 is 81,000,000 pixels"):
        decode_image(bomb, "upload")
    assert decoded == []  # refused before PIL decoded a single pixel
    with pytest.raises(ImageTooLargeError, match="more than the 10,000 allowed"):
        decode_image(big_png(200, 100), max_pixels=10_000)
    with pytest.raises(ImageTooLargeError):  # arrays and PIL images are held to the same cap
        decode_image(Image.new("RGB", (300, 300)), max_pixels=50_000)
    assert decode_image(big_png(200, 100), max_pixels=None).size == (200, 100)


def test_the_served_model_answers_400_to_oversized_images_and_requests(served):
    checkpoint, gallery, _ = served
    with pytest.raises(MlflowException, match="81,000,000 pixels") as raised:
        identify_queries_served(_query(big_png(9000, 9000)), checkpoint, gallery, _inference())
    assert raised.value.get_http_status_code() == 400
    with pytest.raises(MlflowException, match="4 records, more than the 3") as raised:
        identify_queries_served(_query(_jpeg(), 4), checkpoint, gallery,
                                _inference({"max_records": 3}))
    assert raised.value.get_http_status_code() == 400
    with pytest.raises(MlflowException, match=r"serving.max_records = 0 is invalid: expected an"):
        identify_queries_served(_query(_jpeg()), checkpoint, gallery,
                                _inference({"max_records": 0}))
    with pytest.raises(MlflowException, match="Unknown parameter inference.serving.max_pix"):
        identify_queries_served(_query(_jpeg()), checkpoint, gallery, _inference({"max_pix": 1}))


def test_answers_carry_paths_relative_to_the_gallery_root_not_server_paths(served):
    checkpoint, gallery, root = served
    answer = identify_queries_served(_query(_jpeg()), checkpoint, gallery, _inference())
    shown = answer["topk_paths"].iloc[0]
    assert len(shown) == 3 and all(not p.startswith("/") and str(root) not in p for p in shown)
    assert all(p.endswith("_c1s1_000001_00.jpg") and "/" not in p for p in shown)
    under_site = identify_queries_served(_query(_jpeg()), checkpoint, gallery,
                                      _inference({"path_root": str(root)}))
    assert all(p.startswith("gallery/") for p in under_site["topk_paths"].iloc[0])
    absolute = identify_queries_served(_query(_jpeg()), checkpoint, gallery,
                                    _inference({"paths": "absolute"}))
    assert all(p.startswith(str(root)) for p in absolute["topk_paths"].iloc[0])
    hidden = identify_queries_served(_query(_jpeg()), checkpoint, gallery,
                                  _inference({"paths": "none"}))
    assert "topk_paths" not in hidden and hidden["topk_pids"].iloc[0]


def test_a_path_outside_the_root_shows_only_its_name():
    found = pd.DataFrame({"topk_paths": [["/srv/a/x.jpg", "/elsewhere/secret/y.jpg"]]})
    settings = ServingSettings(path_root="/srv/a")
    assert shown_paths(found, [], settings)["topk_paths"][0] == ["x.jpg", "y.jpg"]


def test_parallel_requests_are_decoded_one_at_a_time(served, monkeypatch):
    """Memory is bounded by concurrent_requests x one request, whatever the clients do."""
    checkpoint, gallery, _ = served
    active, peak, lock = [0], [0], threading.Lock()
    original = nodes.identify

    def tracked(*args, **kwargs):
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        time.sleep(0.05)
        try:
            return original(*args, **kwargs)
        finally:
            with lock:
                active[0] -= 1

    monkeypatch.setattr(nodes, "identify", tracked)
    answers, query = [], _query(_jpeg())
    threads = [threading.Thread(target=lambda: answers.append(identify_queries_served(
        query, checkpoint, gallery, _inference()))) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(answers) == 6 and peak[0] == 1
    assert len({tuple(a["topk_pids"].iloc[0]) for a in answers}) == 1


@pytest.mark.parametrize("content, why", [(b"", "0 bytes"), (None, "truncated")])
def test_a_zero_byte_or_truncated_checkpoint_file_is_named(served, tmp_path, content, why):
    checkpoint, _, _ = served
    path = tmp_path / "reid_model.pt"
    if content is None:
        torch.save(checkpoint, path)
        content = path.read_bytes()[: path.stat().st_size // 2]
    path.write_bytes(content)
    with pytest.raises(ValueError, match=f"Cannot load the checkpoint {path}") as raised:
        FeatureExtractor(path)
    if why == "0 bytes":  # the reason was empty, "(0 bytes): ."
        assert f"{path} (0 bytes): the file is empty (an interrupted copy" in str(raised.value)
    else:
        assert "empty or truncated" in str(raised.value)


@pytest.mark.parametrize("content", [b"hello world\nthis is a text file\n", bytes(range(7, 256))],
                         ids=["text", "random bytes"])
def test_a_file_that_is_no_checkpoint_is_named_as_such(tmp_path, content):
    """A text file raised a bare ``KeyError: 101``; random bytes were said to hold
    objects that "could run code"."""
    path = tmp_path / "notes.pt"
    path.write_bytes(content)
    with pytest.raises(CheckpointFileError) as raised:
        FeatureExtractor(path)
    assert str(raised.value).startswith(
        f"Cannot load the checkpoint {path} ({len(content):,} bytes): it is not a checkpoint "
        f"file (neither a zip archive nor a pickle; it starts with {content[:16]!r}).")
    assert "run code" not in str(raised.value)


def test_the_gallery_index_of_the_served_model_is_unchanged_by_requests(served):
    checkpoint, gallery, _ = served
    before = gallery.paths
    identify_queries_served(_query(_jpeg()), checkpoint, gallery, _inference())
    assert gallery.paths == before and all(p.startswith("/") for p in before)


# Text that takes a core. CLIP's BPE is quadratic in word length; every text entry
# point caps characters and word length before tokenising.

@pytest.fixture
def bpe_guard(monkeypatch):
    """Fails at once if the tokenizer's BPE is handed a word over the cap (the old code spent
    seconds on it before refusing or truncating)."""
    from open_clip.tokenizer import SimpleTokenizer

    merge = SimpleTokenizer.bpe

    def guarded(self, token):
        assert len(token) <= MAX_WORD_CHARS + 4, f"BPE given a {len(token)}-character word"
        return merge(self, token)

    monkeypatch.setattr(SimpleTokenizer, "bpe", guarded)


LONG_TEXTS = [("a" * 16_000, "is 16,000 characters long, more than the 1,000 a text may have"),
              ("a man " + "b" * 500, "has a word of 500 characters (starting 'bbbbbbbbbbbbbbbbbbbb'"
               "), more than the 100 a word may have")]


def _entry_points(served):
    checkpoint, gallery, _ = served
    extractor, index = FeatureExtractor(checkpoint), gallery
    return {
        "search page": lambda text: SearchService(extractor, index).search_text(text),
        "served model": lambda text: identify_queries_served(
            pd.DataFrame({"text": [text]}), checkpoint, gallery, _inference()),
        "text_search": lambda text: search_by_text(
            [text], extractor, index, TextSearchSettings(truncate=True)),
        "FeatureExtractor.encode_text": lambda text: extractor.encode_text([text],
                                                                           truncate=True),
    }


@pytest.mark.parametrize("entry", ["search page", "served model", "text_search",
                                   "FeatureExtractor.encode_text"])
@pytest.mark.parametrize(("text", "problem"), LONG_TEXTS, ids=["16k letters", "a 500-letter word"])
def test_over_long_text_is_refused_before_tokenising(served, bpe_guard, entry, text, problem):
    with pytest.raises((ValueError, MlflowException)) as raised:
        _entry_points(served)[entry](text)
    assert problem in str(raised.value)
    fits = "a man in a blue shirt " * (1 if entry == "served model" else 40)  # 880 characters
    assert _entry_points(served)[entry](fits) is not None  # (served: refused over 75 tokens)
