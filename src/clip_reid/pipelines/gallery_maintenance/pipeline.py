"""gallery_maintenance: `gallery_store` + what to delete → `gallery_maintenance_report`.

    kedro run --pipeline gallery_maintenance --params "gallery_maintenance.delete_pids=5;7"
    kedro run --pipeline gallery_maintenance --params gallery_maintenance.retention_days=30
"""

from kedro.pipeline import Node, Pipeline

from .nodes import maintain_gallery


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline([
        Node(maintain_gallery, ["gallery_store", "params:gallery_maintenance"],
             "gallery_maintenance_report", name="maintain_gallery"),
    ])
