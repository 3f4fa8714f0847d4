"""data_ingestion: dataset folder → `image_index` (+ report and statistics)."""

from kedro.pipeline import Node, Pipeline

from .nodes import index_images, prepare_dataset, summarise_dataset


def create_pipeline(**kwargs) -> Pipeline:
    """Obtain the dataset, index its crops, and summarise the splits."""
    return Pipeline(
        [
            Node(prepare_dataset, "params:dataset", "dataset_root", name="prepare_dataset"),
            Node(
                index_images,
                ["dataset_root", "params:dataset", "params:ingestion"],
                ["image_index", "ingestion_report"],
                name="index_images",
            ),
            Node(
                summarise_dataset,
                ["image_index", "params:dataset"],
                ["dataset_stats", "dataset_metrics"],
                name="summarise_dataset",
            ),
        ]
    )
