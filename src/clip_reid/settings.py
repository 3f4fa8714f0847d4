"""Kedro project settings: soft-merged parameters so a recipe environment overrides single keys."""

from kedro.config import OmegaConfigLoader
from omegaconf.resolvers import oc

CONFIG_LOADER_CLASS = OmegaConfigLoader
CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    "merge_strategy": {"parameters": "soft"},
    # Lets tests and users point MLflow tracking at another store via an environment variable.
    "custom_resolvers": {"oc.env": oc.env},
}

from clip_reid.hooks import MlflowArtifactHook, ParameterValidationHook  # noqa: E402

HOOKS = (ParameterValidationHook(), MlflowArtifactHook())
