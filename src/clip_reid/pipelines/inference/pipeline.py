"""inference: query images + `reid_model` + a labelled gallery → `query_identities`.

The same prediction node is the inference half of the MLflow model that `full` logs
(`create_served_pipeline`, bound in served_model.py), fed with the unversioned copies
`publish_for_serving` writes.
"""

from kedro.pipeline import Node, Pipeline, pipeline

from .nodes import (
    embed_gallery,
    identify_queries,
    identify_queries_served,
    list_query_images,
    publish_for_serving,
)

QUERY_INPUT = "query_images"
PREDICT_PARAMS = ["params:inference.threshold", "params:inference.top_k",
                  "params:inference.batch_size"]


def create_gallery_pipeline(**kwargs) -> Pipeline:
    """List the gallery (from `image_index` unless inference.gallery names another) and embed
    it, reusing the previous version's features."""
    return Pipeline([
        Node(embed_gallery,
             ["reid_model", "previous_gallery_index", "params:inference.gallery",
              "image_index", "params:inference.distance", "params:inference.batch_size",
              "params:inference.embedding", "gallery_store"],
             "gallery_index", name="embed_gallery"),
    ])


def create_pipeline(**kwargs) -> Pipeline:
    """`kedro run --pipelines inference`: identify every image of the query folder."""
    listing = Node(list_query_images, ["params:inference.queries", "dataset_root"],
                   QUERY_INPUT, name="list_query_images")
    inputs = [QUERY_INPUT, "reid_model", "gallery_index", *PREDICT_PARAMS]
    names = ["query_images", "reid_model", "gallery_index", "threshold", "top_k", "batch_size"]
    predict = Node(identify_queries,
                   {**dict(zip(names, inputs, strict=True)), "gallery_store": "gallery_store"},
                   "query_identities", name="identify_queries")
    return Pipeline([listing]) + create_gallery_pipeline() + Pipeline([predict])


def create_publish_pipeline(**kwargs) -> Pipeline:
    """Copy this run's model and gallery to the files the logged MLflow model packs."""
    return Pipeline([
        Node(publish_for_serving, ["reid_model", "gallery_index"],
             ["served_reid_model", "served_gallery_index"], name="publish_for_serving"),
    ])


def create_served_pipeline(**kwargs) -> Pipeline:
    """The inference half of the MLflow model: requests in, identities out (bad input → 400)."""
    predict = Node(identify_queries_served,
                   [QUERY_INPUT, "reid_model", "gallery_index", *PREDICT_PARAMS,
                    "params:inference.serving"],
                   "query_identities", name="identify_queries")
    return pipeline([predict], inputs={"reid_model": "served_reid_model",
                                       "gallery_index": "served_gallery_index"})
