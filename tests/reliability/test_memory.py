"""Server memory: abusive requests within the per-image limits cannot take the memory
of a served model or of the search page, and what a request freed is given back.

Each case runs the server side in a subprocess and reads its resident memory from
/proc/<pid>/status (VmRSS now, VmHWM the peak): 8 parallel uploads of a 4096x4096 PNG to the
search page (plus bodies of 300 MB, declared or streamed), and 4 requests of 32 or 4 such PNGs
to the served model's request function. Before the fix the page decoded every upload at once
(50 parallel: 0.94 -> 5.25 GB) and the served model every image of a request (2.5 GB each)."""

from __future__ import annotations

import base64
import http.client
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import pytest
import torch
from builders import REPO_ROOT, big_png, tiny_reid_checkpoint, write_crop
from kedro_project import copy_project
from local_servers import free_port

from clip_reid.inference import FeatureExtractor, GalleryIndex

pytestmark = pytest.mark.skipif(not Path("/proc/self/status").is_file(),
                                reason="reads resident memory from /proc")

MB = 1024 * 1024
PAGE_PEAK_MB = 300  # peak resident memory over the warmed-up page, during the burst
PAGE_AFTER_MB = 100  # resident memory over the warmed-up page, after it
SERVED_PEAK_MB = 300  # the same for the served model's request function
SERVED_AFTER_MB = 100


def _memory(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of ``pid`` in bytes."""
    fields = dict(line.split(":", 1) for line in
                  Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return {key: int(fields[key].split()[0]) * 1024 for key in ("VmRSS", "VmHWM")}


def _env() -> dict[str, str]:
    return os.environ | {"OMP_NUM_THREADS": "1",
                         "PYTHONPATH": os.pathsep.join([str(REPO_ROOT / "src"),
                                                        str(REPO_ROOT / "tests")])}


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> tuple[Path, Path]:
    """A tiny model file and a gallery_index file embedded by it."""
    root = tmp_path_factory.mktemp("memory")
    paths = []
    for pid in range(1, 5):
        paths.append(root / "gallery" / f"{pid:04d}_c1s1_000001_00.jpg")
        write_crop(paths[-1], seed=pid)
    index = pd.DataFrame({"path": [str(p) for p in paths], "pid": range(1, 5), "camid": 0,
                          "split": "train", "label": range(4)})
    checkpoint = tiny_reid_checkpoint(index)
    torch.save(checkpoint.to_state(), root / "model.pt")
    gallery = GalleryIndex.build(FeatureExtractor(checkpoint), index["path"].tolist(),
                                 index["pid"].tolist(), index["camid"].tolist())
    torch.save(gallery.to_state(), root / "gallery_index.pt")
    return root / "model.pt", root / "gallery_index.pt"


def _post(url: str, payload: dict) -> int:
    request = urllib.request.Request(url, json.dumps(payload).encode(),
                                     {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=120) as answer:
            return answer.status
    except urllib.error.HTTPError as error:
        return error.code


def _streamed_body_status(port: int, megabytes: int) -> int:
    """POST a body without Content-Length (chunked), ``megabytes`` long; the answer's status."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    chunk = b"x" * MB
    try:
        connection.request("POST", "/api/search", body=(chunk for _ in range(megabytes)),
                           headers={"Content-Type": "application/json"}, encode_chunked=True)
    except (BrokenPipeError, ConnectionResetError):
        pass  # refused mid-body: the answer is still waiting to be read
    return connection.getresponse().status


def _declared_body_status(port: int, declared: int) -> tuple[int, float]:
    """Send only the headers of a ``declared``-byte body: the status and seconds to answer."""
    started = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=30) as connection:
        connection.sendall(f"POST /api/search HTTP/1.1\r\nHost: x\r\nContent-Type: "
                           f"application/json\r\nContent-Length: {declared}\r\n\r\n".encode())
        status = int(connection.recv(4096).split(b" ", 2)[1])
    return status, time.perf_counter() - started


@pytest.fixture
def page(model, tmp_path):
    """The search page (`python -m clip_reid.app`, in a copy of the project) in a subprocess:
    its pid and port."""
    checkpoint, gallery = model
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "clip_reid.app", "--model", str(checkpoint), "--gallery",
         str(gallery), "--port", str(port)], env=_env(), cwd=copy_project(tmp_path),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(600):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status", timeout=1):
                    break
            except OSError:
                assert server.poll() is None, server.stderr.read()
                time.sleep(0.1)
        yield server.pid, port
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_parallel_large_uploads_and_huge_bodies_leave_the_page_small(page):
    pid, port = page
    url = f"http://127.0.0.1:{port}/api/search"
    crop = base64.b64encode(big_png(64, 128)).decode()
    assert _post(url, {"image": crop}) == 200  # warmed up: model and gallery in use
    before = _memory(pid)["VmRSS"]
    large = base64.b64encode(big_png(4096, 4096)).decode()  # 49 kB, 16.8 Mpx: inside the limits
    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda _: _post(url, {"image": large}), range(8)))
    assert statuses == [200] * 8
    status, seconds = _declared_body_status(port, 300 * MB)
    assert status == 413 and seconds < 10  # from the header: the body is never sent
    assert _streamed_body_status(port, 300) == 413
    memory = _memory(pid)
    print(f"page: {before / MB:.0f} MB warmed up, peak {memory['VmHWM'] / MB:.0f} MB, "
          f"after {memory['VmRSS'] / MB:.0f} MB")
    assert memory["VmHWM"] - before < PAGE_PEAK_MB * MB
    assert memory["VmRSS"] - before < PAGE_AFTER_MB * MB


SERVED = """
import base64, json, sys
from pathlib import Path
import pandas as pd, torch
from builders import base_parameters, big_png
from mlflow.exceptions import MlflowException
from clip_reid.inference.gallery_store import saved_gallery
from clip_reid.modeling import ReidCheckpoint
from clip_reid.pipelines.inference.nodes import identify_queries_served

def status():
    fields = dict(l.split(":", 1) for l in Path("/proc/self/status").read_text().splitlines())
    return {k: int(fields[k].split()[0]) * 1024 for k in ("VmRSS", "VmHWM")}

checkpoint = ReidCheckpoint.load(sys.argv[1])
gallery = saved_gallery(torch.load(sys.argv[2], weights_only=True))
inference = base_parameters("inference")["inference"] | {"threshold": 0.5, "top_k": 3,
                                                          "batch_size": 64}
crop = base64.b64encode(big_png(64, 128)).decode()
identify_queries_served(pd.DataFrame({"image": [crop]}), checkpoint, gallery, inference)
before = status()["VmRSS"]
large = base64.b64encode(big_png(4096, 4096)).decode()
refused = 0
for size in (32, 4, 32, 4):  # 32 images: over max_request_pixels; 4: within it
    try:
        identify_queries_served(pd.DataFrame({"image": [large] * size}), checkpoint, gallery,
                                inference)
    except MlflowException as error:
        assert "max_request_pixels" in str(error), error
        refused += 1
print(json.dumps({"before": before, "refused": refused, **status()}))
"""


def test_requests_of_32_large_images_leave_the_served_model_small(model):
    checkpoint, gallery = model
    run = subprocess.run([sys.executable, "-c", SERVED, str(checkpoint), str(gallery)],
                         env=_env(), capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    memory = json.loads(run.stdout.splitlines()[-1])
    print(f"served: {memory['before'] / MB:.0f} MB warmed up, peak {memory['VmHWM'] / MB:.0f} "
          f"MB, after {memory['VmRSS'] / MB:.0f} MB")
    assert memory["refused"] == 2
    assert memory["VmHWM"] - memory["before"] < SERVED_PEAK_MB * MB
    assert memory["VmRSS"] - memory["before"] < SERVED_AFTER_MB * MB
