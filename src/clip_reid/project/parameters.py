"""Every parameter block the stages read, as settings classes; checked together at run start.

``validate_parameters`` is what the run-start hook calls, so a typo or an out-of-range value in
any block stops `kedro run` before the first node (a misspelt evaluation key must not cost an
hour of training first).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from clip_reid.data.settings import DatasetSettings, IngestionSettings
from clip_reid.engine_settings import worker_batch_size
from clip_reid.evaluation.settings import EvaluationSettings
from clip_reid.inference.gallery_retention import GalleryMaintenanceSettings
from clip_reid.inference.settings import InferenceSettings
from clip_reid.inference.text_search import TextSearchSettings
from clip_reid.modeling.caption_finetune import CaptionFinetuneSettings
from clip_reid.modeling.encoder_training import EncoderTrainingSettings
from clip_reid.modeling.model_settings import ModelSettings
from clip_reid.modeling.prompt_learning import PromptLearningSettings
from clip_reid.modeling.trainer import TrainerSettings
from clip_reid.modeling.work_dir import check_work_dir
from clip_reid.pipelines.captions.settings import CaptionsSettings
from clip_reid.settings_base import Locator, Settings, SettingsError

SECTIONS: dict[str, type[Settings]] = {
    "dataset": DatasetSettings,
    "ingestion": IngestionSettings,
    "model": ModelSettings,
    "trainer": TrainerSettings,
    "captions": CaptionsSettings,
    "caption_finetune": CaptionFinetuneSettings,
    "prompt_learning": PromptLearningSettings,
    "encoder_training": EncoderTrainingSettings,
    "evaluation": EvaluationSettings,
    "inference": InferenceSettings,
    "text_search": TextSearchSettings,
    "gallery_maintenance": GalleryMaintenanceSettings,
}
TRAINING_STAGES = ("caption_finetune", "prompt_learning", "encoder_training")


def validate_parameters(params: Mapping[str, Any], locate: Locator | None = None,
                        stages: Iterable[str] = TRAINING_STAGES) -> dict[str, Settings]:
    """Every block as its settings object; the first problem raises a SettingsError. The work
    folders of the training ``stages`` that will run are checked too (a folder the project did
    not create is refused); caption_finetune's only when it is enabled."""
    _refuse_unknown_blocks(params, locate)
    seed = params["seed"] if "seed" in params else None
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise SettingsError(f"Parameter seed = {seed!r} is invalid: expected an integer.")
    settings = {name: cls.from_params(params[name] if name in params else None, name, locate)
                for name, cls in SECTIONS.items()}
    for stage in stages:
        if stage != "caption_finetune" or settings[stage].enabled:
            check_work_dir(Path(settings[stage].work_dir), f"{stage}.work_dir")
    trainer, encoder = settings["trainer"], settings["encoder_training"]
    if trainer.engine == "ray":
        worker_batch_size(encoder.batch_size, encoder.num_instances, trainer.ray.num_workers)
    return settings


def _refuse_unknown_blocks(params: Mapping[str, Any], locate: Locator | None) -> None:
    """A misspelt block (``encoder_trainig``) would otherwise be ignored and the run would use
    the defaults."""
    valid = sorted([*SECTIONS, "seed"])
    for name in sorted(set(params) - set(valid)):
        nearest = difflib.get_close_matches(name, valid, n=1)
        hint = f"Did you mean {nearest[0]}? " if nearest else ""
        source = locate(name) if locate else None
        raise SettingsError(
            f"Unknown parameter {name}{f' (set in {source})' if source else ''}. {hint}Valid "
            f"top-level keys: {', '.join(valid)}. Check its spelling."
        )


class ParameterFiles:
    """Finds which configuration file (or `--params`) set a dotted parameter, for messages."""

    def __init__(self, conf_source: Path, envs: Iterable[str],
                 runtime_params: Mapping[str, Any] | None = None) -> None:
        self.files = [path for env in envs
                      for path in sorted((conf_source / env).glob("**/parameters*.yml"))]
        self.runtime = dict(runtime_params or {})

    def __call__(self, dotted: str) -> str | None:
        if _lookup(self.runtime, dotted):
            return "--params"
        found = None
        for path in self.files:  # the last environment that sets it wins
            if _lookup(yaml.safe_load(path.read_text()) or {}, dotted):
                found = str(path)
        return found


def _lookup(tree: Mapping[str, Any], dotted: str) -> bool:
    if dotted in tree:  # `--params a.b=1` arrives flat in some Kedro versions
        return True
    node: Any = tree
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return False
        node = node[part]
    return True
