"""evaluation: `reid_model` + `image_index` → metrics, predictions and figures.

`evaluation.dataset` scores another dataset's query and gallery instead (cross-domain).

`evaluation_baseline` runs the same nodes on the untrained backbone, for comparison.
"""

from kedro.pipeline import Node, Pipeline, pipeline

from .nodes import (
    evaluate_features,
    extract_query_gallery_features,
    select_evaluated_dataset,
    untrained_model,
)
from .text_nodes import evaluate_text_queries

OUTPUTS = ["evaluation_metrics", "evaluation_mlflow_metrics", "query_predictions", "cmc_curve",
           "ranked_results"]


def create_pipeline(**kwargs) -> Pipeline:
    """Evaluate the latest (or `--load-versions`-chosen) trained model."""
    return Pipeline(
        [
            Node(
                select_evaluated_dataset,
                ["image_index", "params:dataset", "params:evaluation", "params:ingestion"],
                ["evaluated_image_index", "evaluated_dataset"],
                name="select_evaluated_dataset",
            ),
            Node(
                extract_query_gallery_features,
                ["reid_model", "evaluated_image_index", "params:evaluation", "params:trainer"],
                ["query_features", "gallery_features"],
                name="extract_query_gallery_features",
            ),
            Node(
                evaluate_features,
                ["query_features", "gallery_features", "evaluated_dataset", "params:evaluation"],
                OUTPUTS,
                name="evaluate_features",
            ),
            Node(
                evaluate_text_queries,
                ["reid_model", "gallery_features", "evaluated_image_index", "image_captions",
                 "params:evaluation"],
                ["text_retrieval_metrics", "text_retrieval_mlflow_metrics"],
                name="evaluate_text_queries",
            ),
        ]
    )


def create_baseline_pipeline(**kwargs) -> Pipeline:
    """The same evaluation of the CLIP backbone before ReID training."""
    # One namespaced pipeline: Kedro names the model `baseline.reid_model` itself (a dotted name
    # written by hand in a Node triggers Kedro's "dataset names contain '.'" warning).
    baseline = Node(untrained_model,
                    ["image_index", "clip_backbone", "params:model", "params:trainer"],
                    "reid_model", name="untrained_model")
    return pipeline(
        Pipeline([baseline]) + create_pipeline(),
        namespace="baseline",
        inputs={"image_index", "clip_backbone", "image_captions"},
        parameters={"params:dataset", "params:evaluation", "params:ingestion", "params:model",
                    "params:trainer"},
    )
