"""prompt_learning: `image_index` (+ `image_captions`) → `prompt_learner`, `text_features`."""

from kedro.pipeline import Node, Pipeline

from .nodes import extract_train_image_features, train_prompt_learner


def create_pipeline(**kwargs) -> Pipeline:
    """Cache frozen image features, then learn identity prompts against them."""
    return Pipeline(
        [
            Node(
                extract_train_image_features,
                ["image_index", "clip_backbone", "params:model", "params:prompt_learning",
                 "params:trainer"],
                "train_image_features",
                name="extract_train_image_features",
            ),
            Node(
                train_prompt_learner,
                ["train_image_features", "image_captions", "clip_backbone", "params:model",
                 "params:prompt_learning", "params:dataset", "params:trainer", "params:seed"],
                ["prompt_learner", "text_features"],
                name="train_prompt_learner",
            ),
        ]
    )
