import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clip_reid.data.attributes import read_attribute_mat
from clip_reid.data.image_index import dataset_statistics
from clip_reid.data.market import build_image_index
from clip_reid.data.synthetic import (
    SyntheticConfig,
    SyntheticConfigMismatch,
    ensure_synthetic_market,
    generate_synthetic_market,
)
from clip_reid.metrics import evaluate_rank
from clip_reid.metrics.baselines import colour_histograms

SMALL = SyntheticConfig(seed=5, num_train_ids=10, num_test_ids=8, num_distractors=6, num_junk=4)


def _digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*")) if p.is_file()
    }


@pytest.fixture(scope="module")
def small_set(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synthetic") / "demo"
    generate_synthetic_market(root, SMALL)
    return root


def test_same_seed_gives_identical_files_other_seed_differs(small_set, tmp_path):
    again = tmp_path / "again"
    generate_synthetic_market(again, SMALL)
    assert _digest(again) == _digest(small_set)
    other = tmp_path / "other"
    generate_synthetic_market(other, SyntheticConfig(**{**SMALL.__dict__, "seed": 6}))
    assert _digest(other) != _digest(small_set)


def test_layout_names_and_protocol_like_market(small_set):
    index, report = build_image_index(small_set)
    stats = dataset_statistics(index).set_index("subset")
    assert stats.loc["train", "num_ids"] == 10
    assert stats.loc["query", "num_ids"] == 8
    assert stats.loc["gallery", "num_ids"] == 9  # 8 identities + the distractor pid 0
    assert report.junk_dropped["gallery"] == 4 and report.bad_names == []
    train_pids = set(index.loc[index.split == "train", "pid"])
    test_pids = set(index.loc[index.split != "train", "pid"]) - {0}
    assert not train_pids & test_pids
    assert report.warnings == []  # every query has a cross-camera gallery match
    with Image.open(index.path[0]) as image:
        assert image.size == (64, 128) and image.mode == "RGB"


def test_attribute_file_matches_identities(small_set):
    attributes = read_attribute_mat(small_set / "market_attribute.mat")
    index, _ = build_image_index(small_set)
    assert set(attributes.loc[attributes.split == "train", "pid"]) == set(
        index.loc[index.split == "train", "pid"]
    )
    assert len(attributes[attributes.split == "test"]) == 8
    upper = attributes[[c for c in attributes if c.startswith("up") and c != "up"]]
    assert (np.asarray(upper) == 2).sum(axis=1).tolist() == [1] * len(attributes)
    assert {"pattern", "logo", "shoe", "body"} <= set(attributes.columns)


def test_ensure_is_idempotent_and_rejects_other_configs(small_set):
    before = _digest(small_set)
    assert ensure_synthetic_market(small_set, SMALL) == small_set
    assert _digest(small_set) == before
    with pytest.raises(SyntheticConfigMismatch, match="Delete"):
        ensure_synthetic_market(small_set, SyntheticConfig(seed=99))
    manifest = json.loads((small_set / "synthetic_manifest.json").read_text())
    assert manifest["config"]["seed"] == 5


def test_ensure_refuses_a_foreign_folder(tmp_path):
    (tmp_path / "mine").mkdir()
    with pytest.raises(SyntheticConfigMismatch, match="not a generated demo set"):
        ensure_synthetic_market(tmp_path / "mine", SMALL)


def test_colour_histogram_baseline_does_not_solve_it(tmp_path):
    root = tmp_path / "demo"
    generate_synthetic_market(
        root, SyntheticConfig(seed=1, num_train_ids=2, num_test_ids=60, num_distractors=60)
    )
    index, _ = build_image_index(root)
    query, gallery = index[index.split == "query"], index[index.split == "gallery"]
    distances = 1 - colour_histograms(query.path) @ colour_histograms(gallery.path).T
    result = evaluate_rank(distances, query.pid, gallery.pid, query.camid, gallery.camid)
    assert result.rank(1) < 0.4
