"""`full` as a kedro-mlflow PipelineML: training + gallery embedding, bound to the served
inference pipeline, so the hook logs an MLflow model that identifies POSTed images after every
run. The model carries the package's code and its pinned dependencies, so it loads where
clip_reid is not installed."""

from __future__ import annotations

from importlib.metadata import requires
from pathlib import Path

from kedro.pipeline import Pipeline
from kedro_mlflow.pipeline.pipeline_ml import KedroMlflowPipelineMLError, PipelineML
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, Schema

import clip_reid
from clip_reid.pipelines.inference.pipeline import QUERY_INPUT, create_served_pipeline

SERVED_MODEL_NAME = "model"  # serve it with `mlflow models serve -m runs:/<run_id>/model`
# ... or, the newest `full` run's, with `mlflow models serve -m models:/clip_reid@current`
REGISTERED_MODEL = "clip_reid"
CURRENT_ALIAS = "current"
# What a client POSTs: one row per query, an image or a description (text) of the person.
SERVED_SIGNATURE = ModelSignature(inputs=Schema([
    ColSpec("string", "image", required=False),   # base64 (or data URL) of the encoded image
    ColSpec("string", "text", required=False),    # or a description: "a woman in a red top"
    ColSpec("string", "name", required=False),    # echoed back to tell the answers apart
    ColSpec("long", "camid", required=False),     # camera index, for camera-aware (SIE) models
    # Optional filters: answer only with crops of these cameras ("3;4;5") taken in the window
    # [time_from, time_to] (seconds, as the gallery's timestamps).
    ColSpec("string", "cameras", required=False),
    ColSpec("double", "time_from", required=False),
    ColSpec("double", "time_to", required=False),
]))


class ServedPipelineML(PipelineML):
    """A PipelineML whose partial runs do not fail.

    kedro-mlflow re-checks the binding whenever the pipeline is filtered, and fails when the
    nodes writing the model's artifacts are filtered out: `--only-missing-outputs` skips them
    once their files exist, `--from-nodes` / `--nodes` may leave them out. Such a subset runs as
    a plain pipeline instead; when the whole pipeline was selected (`--only-missing-outputs`),
    the hook still logs the model from the artifacts on disk.
    """

    def _turn_pipeline_to_ml(self, pipeline: Pipeline) -> Pipeline:
        try:
            return type(self)(pipeline.nodes, inference=self.inference,
                              input_name=self.input_name, kpm_kwargs=self.kpm_kwargs,
                              log_model_kwargs=self.log_model_kwargs)
        except KedroMlflowPipelineMLError:
            return Pipeline(pipeline.nodes)


def served_full(training: Pipeline) -> ServedPipelineML:
    """``training`` (which ends by embedding the gallery and publishing model and gallery),
    bound to the served pipeline (what kedro-mlflow's pipeline_ml_factory builds, with the
    class above)."""
    return ServedPipelineML(
        training.nodes,
        inference=create_served_pipeline(),
        input_name=QUERY_INPUT,
        log_model_kwargs={
            "name": SERVED_MODEL_NAME,
            "registered_model_name": REGISTERED_MODEL,
            "code_paths": [str(Path(clip_reid.__file__).parent)],
            "signature": SERVED_SIGNATURE,
            "pip_requirements": runtime_requirements(),
        },
    )


def runtime_requirements() -> list[str]:
    """The project's own dependency pins: mlflow's guess lists clip-reid itself (not on PyPI;
    the model carries its code) and misses torch."""
    return [pin for pin in requires("clip-reid") or [] if "extra ==" not in pin]
