import functools
import hashlib
import http.server
import logging
import shutil
import threading
from pathlib import Path

import pytest

from clip_reid.data import veri776
from clip_reid.data.download import DownloadError, download_file, fetch_dataset


@pytest.fixture
def http_root(tmp_path):
    """Serve a folder over HTTP on loopback for the duration of a test."""
    served = tmp_path / "served"
    served.mkdir()
    handler = functools.partial(
        http.server.SimpleHTTPRequestHandler, directory=str(served)
    )
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield served, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _zip_market(tiny_market: Path, served: Path) -> tuple[str, str]:
    """Zip the tree inside a top folder, as the real Market-1501 archive is laid out."""
    staging = served.parent / "staging"
    shutil.copytree(tiny_market, staging / "Market-1501-v15.09.15")
    archive = shutil.make_archive(str(served / "market"), "zip", staging)
    return Path(archive).name, hashlib.sha256(Path(archive).read_bytes()).hexdigest()


def test_fetch_downloads_verifies_and_extracts(tiny_market, http_root, tmp_path):
    served, url = http_root
    name, digest = _zip_market(tiny_market, served)
    root = tmp_path / "data" / "market"
    fetched = fetch_dataset(f"{url}/{name}", digest, root, tmp_path / "cache")
    assert fetched == root
    assert sorted(p.name for p in (root / "query").iterdir()) == sorted(
        p.name for p in (tiny_market / "query").iterdir()
    )
    assert (tmp_path / "cache" / name).is_file()
    assert not list((tmp_path / "data").glob(".market-*")), "staging folder left behind"
    # A second call finds the dataset and downloads nothing.
    (served / name).unlink()
    assert fetch_dataset(f"{url}/{name}", digest, root, tmp_path / "cache") == root


def test_checksum_mismatch_deletes_download(tiny_market, http_root, tmp_path):
    served, url = http_root
    name, _ = _zip_market(tiny_market, served)
    with pytest.raises(DownloadError, match="Checksum mismatch"):
        download_file(f"{url}/{name}", tmp_path / "cache" / name, "0" * 64)
    assert not list((tmp_path / "cache").iterdir())


def test_unreachable_url_explains_manual_steps(tmp_path):
    with pytest.raises(DownloadError, match="place it at"):
        download_file("http://127.0.0.1:9/market.zip", tmp_path / "market.zip", None, timeout=2)


def test_archive_without_market_layout_is_rejected(http_root, tmp_path):
    served, url = http_root
    (tmp_path / "junk" / "stuff").mkdir(parents=True)
    (tmp_path / "junk" / "stuff" / "a.txt").write_text("x")
    archive = Path(shutil.make_archive(str(served / "junk"), "zip", tmp_path / "junk"))
    with pytest.raises(DownloadError, match="no folder in the layout expected.*bounding_box_train"):
        fetch_dataset(f"{url}/{archive.name}", None, tmp_path / "root", tmp_path / "cache")
    assert not (tmp_path / "root").exists()


def test_credentials_in_the_url_are_sent_as_basic_auth(tiny_market, http_root, tmp_path, caplog):
    served, url = http_root
    name, digest = _zip_market(tiny_market, served)
    authed = url.replace("http://", "http://alice:s3cretpw@") + f"/{name}?token=tok3n-value"
    with caplog.at_level(logging.DEBUG):
        assert download_file(authed, tmp_path / name, None).is_file()
    logged = "".join(r.getMessage() for r in caplog.records)
    assert "sha256=" + digest in logged and "s3cretpw" not in logged and "tok3n" not in logged


def test_archive_in_another_layout_is_found_by_its_check(http_root, tmp_path):
    served, url = http_root
    veri = tmp_path / "staging" / "VeRi"
    for folder in ("image_train", "image_query", "image_test"):
        (veri / folder).mkdir(parents=True)
    archive = Path(shutil.make_archive(str(served / "veri"), "zip", tmp_path / "staging"))
    root = fetch_dataset(f"{url}/{archive.name}", None, tmp_path / "data" / "VeRi",
                         tmp_path / "cache", check=veri776.check)
    assert sorted(p.name for p in root.iterdir()) == ["image_query", "image_test", "image_train"]
