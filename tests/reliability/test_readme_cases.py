"""The README's "Fault cases" table names tests that exist, and every file of the fault suite
has a row (so the list and the suite cannot drift apart)."""

import re

from builders import REPO_ROOT

SUITE = REPO_ROOT / "tests" / "reliability"


def _section() -> str:
    readme = (REPO_ROOT / "README.md").read_text()
    start = readme.index("\n## Fault cases\n")
    end = readme.index("\n## ", start + 1)
    return readme[start:end]


def _references() -> list[tuple[str, str | None]]:
    found = re.findall(r"`((?:tests/[\w/]+/)?test_\w+\.py)(?:::(\w+))?`", _section())
    return [(path if path.startswith("tests/") else f"tests/reliability/{path}", name or None)
            for path, name in found]


def test_every_test_the_table_names_exists():
    references = _references()
    assert len(references) > 20
    for path, name in references:
        source = REPO_ROOT / path
        assert source.is_file(), path
        if name:
            assert re.search(rf"^def {name}\(", source.read_text(), re.M), f"{path}::{name}"


def test_every_file_of_the_fault_suite_has_a_row():
    listed = {path for path, _ in _references()}
    suite = {f"tests/reliability/{p.name}" for p in SUITE.glob("test_*.py")}
    assert suite <= listed, sorted(suite - listed)
