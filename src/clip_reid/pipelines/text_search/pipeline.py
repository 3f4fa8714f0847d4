"""text_search: `reid_model` + `gallery_index` + sentences → `text_search.results` (CSV) and
`text_search.figures` (one picture per sentence), both versioned and logged to MLflow.

    kedro run --pipelines text_search --params "text_search.queries=a woman in a red top"
    kedro run --pipelines text_search --params "text_search.queries_file=queries.txt"
"""

from kedro.pipeline import Node, Pipeline, pipeline

from .nodes import read_text_queries, search_gallery_by_text


def create_pipeline(**kwargs) -> Pipeline:
    """Read the sentences, then search the gallery of the latest run with them."""
    nodes = Pipeline([
        Node(read_text_queries, "params:text_search", "queries", name="read_text_queries"),
        Node(search_gallery_by_text,
             ["queries", "reid_model", "gallery_index", "gallery_store", "params:text_search"],
             ["results", "figures"], name="search_gallery_by_text"),
    ])
    return pipeline(nodes, namespace="text_search",
                    inputs={"reid_model", "gallery_index", "gallery_store"},
                    parameters={"params:text_search"})
