"""The search page in a real headless Chromium: an image query and a text query show the top-1
identity that GalleryIndex.search / search_text return for the same input; with a milvus-lite
gallery, the camera and time-window inputs limit the answers as the library's filter does."""

import io
import re
import threading
import time

import pandas as pd
import pytest
import uvicorn
from browser import chromium_executable
from builders import write_crop
from inference.conftest import tiny_checkpoint
from local_servers import free_port
from playwright.sync_api import sync_playwright

from clip_reid.app.search import SearchService
from clip_reid.app.server import create_app
from clip_reid.inference import FeatureExtractor, GalleryIndex
from clip_reid.inference.gallery_filter import GalleryFilter
from clip_reid.inference.gallery_store import embed_into_milvus
from clip_reid.inference.milvus_gallery import MilvusGallery

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
DESCRIPTION = "a man in a blue jacket with a backpack"


class Served:
    """A uvicorn server in a thread, for the page's lifetime in the test."""

    def __init__(self, app) -> None:
        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port,
                                                    log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the page's server did not start")
            time.sleep(0.05)
        return f"http://127.0.0.1:{self.port}/"

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture(scope="module")
def crops(tmp_path_factory) -> pd.DataFrame:
    """Eight crops of four people on two cameras, one second apart."""
    root = tmp_path_factory.mktemp("gallery")
    paths = []
    for number in range(8):
        path = root / f"{number // 2 + 1:04d}_c{number % 2 + 1}s1_{number:06d}_00.jpg"
        write_crop(path, seed=number)
        paths.append(str(path))
    return pd.DataFrame({"path": paths, "pid": [n // 2 + 1 for n in range(8)],
                         "camid": [n % 2 for n in range(8)], "timestamp": list(range(8))})


@pytest.fixture(scope="module")
def service(crops) -> SearchService:
    extractor = FeatureExtractor(tiny_checkpoint())
    gallery = GalleryIndex.build(extractor, crops["path"].tolist(), crops["pid"].tolist(),
                                 crops["camid"].tolist(), timestamps=crops["timestamp"].tolist())
    return SearchService(extractor, gallery, threshold=None, top_k=4)


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as playwright:
        try:
            executable = chromium_executable(playwright.chromium.executable_path)
        except FileNotFoundError as missing:
            pytest.fail(str(missing))
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def _shown(page) -> tuple[str, str]:
    page.wait_for_function("document.body.dataset.state === 'done'")
    assert page.locator("#error").inner_text() == ""
    return (page.locator("#predicted").inner_text(),
            page.locator("#results .card").first.get_attribute("data-pid"))


def test_image_and_text_queries_show_the_library_top1(service, browser, tmp_path):
    query = tmp_path / "0002_c1s1_000099_00.jpg"  # a Market name: the page knows identity 2
    write_crop(query, seed=3)  # the same crop as gallery image 3, identity 2
    expected_image = service.gallery.search(service.extractor([query.read_bytes()]), k=4)
    expected_text = service.gallery.search_text(service.extractor.encode_text([DESCRIPTION]), 4)
    with Served(create_app(service, "test")) as url:
        page = browser.new_page()
        page.goto(url)
        page.wait_for_selector("#app:not([hidden])")
        page.set_input_files("#file", str(query))
        predicted, first_card = _shown(page)
        assert predicted == first_card == str(expected_image["predicted_pid"].iloc[0])
        assert page.locator("#results .card").count() == 4
        cards = page.locator("#results .card")
        assert re.search(r"cam c[12] ·", cards.first.inner_text())  # as named: c1, c2
        own = [cards.nth(i).get_attribute("class") for i in range(4)
               if cards.nth(i).get_attribute("data-pid") == "2"]
        assert own and all("same-id" in names for names in own)
        assert page.locator(".card.same-id").count() == len(own)
        assert page.locator("#preview").is_visible()

        page.evaluate("document.body.dataset.state = ''")
        page.fill("#text", DESCRIPTION)
        page.click("#text-search")
        predicted, first_card = _shown(page)
        assert predicted == first_card == str(expected_text["predicted_pid"].iloc[0])
        assert "text query" in page.locator("#predicted-box").inner_text()
        assert page.locator("#preview").is_hidden()  # the last image is not this query
        assert page.locator(".card.same-id").count() == 0  # a description has no known identity
        assert "(text)" in page.locator("#status").inner_text()


def test_a_milvus_gallery_answers_within_the_cameras_and_time_window(service, crops, browser,
                                                                     tmp_path):
    store = MilvusGallery(str(tmp_path / "gallery.db"), "page")
    embed_into_milvus(service.extractor, crops, store, "cosine")
    milvus = SearchService(service.extractor, store, threshold=None, top_k=4)
    query = tmp_path / "query.jpg"
    write_crop(query, seed=3)
    where = GalleryFilter(camids=(0,), start=1.0, end=6.0)  # crops 2 and 4 (camera 0)
    expected = service.gallery.search(service.extractor([query.read_bytes()]), 4, where=where)
    with store, Served(create_app(milvus, "test")) as url:
        page = browser.new_page()
        page.goto(url)
        page.wait_for_selector("#app:not([hidden])")
        page.fill("#cameras", "c1")  # camid 0, as the page names it
        page.fill("#window", "1-6")
        page.set_input_files("#file", str(query))
        predicted, first_card = _shown(page)
        cards = page.locator("#results .card")
        assert [cards.nth(i).get_attribute("data-pid") for i in range(cards.count())] == [
            str(pid) for pid in expected["topk_pids"].iloc[0]]
        assert predicted == str(expected["predicted_pid"].iloc[0])
        assert all("cam c1" in cards.nth(i).inner_text() for i in range(cards.count()))
        page.wait_for_function("document.querySelector('#results img').naturalWidth > 0")

        page.fill("#window", "7-")  # no camera-0 crop after second 7
        page.evaluate("document.body.dataset.state = ''")
        page.fill("#text", DESCRIPTION)
        page.click("#text-search")
        page.wait_for_function("document.body.dataset.state === 'done'")
        assert "matches the filter" in page.locator("#error").inner_text()


def test_the_page_says_when_no_model_is_trained_yet(browser):
    with Served(create_app(None, "test", "No trained model yet: train one.")) as url:
        page = browser.new_page()
        page.goto(url)
        page.wait_for_selector("#problem:not([hidden])")
        assert "No trained model yet" in page.locator("#problem").inner_text()
        assert page.locator("#app").is_hidden()


def test_a_bad_upload_is_answered_with_the_reason(service):
    from fastapi.testclient import TestClient

    client = TestClient(create_app(service, "test"))
    answer = client.post("/api/search", json={"image": "bm90IGFuIGltYWdl"})
    assert answer.status_code == 400 and "not a readable image" in answer.json()["detail"]
    assert client.post("/api/search", json={}).status_code == 400
    late = client.post("/api/search", json={"text": "a man", "time_from": "noon"})
    assert late.status_code == 400 and "must be a number" in late.json()["detail"]
    assert client.get("/api/crop/99").status_code == 404
    buffer = io.BytesIO(service.crop(0))
    assert buffer.getvalue()[:2] == b"\xff\xd8"
