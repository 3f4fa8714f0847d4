"""encoder_training: `image_index` + `text_features` → `reid_model` (+ its ONNX export)."""

from kedro.pipeline import Node, Pipeline

from .nodes import export_reid_model_onnx, train_reid_model


def create_pipeline(**kwargs) -> Pipeline:
    """Fine-tune the image encoder with ID, triplet and image-to-text losses."""
    return Pipeline(
        [
            Node(
                train_reid_model,
                ["image_index", "text_features", "clip_backbone", "image_captions", "params:model",
                 "params:encoder_training", "params:trainer", "params:seed"],
                "reid_model",
                name="train_reid_model",
            ),
            Node(
                export_reid_model_onnx,
                "reid_model",
                ["reid_model_onnx", "onnx_check"],
                name="export_reid_model_onnx",
            ),
        ]
    )
