"""captions: `image_index` + text sources → `image_captions`, coverage, and the `clip_backbone`."""

from kedro.pipeline import Node, Pipeline

from .nodes import collect_captions, prepare_clip_backbone


def create_pipeline(**kwargs) -> Pipeline:
    """Gather captions from every configured source; optionally caption-tune CLIP on them."""
    return Pipeline(
        [
            Node(
                collect_captions,
                ["image_index", "dataset_root", "params:captions"],
                ["image_captions", "caption_coverage", "caption_metrics"],
                name="collect_captions",
            ),
            Node(
                prepare_clip_backbone,
                ["image_index", "image_captions", "params:model", "params:caption_finetune",
                 "params:trainer", "params:seed"],
                "clip_backbone",
                name="prepare_clip_backbone",
            ),
        ]
    )
