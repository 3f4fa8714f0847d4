"""evaluation: `reid_model` + `image_index` → metrics, predictions and figures.

`cross_dataset_evaluation` runs the same nodes on `evaluation.dataset`'s query and gallery
(cross-domain) under the namespace `cross_dataset`, so its results never replace the training
dataset's latest evaluation.

`evaluation_baseline` runs the same nodes on the untrained backbone, for comparison.
"""

from kedro.pipeline import Node, Pipeline, pipeline

from .nodes import (
    evaluate_features,
    extract_query_gallery_features,
    select_cross_dataset,
    select_training_dataset,
    untrained_model,
)
from .text_nodes import evaluate_text_queries

OUTPUTS = ["evaluation_metrics", "evaluation_mlflow_metrics", "query_predictions", "cmc_curve",
           "ranked_results"]


def create_pipeline(**kwargs) -> Pipeline:
    """Evaluate the latest (or `--load-versions`-chosen) trained model on its dataset."""
    select = Node(select_training_dataset,
                  ["image_index", "params:dataset", "params:evaluation"],
                  ["evaluated_image_index", "evaluated_dataset"], name="select_training_dataset")
    return _evaluation(select)


def create_cross_dataset_pipeline(**kwargs) -> Pipeline:
    """Evaluate it on `evaluation.dataset`, into `cross_dataset.*` outputs."""
    select = Node(select_cross_dataset,
                  ["image_index", "params:dataset", "params:evaluation", "params:ingestion"],
                  ["evaluated_image_index", "evaluated_dataset"], name="select_cross_dataset")
    return pipeline(
        _evaluation(select), namespace="cross_dataset",
        inputs={"reid_model", "image_index", "image_captions"},
        parameters={"params:dataset", "params:evaluation", "params:ingestion", "params:trainer"},
    )


def _evaluation(select: Node) -> Pipeline:
    """Embed, score and explain the query and gallery ``select`` picks."""
    return Pipeline(
        [
            select,
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
        parameters={"params:dataset", "params:evaluation", "params:model", "params:trainer"},
    )
