"""captions: `image_index` + text sources → `image_captions` and coverage statistics."""

from kedro.pipeline import Node, Pipeline

from .nodes import collect_captions


def create_pipeline(**kwargs) -> Pipeline:
    """Gather captions from every configured source."""
    return Pipeline(
        [
            Node(
                collect_captions,
                ["image_index", "params:dataset", "params:captions"],
                ["image_captions", "caption_coverage", "caption_metrics"],
                name="collect_captions",
            ),
        ]
    )
