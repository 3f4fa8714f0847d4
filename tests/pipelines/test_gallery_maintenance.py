"""Forgetting crops of a Milvus gallery: the library call and the documented command."""

import json

import pandas as pd
import pytest
import torch
from kedro_project import copy_project, kedro, output

from clip_reid.inference.gallery_retention import GalleryMaintenanceSettings, apply_maintenance
from clip_reid.inference.milvus_gallery import SECONDS_PER_DAY, MilvusGallery


def _fill(store: MilvusGallery, count: int = 12) -> pd.DataFrame:
    """``count`` crops; pid = n // 3, taken n days after the epoch."""
    rows = pd.DataFrame({"path": [f"g/{n:02d}.jpg" for n in range(count)],
                         "pid": [n // 3 for n in range(count)], "camid": [0] * count,
                         "timestamp": [n * SECONDS_PER_DAY for n in range(count)]})
    store.prepare(4, 0, "model-a")
    store.upsert(torch.randn(count, 4, generator=torch.Generator().manual_seed(0)),
                 rows["path"].tolist(), rows["pid"].tolist(), rows["camid"].tolist(),
                 rows["timestamp"].tolist(), "model-a")
    return rows


def test_images_people_and_old_crops_are_deleted_with_the_counts(tmp_path):
    with MilvusGallery(str(tmp_path / "g.db")) as store:
        _fill(store)
        settings = GalleryMaintenanceSettings.from_params(
            {"delete_paths": "g/00.jpg;g/01.jpg", "delete_pids": [3], "retention_days": 6.5},
            "gallery_maintenance")
        report = apply_maintenance(store, settings, now=10 * SECONDS_PER_DAY)
        assert report == {"uri": store.uri, "collection": "gallery", "before": 12,
                          "deleted_images": 2, "deleted_pids": 3, "expired": 2, "after": 5}
        assert sorted(store.rows()["path"]) == [f"g/{n:02d}.jpg" for n in (4, 5, 6, 7, 8)]


def test_nothing_to_delete_says_how_to_ask(tmp_path):
    with MilvusGallery(str(tmp_path / "g.db")) as store:
        with pytest.raises(ValueError, match="Nothing to delete: run with --params"):
            apply_maintenance(store, GalleryMaintenanceSettings())
    with pytest.raises(ValueError, match="delete_pids must be integers"):
        GalleryMaintenanceSettings(delete_pids="5;x").pids()


def test_the_documented_command_forgets_a_person_in_the_store_the_uri_names(tmp_path):
    (tmp_path / "project").mkdir()
    project = copy_project(tmp_path / "project")
    uri = str(tmp_path / "elsewhere" / "gallery.db")
    with MilvusGallery(uri) as store:
        _fill(store)
    result = kedro(project, "run", "--pipeline", "gallery_maintenance", "--params",
                   f"inference.gallery.uri={uri},gallery_maintenance.delete_pids=1;2")
    assert result.returncode == 0, output(result)[-3000:]
    [report_file] = (project / "data" / "08_reporting").glob(
        "gallery_maintenance_report.json/*/gallery_maintenance_report.json")
    report = json.loads(report_file.read_text())
    assert (report["uri"], report["before"], report["deleted_pids"], report["after"]) == (
        uri, 12, 6, 6)
    with MilvusGallery(uri) as store:
        assert sorted(set(store.rows()["pid"])) == [0, 3]
