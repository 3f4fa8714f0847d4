"""The third-party warnings a user cannot act on, silenced precisely and in one place.

A warning a user of this project cannot act on (a library calling another library's deprecated
API) drowns the ones they can. Each entry below names the category, a regex for the start of the
message, the exact emitting module, and the upstream issue or version that removes it; anything
else still reaches the console. Drop an entry when the pinned version that fixes it is installed.
Third-party log records of the same kind (not Python warnings) are listed in KNOWN_LOG_RECORDS.
``tests/project/test_warnings.py`` fails on any warning a demo ingestion prints that is neither
silenced here nor listed there as actionable.
"""

from __future__ import annotations

import logging
import re
import warnings
from dataclasses import dataclass


@dataclass(frozen=True)
class KnownWarning:
    """One third-party warning: what it is, who emits it, and what will remove it."""

    category: type[Warning]
    message: str  # regex matched (case-insensitively) at the start of the message
    module: str  # regex for the full name of the module the warning is attributed to
    upstream: str  # the upstream issue / fixed version, so the entry can be dropped later

    def as_logged(self) -> re.Pattern[str]:
        """How ``logging.captureWarnings`` (on under Kedro's RichHandler) renders this warning:
        ``<path of the module>.py:<line>: <Category>: <message>``."""
        path = self.module.replace(r"\.", "/")
        return re.compile(  # \w*: a library's own subclass of the category, printed by its name
            rf"(.*/)?{path}(/__init__)?\.py:\d+: \w*{self.category.__name__}: {self.message}",
            re.IGNORECASE)


KNOWN_WARNINGS: tuple[KnownWarning, ...] = (
    # ray 2.60.0: DataContext.copy() deep-copies every field through __setattr__, which warns
    # for these deprecated fields whether or not anyone set them (ray/data/context.py); each
    # Ray Data execution copies the context. Only runs with an engine set to ray import it.
    KnownWarning(
        DeprecationWarning,
        r"`(use_push_based_shuffle|use_polars|use_arrow_tensor_v2)` is deprecated",
        r"ray\.data\.context",
        "ray 2.60.0 DataContext.__setattr__ warns on deepcopy; drop when a Ray release stops",
    ),
    # omegaconf 2.4 deprecated register_new_resolver() for register_resolver()
    # (omry/omegaconf#1322, migration notes in omry/omegaconf#426). kedro 1.7.0
    # (OmegaConfigLoader: its own resolvers and settings.CONFIG_LOADER_ARGS["custom_resolvers"])
    # and kedro-mlflow 2.0.3 (MlflowHook.after_context_created, "km.random_name") still call it;
    # no release of either has switched yet.
    KnownWarning(
        UserWarning,
        r"register_new_resolver\(\) is deprecated",
        r"(kedro\.config\.omegaconf_config|kedro_mlflow\.framework\.hooks\.mlflow_hook)",
        "omry/omegaconf#1322; still called by kedro 1.7.0 and kedro-mlflow 2.0.3",
    ),
    # mlflow >= 2.20 (mlflow/mlflow#14235) warns when a PythonModel subclass's predict() has no
    # type hints; it fires when kedro-mlflow 2.0.3 defines KedroPipelineModel (its predict takes
    # a DataFrame without annotation). Signatures of our served model are set explicitly
    # (project/served_model.py), so the inference it advertises is not needed.
    # mlflow emits it under its own `simplefilter("once")` (utils/annotations.py,
    # filter_user_warnings_once), which overrides any warnings filter: the logging filter below
    # is what drops it.
    KnownWarning(
        UserWarning,
        r"(\x1b\[[\d;]*m)?Add type hints to the `predict` method",
        r"mlflow\.pyfunc\.utils\.data_validation",
        "mlflow/mlflow#14235 (mlflow 2.20); KedroPipelineModel.predict unannotated in "
        "kedro-mlflow 2.0.3",
    ),
    # mlflow 3 advises an input_example with every logged model. The served model's signature is
    # given explicitly (SERVED_SIGNATURE in project/served_model.py); an example
    # would only make mlflow load and run the model once more while logging it.
    KnownWarning(
        UserWarning,
        r"(\x1b\[[\d;]*m)?An input example was not provided when logging the model",
        r"mlflow\.pyfunc",
        "advisory of mlflow 3.17 (pyfunc.log_model), not a defect; signature set explicitly",
    ),
    # torch >= 2.10 deprecates constructing pytree.LeafSpec; lightning 2.6.6 still does so in
    # lightning.pytorch.utilities._pytree (Lightning-AI/pytorch-lightning#21326).
    KnownWarning(
        FutureWarning,
        r"`isinstance\(treespec, LeafSpec\)` is deprecated",
        r"lightning\.pytorch\.utilities\._pytree",
        "Lightning-AI/pytorch-lightning#21326; still emitted by lightning 2.6.6 with torch 2.14",
    ),
    # torch 2.14 deprecates TorchScript. OpenAI publishes its CLIP checkpoints (RN50.pt,
    # ViT-B-16.pt) only as TorchScript archives, and torch.jit.load is the way to read their
    # tensors without unpickling Python objects (modeling/weights.py). Drop the entry when the
    # recipes switch to a state-dict copy of the weights.
    KnownWarning(
        FutureWarning,
        r"`torch\.jit\.load` is deprecated",
        r"torch\.jit\._serialization",
        "torch 2.14 TorchScript deprecation; openai/CLIP ships TorchScript archives only",
    ),
    # FastAPI 0.165 deprecated ORJSONResponse (FastAPIDeprecationWarning, a UserWarning);
    # kedro-viz 12.5.0 subclasses it for its API responses, so `kedro viz` warns on start.
    KnownWarning(
        UserWarning,
        r"ORJSONResponse is deprecated",
        r"kedro_viz\.api\.apps",
        "fastapi 0.165 ORJSONResponse deprecation; kedro-viz 12.5.0 EnhancedORJSONResponse",
    ),
    # Deprecations below are hidden by Python's default filters at run time (they come from
    # library modules) and show under pytest or `python -W default`.
    # kedro-mlflow 2.0.3 still declares its pydantic models with class-based `Config`
    # (config/kedro_mlflow_config.py), deprecated since pydantic 2.0.
    KnownWarning(
        DeprecationWarning,
        r"Support for class-based `config` is deprecated",
        r"kedro_mlflow\.config\.kedro_mlflow_config",
        "pydantic 2 migration left undone in kedro-mlflow 2.0.3 (class Config)",
    ),
    # mlflow 3.17's tracking models declare a relationship with lazy="noload", deprecated in
    # SQLAlchemy 2.1 (dbmodels/models.py); raised when its SQLite store maps its tables.
    KnownWarning(
        DeprecationWarning,
        r"The ``noload`` loader strategy is deprecated",
        r"mlflow\.store\.tracking\.sqlalchemy_store",
        "SQLAlchemy 2.1 noload deprecation; still used by mlflow 3.17.2 dbmodels",
    ),
)


@dataclass(frozen=True)
class KnownLogRecord:
    """A third-party log record (not a Python warning) that tells the user nothing to do."""

    logger: str
    message: str  # regex matched at the start of the record's message
    upstream: str


KNOWN_LOG_RECORDS: tuple[KnownLogRecord, ...] = (
    # mlflow 3 logs this whenever a PythonModel object is logged. kedro-mlflow 2.0.3's
    # pipeline_ml_factory can only log its KedroPipelineModel that way (no models-from-code
    # path); the trust boundary it describes is stated in the README's security section.
    KnownLogRecord(
        "mlflow.pyfunc",
        r"Passing a Python object as `python_model` causes it to be serialized using CloudPickle",
        "mlflow 3 models-from-code advice; not offered by kedro-mlflow 2.0.3 pipeline_ml_factory",
    ),
    # lightning 2.6 advertises its hosted logger (litlogger) in a 10-line INFO record at the start
    # of every fit that has no LitLogger (LoggerConnector.configure_logger); every stage's run is
    # tracked in MLflow here, so the advert only pushes the stage's own lines off the screen.
    # lightning_utilities keeps one rank-zero logger, renamed by whichever Lightning package
    # was imported last: importing pytorch_lightning too (mlflow and ray's Lightning support do)
    # moves the advert to its name.
    *(KnownLogRecord(
        f"{package}.utilities.rank_zero",
        r"💡 Tip: For seamless cloud logging",
        "lightning 2.6 LoggerConnector.configure_logger advert; no setting turns it off",
    ) for package in ("lightning.pytorch", "pytorch_lightning")),
    # pymilvus 3.0.2 asks the server for a timestamp (AllocTimestamp) on connecting; milvus-lite
    # 3.2.2's in-process gRPC server does not implement that call, so grpc logs the servicer's
    # NotImplementedError with a traceback (ERROR), and pymilvus carries on without it. The
    # only gRPC server in the process is milvus-lite's (inference.gallery.store=milvus).
    KnownLogRecord(
        "grpc._server",
        r"Exception calling application: Method not implemented!",
        "milvus-lite 3.2.2 servicer lacks AllocTimestamp, which pymilvus 3.0.2 calls",
    ),
    # kedro-viz draws `full` (a kedro-mlflow PipelineML) by filtering it per namespace, and
    # kedro-mlflow 2.0.3 warns on each filter that the result is a plain Pipeline, which is
    # exactly what kedro-viz needs (Galileo-Galilei/kedro-mlflow#569): 24 lines per `kedro viz`.
    KnownLogRecord(
        "kedro_mlflow.pipeline.pipeline_ml",
        r"BEWARE - This 'Pipeline' is no longer a 'PipelineML' object",
        "kedro-mlflow 2.0.3 MSG_WARNING_PIPELINEML_DEMOTED, by design for kedro-viz (#569)",
    ),
    # kedro-mlflow 2.0.3 logs, for every parameter of the served model, where it pickled it in
    # a temporary folder, with the path printed as the literal text "f'{artifact_path}'" (a
    # string without its f-prefix, KedroPipelineModel.extract_pipeline_artifacts): no content.
    KnownLogRecord(
        "kedro_mlflow.mlflow.kedro_pipeline_model",
        r"The parameter '[^']*' is persisted \(as pickle\) at the following location: "
        r"f'\{artifact_path\}'",
        "kedro-mlflow 2.0.3 kedro_pipeline_model.py:165, an f-string missing its prefix",
    ),
)


class _DropRecords(logging.Filter):
    """Drops the known records of one logger."""

    def __init__(self, patterns: list[re.Pattern[str]]) -> None:
        super().__init__()
        self.patterns = patterns

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        return not any(pattern.match(text) for pattern in self.patterns)


class _DropKnownWarnings(logging.Filter):
    """Drops the known warnings where ``logging.captureWarnings`` logs them (``py.warnings``)."""

    def __init__(self) -> None:
        super().__init__()
        self.patterns = [known.as_logged() for known in KNOWN_WARNINGS]

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        return not any(pattern.match(text) for pattern in self.patterns)


def install() -> None:
    """Silence each known warning, as a warnings filter and at the ``py.warnings`` logger.

    Idempotent: warnings filters are de-duplicated and the logging filter is added once.
    """
    for known in KNOWN_WARNINGS:
        warnings.filterwarnings(
            "ignore",
            message=known.message,
            category=known.category,
            module=known.module + r"\Z",
        )
    captured = logging.getLogger("py.warnings")
    if not any(isinstance(existing, _DropKnownWarnings) for existing in captured.filters):
        captured.addFilter(_DropKnownWarnings())
    for name in {known.logger for known in KNOWN_LOG_RECORDS}:
        target = logging.getLogger(name)
        if not any(isinstance(existing, _DropRecords) for existing in target.filters):
            patterns = [re.compile(k.message) for k in KNOWN_LOG_RECORDS if k.logger == name]
            target.addFilter(_DropRecords(patterns))
