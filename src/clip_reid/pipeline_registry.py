"""The project's pipelines, registered by hand: Kedro 1.7's find_pipelines cannot compose `full`."""

from kedro.pipeline import Pipeline

from clip_reid.pipelines import (
    captions,
    data_ingestion,
    encoder_training,
    evaluation,
    inference,
    prompt_learning,
    text_search,
)


def register_pipelines() -> dict[str, Pipeline]:
    """Map pipeline names to pipelines; `full` runs every stage in order and, through
    kedro-mlflow, logs the served model (see pipelines/inference/served_model.py)."""
    pipelines = {
        "data_ingestion": data_ingestion.create_pipeline(),
        "captions": captions.create_pipeline(),
        "prompt_learning": prompt_learning.create_pipeline(),
        "encoder_training": encoder_training.create_pipeline(),
        "evaluation": evaluation.create_pipeline(),
    }
    pipelines["full"] = inference.served_full(sum(pipelines.values(), Pipeline([])))
    pipelines["__default__"] = pipelines["full"]
    pipelines["evaluation_baseline"] = evaluation.create_baseline_pipeline()
    pipelines["inference"] = inference.create_pipeline()
    pipelines["text_search"] = text_search.create_pipeline()
    return pipelines
