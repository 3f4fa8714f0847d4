"""The browser tests find a Chromium the usual Playwright ways (tests/browser.py)."""

import pytest
from browser import ENV, MISSING, chromium_executable


def test_an_explicit_browser_wins_and_must_exist(tmp_path, monkeypatch):
    chrome = tmp_path / "chrome"
    chrome.write_text("")
    monkeypatch.setenv(ENV, str(chrome))
    assert chromium_executable(str(tmp_path / "playwright-chromium")) == str(chrome)
    monkeypatch.setenv(ENV, str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match="is not a file"):
        chromium_executable(str(chrome))


def test_playwrights_own_build_comes_before_a_system_one(tmp_path, monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    own = tmp_path / "chrome"
    own.write_text("")
    assert chromium_executable(str(own)) is None  # Playwright launches its own


def test_no_browser_says_how_to_get_one(tmp_path, monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    monkeypatch.setattr("browser.SYSTEM", ())
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(FileNotFoundError) as missing:
        chromium_executable(str(tmp_path / "absent"))
    assert str(missing.value) == MISSING and "playwright install chromium" in MISSING
