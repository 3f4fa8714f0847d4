"""Kedro project settings: soft-merged parameters so a recipe environment overrides single keys."""

from kedro.config import OmegaConfigLoader
from omegaconf.resolvers import oc

from clip_reid.project import warning_filters

warning_filters.install()  # before the config loader and the hooks trigger the warnings it drops

CONFIG_LOADER_CLASS = OmegaConfigLoader
CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    "merge_strategy": {"parameters": "soft"},
    # Lets tests and users point MLflow tracking at another store via an environment variable.
    "custom_resolvers": {"oc.env": oc.env},
}

from clip_reid.project.hooks import (  # noqa: E402
    MissingInputsHook,
    MlflowArtifactHook,
    ParameterValidationHook,
    RayHook,
    RunOwnOutputsHook,
    ThreadsHook,
)
from clip_reid.project.mlflow_hooks import TrackedRunHook  # noqa: E402

# kedro-mlflow's hook runs as TrackedRunHook (redaction, run tags, killed runs marked), last in
# HOOKS so that, like the plugin's own instance, it is called first (pluggy calls LIFO). The
# parameter check and the missing-input check are `tryfirst` (in that order, so listed the other
# way round): a bad parameter or a stage not run yet stops the run before an MLflow run opens.
DISABLE_HOOKS_FOR_PLUGINS = ("kedro_mlflow",)
HOOKS = (MissingInputsHook(), ParameterValidationHook(), ThreadsHook(), RunOwnOutputsHook(),
         MlflowArtifactHook(), RayHook(), TrackedRunHook())
