"""evaluation: `reid_model` + `image_index` → metrics, predictions and figures.

`evaluation_baseline` runs the same nodes on the untrained backbone, for comparison.
"""

from kedro.pipeline import Node, Pipeline, pipeline

from .nodes import evaluate_features, extract_query_gallery_features, untrained_model
from .text_nodes import evaluate_text_queries

OUTPUTS = ["evaluation_metrics", "evaluation_mlflow_metrics", "query_predictions", "cmc_curve",
           "ranked_results"]


def create_pipeline(**kwargs) -> Pipeline:
    """Evaluate the latest (or `--load-versions`-chosen) trained model."""
    return Pipeline(
        [
            Node(
                extract_query_gallery_features,
                ["reid_model", "image_index", "params:evaluation"],
                ["query_features", "gallery_features"],
                name="extract_query_gallery_features",
            ),
            Node(
                evaluate_features,
                ["query_features", "gallery_features", "params:evaluation"],
                OUTPUTS,
                name="evaluate_features",
            ),
            Node(
                evaluate_text_queries,
                ["reid_model", "gallery_features", "image_index", "image_captions",
                 "params:evaluation"],
                ["text_retrieval_metrics", "text_retrieval_mlflow_metrics"],
                name="evaluate_text_queries",
            ),
        ]
    )


def create_baseline_pipeline(**kwargs) -> Pipeline:
    """The same evaluation of the CLIP backbone before ReID training."""
    baseline = Node(untrained_model, ["image_index", "clip_backbone", "params:model"],
                    "baseline.reid_model",
                    name="untrained_model")
    evaluation = pipeline(
        create_pipeline(),
        namespace="baseline",
        inputs={"image_index", "image_captions"},
        parameters={"params:evaluation"},
    )
    return Pipeline([baseline]) + evaluation
