"""The project's pipelines, registered by hand: Kedro 1.7's find_pipelines cannot compose `full`.

Every stage is a modular pipeline whose namespace is its name, so kedro viz collapses it into
one box; datasets keep their public catalog names (`prefix_datasets_with_namespace=False`), so
`--load-versions reid_model:...` and the catalog are unchanged. Node names carry the namespace
(`--nodes evaluation.evaluate_features`).
"""

from kedro.pipeline import Pipeline, pipeline

from clip_reid.pipelines import (
    captions,
    data_ingestion,
    encoder_training,
    evaluation,
    gallery_maintenance,
    inference,
    prompt_learning,
    text_search,
)
from clip_reid.project.served_model import served_full

STAGES = ("data_ingestion", "captions", "prompt_learning", "encoder_training", "evaluation")


def _stage(name: str, stage: Pipeline) -> Pipeline:
    return pipeline(stage, namespace=name, prefix_datasets_with_namespace=False)


def register_pipelines() -> dict[str, Pipeline]:
    """Map pipeline names to pipelines. `full` runs every stage in order, then embeds the
    gallery and publishes model and gallery, bound (kedro-mlflow) to the served inference
    pipeline so the run logs an MLflow model (see project/served_model.py)."""
    pipelines = {
        "data_ingestion": _stage("data_ingestion", data_ingestion.create_pipeline()),
        "captions": _stage("captions", captions.create_pipeline()),
        "prompt_learning": _stage("prompt_learning", prompt_learning.create_pipeline()),
        "encoder_training": _stage("encoder_training", encoder_training.create_pipeline()),
        "evaluation": _stage("evaluation", evaluation.create_pipeline()),
    }
    serving = _stage("inference", inference.create_gallery_pipeline()
                     + inference.create_publish_pipeline())
    full = sum((pipelines[name] for name in STAGES), Pipeline([])) + serving
    pipelines["full"] = served_full(full)
    pipelines["__default__"] = pipelines["full"]
    pipelines["evaluation_baseline"] = evaluation.create_baseline_pipeline()
    pipelines["cross_dataset_evaluation"] = evaluation.create_cross_dataset_pipeline()
    pipelines["inference"] = _stage("inference", inference.create_pipeline())
    pipelines["text_search"] = text_search.create_pipeline()
    pipelines["gallery_maintenance"] = gallery_maintenance.create_pipeline()
    return pipelines
