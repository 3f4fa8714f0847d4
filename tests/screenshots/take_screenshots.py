"""Retake the README's pictures (data/08_reporting/readme/) in headless Chromium.

Run from the project root after a demo run, which makes the model, the gallery and the MLflow run
they show:

    kedro run --pipeline full
    PYTHONPATH=src python tests/screenshots/take_screenshots.py            # all three
    PYTHONPATH=src python tests/screenshots/take_screenshots.py viz search  # some of them

- ``viz``: ``kedro viz run`` on a free port, the ``full`` pipeline with its stages collapsed
  -> kedro_viz_full.png
- ``mlflow``: ``mlflow server`` on the project's tracking store (``CLIP_REID_MLFLOW_URI``, else
  ``sqlite:///mlflow.db`` as conf/base/mlflow.yml), the newest finished ``full`` run
  (or ``--run-id``) -> mlflow_full_run.png
- ``search``: ``clip-reid-app`` on the newest trained model, one image query (the first crop of the
  demo's ``query/`` folder, or ``--query-image``) -> search_page.png

A script, not a test: pytest collects ``test_*.py`` only. Needs the ``test`` extra (Playwright)
and Debian's chromium (``apt-get install chromium``).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import Browser, Page, sync_playwright

OUT = Path("data/08_reporting/readme")
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
DEMO_QUERIES = Path("data/01_raw/demo_market/query")
VIZ_VIEWPORT = {"width": 1400, "height": 1300}  # `full` drawn top to bottom fits at about 50 %
TIMEOUT_MS = 300_000
PICTURES = ("viz", "mlflow", "search")
TRACKING_URI = os.environ.get("CLIP_REID_MLFLOW_URI", "sqlite:///mlflow.db")


def _free_port() -> int:
    """A free port below 49152 (kedro viz refuses the ephemeral range the OS would pick)."""
    for port in range(18700, 18800):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 18700-18799")


@contextmanager
def serving(command: list[str], ready_path: str, timeout: float = 600) -> Iterator[str]:
    """Start ``command`` (with ``{port}`` filled in) in its own process group, wait until
    ``ready_path`` answers 200, yield the base URL, then stop exactly that process group."""
    port = _free_port()
    command = [part.replace("{port}", str(port)) for part in command]
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryFile("w+") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            _wait_until_ready(process, url + ready_path, timeout)
            yield url
        except BaseException:
            log.seek(0)
            print(f"--- output of {' '.join(command)} ---\n{log.read()[-5000:]}", file=sys.stderr)
            raise
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(20)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()


def _wait_until_ready(process: subprocess.Popen, url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while process.poll() is None:
        try:
            with urllib.request.urlopen(url, timeout=5) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} did not answer within {timeout:.0f} s")
        time.sleep(1)
    raise RuntimeError(f"the server exited with code {process.returncode} before answering")


def _bin(name: str) -> str:
    return str(Path(sys.executable).with_name(name))


def kedro_viz(browser: Browser) -> Path:
    """The ``full`` pipeline as kedro viz draws it: one box per stage, datasets in layers."""
    command = [_bin("kedro"), "viz", "run", "--no-browser", "--host", "127.0.0.1",
               "--port", "{port}", "--pipeline", "full"]
    with serving(command, "/api/main") as url:
        page = _new_page(browser, VIZ_VIEWPORT, scale=2)
        # kedro viz keeps its settings in localStorage: light theme, no sidebar or minimap, no
        # first-visit hints; the URL selects `full` with every modular pipeline collapsed
        settings = {"theme": "light", "showFeatureHints": False, "orientation": "vertical",
                    "visible": {"sidebar": False, "miniMap": False}}
        page.add_init_script(
            f"window.localStorage.setItem('KedroViz', JSON.stringify({json.dumps(settings)}));")
        page.goto(f"{url}/?pid=full&expandAllPipelines=false")
        page.wait_for_selector(".pipeline-node")
        page.wait_for_timeout(3000)  # the layout animation
        dismiss = page.get_by_role("button", name="Dismiss")  # the "new version" banner
        if dismiss.count():
            dismiss.first.click()
        page.get_by_role("button", name="Reset zoom").click()  # fit the graph to the window
        page.mouse.move(VIZ_VIEWPORT["width"] - 5, VIZ_VIEWPORT["height"] // 2)  # no tooltip
        page.wait_for_timeout(3000)  # the zoom animation
        return _save(page, "kedro_viz_full.png")


def _latest_full_run(run_id: str | None) -> tuple[str, str]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(TRACKING_URI)
    if run_id:
        run = client.get_run(run_id)
        return run.info.experiment_id, run.info.run_id
    experiment = client.get_experiment_by_name("clip_reid")
    runs = client.search_runs(
        [experiment.experiment_id],
        "tags.pipeline = 'full' and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"], max_results=1)
    if not runs:
        raise SystemExit(f"No finished `full` run in {TRACKING_URI}: run "
                         "`kedro run --pipeline full` first.")
    return experiment.experiment_id, runs[0].info.run_id


def mlflow_run(browser: Browser, run_id: str | None) -> Path:
    """The run page of a ``full`` run: parameters, metrics named <stage>/<metric>, tags."""
    experiment_id, run_id = _latest_full_run(run_id)
    command = ["env", "MLFLOW_DISABLE_TELEMETRY=true", _bin("mlflow"), "server",
               "--backend-store-uri", TRACKING_URI, "--host", "127.0.0.1", "--port", "{port}",
               "--workers", "1"]
    with serving(command, "/health") as url:
        page = _new_page(browser, {"width": 1400, "height": 1150}, scale=1.5)
        # the classic ML view, without the assistant panel that opens on a first visit
        page.add_init_script(
            "localStorage.setItem('mlflow.workflowType_v1', JSON.stringify('machine_learning'));"
            "localStorage.setItem('mlflow.assistant.fab.autoOpenedOnFirstLoad_v1', 'true');"
            "localStorage.setItem('mlflow.assistant.panelOpen_v1', 'false');")
        page.goto(f"{url}/#/experiments/{experiment_id}/runs/{run_id}")
        page.wait_for_selector("text=evaluation/rank1", state="attached")
        # the metrics table scrolls inside its box; its end holds stage 2 and the evaluation
        page.evaluate("""() => {
            const cell = [...document.querySelectorAll('a')]
                .find(a => a.textContent === 'evaluation/rank1');
            for (let box = cell; box; box = box.parentElement) {
                if (box.scrollHeight > box.clientHeight + 5
                        && /(auto|scroll)/.test(getComputedStyle(box).overflowY)) {
                    box.scrollTop = box.scrollHeight;
                    return;
                }
            }
        }""")
        page.wait_for_timeout(2000)
        return _save(page, "mlflow_full_run.png")


def search_page(browser: Browser, query_image: Path | None) -> Path:
    """The search page on the newest trained model, after one image query."""
    query = query_image or sorted(DEMO_QUERIES.glob("*.jpg"))[0]
    command = [sys.executable, "-m", "clip_reid.app", "--port", "{port}"]
    with serving(command, "/") as url:
        page = _new_page(browser, {"width": 1400, "height": 660}, scale=1)
        page.goto(url)
        page.wait_for_selector("#app:not([hidden])")
        page.set_input_files("#file", str(query))
        page.wait_for_function("document.body.dataset.state === 'done'")
        page.wait_for_function(
            "[...document.querySelectorAll('#results img')].every(i => i.complete)")
        page.wait_for_timeout(500)
        print(f"search: query {query}, predicted identity "
              f"{page.locator('#predicted').inner_text()}")
        return _save(page, "search_page.png", full_page=True)


def _new_page(browser: Browser, viewport: dict[str, int], scale: float) -> Page:
    page = browser.new_page(viewport=viewport, device_scale_factor=scale)
    page.set_default_timeout(TIMEOUT_MS)  # generous: a busy 2-core machine is slow to render
    return page


def _save(page: Page, name: str, full_page: bool = False) -> Path:
    path = OUT / name
    page.screenshot(path=str(path), full_page=full_page)
    print(f"wrote {path}")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("pictures", nargs="*", help="viz, mlflow and/or search (default: all)")
    parser.add_argument("--run-id", help="the MLflow run to show (default: newest `full` run)")
    parser.add_argument("--query-image", type=Path,
                        help=f"the search page's query (default: first of {DEMO_QUERIES})")
    args = parser.parse_args(argv)
    wanted = args.pictures or list(PICTURES)
    if unknown := set(wanted) - set(PICTURES):
        parser.error(f"unknown picture(s) {sorted(unknown)}: choose from {', '.join(PICTURES)}")
    if not Path("pyproject.toml").is_file() or not Path("conf/base").is_dir():
        raise SystemExit("Run from the project root.")
    OUT.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            if "viz" in wanted:
                kedro_viz(browser)
            if "mlflow" in wanted:
                mlflow_run(browser, args.run_id)
            if "search" in wanted:
                search_page(browser, args.query_image)
        finally:
            browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
