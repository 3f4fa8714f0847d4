"""Where embedding and training run: in this process (``local``) or on a Ray cluster (``ray``).

Plain settings with no Ray import, so a run that keeps the local engine never loads Ray; the
Ray code lives in clip_reid.inference.ray_embedding and clip_reid.modeling.ray_training.
"""

from __future__ import annotations

from dataclasses import dataclass

from clip_reid.settings_base import Settings, SettingsError, setting

ENGINES = ("local", "ray")
OUTPUTS = ("memory", "parquet")


@dataclass(frozen=True)
class EmbeddingEngineSettings(Settings):
    """The `embedding` block of inference and evaluation: how images become features.

    With ``engine: ray`` the image paths are a Ray dataset, decoding runs as CPU tasks and the
    model as a pool of ``actors`` (each loads the checkpoint once) fed batches of the block's own
    ``batch_size``. ``output: parquet`` (Ray only) writes the rows as Parquet files instead of
    sending them back, and the driver streams them into the gallery store ``stream_rows`` at a
    time: for galleries larger than the driver's memory."""

    engine: str = setting("local", choices=ENGINES)
    address: str | None = None  # None: a local Ray instance; "auto" or "ray://host:10001": join
    actors: int = setting(2, ge=1)  # model replicas
    cpus_per_actor: float = setting(1.0, gt=0.0)  # CPUs reserved by each model replica
    decode_cpus: float = setting(1.0, gt=0.0)  # CPUs reserved by each decoding task
    gpus_per_actor: float = setting(0.0, ge=0.0)  # 0 on CPU clusters; 1 (or 0.5 ...) with GPUs
    output: str = setting("memory", choices=OUTPUTS)  # parquet: rows go to files, not the driver
    parquet_dir: str | None = None  # parquet: each run's folder goes under it; None = system temp
    stream_rows: int = setting(4096, ge=1)  # parquet: rows read into the store at a time

    def __post_init__(self) -> None:
        if self.output == "parquet" and self.engine != "ray":
            raise SettingsError("embedding.output: parquet is written by Ray workers: set "
                                "embedding.engine: ray, or output: memory.")


@dataclass(frozen=True)
class RayTrainSettings(Settings):
    """`trainer.ray`: the Ray Train workers of a training stage (``trainer.engine: ray``)."""

    address: str | None = None  # as in EmbeddingEngineSettings
    num_workers: int = setting(2, ge=1)  # DDP ranks; the recipe's batch is split over them
    use_gpu: bool = False  # one GPU per worker
    cpus_per_worker: float = setting(1.0, gt=0.0)
    # Ray Train's per-epoch checkpoints, where a rerun resumes from: a folder or URI every node
    # reaches (NFS, s3://...) on a cluster; None = the stage's work_dir (one machine)
    storage_path: str | None = None
    max_failures: int = setting(0, ge=0)  # worker failures Ray recovers from the last epoch


def ray_address(blocks: dict[str, tuple[str, str | None]]) -> tuple[bool, str | None]:
    """Whether any block (name -> (engine, address)) uses Ray, and the one address they share;
    two different addresses in one run are refused (one run joins one cluster)."""
    used = {name: address for name, (engine, address) in blocks.items() if engine == "ray"}
    if len(set(used.values())) > 1:
        listed = ", ".join(f"{name}.address={address!r}" for name, address in used.items())
        raise ValueError(f"One run joins one Ray cluster, but the parameters name several: "
                         f"{listed}. Set the same address in each block.")
    return bool(used), next(iter(used.values()), None)


def worker_batch_size(batch_size: int, num_instances: int, workers: int) -> int:
    """Each Ray Train worker's P×K batch, so that the global batch stays the recipe's
    ``batch_size``: whole identities (K images each) per worker, the same count on every one."""
    share = batch_size // workers
    if batch_size % workers or share % num_instances:
        raise SettingsError(
            f"encoder_training.batch_size ({batch_size}) must split over trainer.ray.num_workers "
            f"({workers}) into whole identity groups of num_instances ({num_instances}) images: "
            f"use a batch_size that is a multiple of {workers * num_instances}."
        )
    return share
