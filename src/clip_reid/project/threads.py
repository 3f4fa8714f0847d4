"""How many CPU threads a run computes with: the cores actually free, not every core.

Why: torch's OpenMP threads spin while they wait for each other. With one thread per core on a
machine whose cores are busy with other work (a laptop with a browser and an IDE, a shared
server), every parallel region waits for a thread the kernel has descheduled: the demo's stage 2
took 430-528 s per epoch on a busy 2-core machine, and 7-9 s with one thread. So the count is
chosen once, when a run starts, from the cores this process may use (affinity, cgroup quota),
their physical count and the load average, and set for torch and for any process the run starts
(DataLoader workers started by spawn, engines' workers inherit the environment).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

logger = logging.getLogger(__name__)

# Read by OpenMP, MKL and OpenBLAS when a process loads them: how child processes inherit the count.
THREAD_ENV_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
_CPU_SYSFS = Path("/sys/devices/system/cpu")
_CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


@dataclass(frozen=True)
class ThreadChoice:
    """The number of threads and the facts it was chosen from (logged once per run)."""

    threads: int
    reason: str


def usable_cores() -> int:
    """Logical CPUs this process may run on: its affinity mask, capped by a cgroup CPU quota."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cores = cores or 1
    quota = _cgroup_quota()
    return max(1, min(cores, quota)) if quota is not None else cores


def physical_cores() -> int:
    """Distinct physical cores among the usable CPUs (hyper-threads share one core's units)."""
    cpus = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set()
    cores = set()
    for cpu in cpus:
        topology = _CPU_SYSFS / f"cpu{cpu}" / "topology"
        try:
            cores.add(((topology / "physical_package_id").read_text().strip(),
                       (topology / "core_id").read_text().strip()))
        except OSError:
            return usable_cores()  # no topology (macOS, some containers): count logical CPUs
    return len(cores) or usable_cores()


def _cgroup_quota() -> int | None:
    """The cgroup v2 CPU limit in whole CPUs (``cpu.max`` = "<quota> <period>"), if any."""
    try:
        quota, period = _CGROUP_CPU_MAX.read_text().split()
    except (OSError, ValueError):
        return None
    return None if quota == "max" else max(1, int(int(quota) / int(period)))


def choose_threads(
    setting: int | None,
    environ: Mapping[str, str] | None = None,
    cores: int | None = None,
    physical: int | None = None,
    load: float | None = None,
) -> ThreadChoice:
    """``setting`` when given (``trainer.num_threads``); else ``OMP_NUM_THREADS`` when the user
    set it; else the usable cores minus the 1-minute load average, rounded, between 1 and the
    physical core count. The keyword arguments replace the measured facts (for tests)."""
    environ = os.environ if environ is None else environ
    if setting is not None:
        return ThreadChoice(setting, f"trainer.num_threads = {setting}")
    given = environ.get("OMP_NUM_THREADS", "").strip()
    if given.isdigit() and int(given) >= 1:
        return ThreadChoice(int(given), f"OMP_NUM_THREADS = {given}")
    cores = usable_cores() if cores is None else cores
    physical = physical_cores() if physical is None else physical
    load = os.getloadavg()[0] if load is None else load
    free = int(cores - load + 0.5)
    threads = max(1, min(free, physical, cores))
    return ThreadChoice(threads, f"{cores} usable cores ({physical} physical), load average "
                                 f"{load:.2f}, so about {max(free, 0)} free")


def apply_threads(choice: ThreadChoice) -> None:
    """Set torch's intra-op threads and, for processes started from now on, the OpenMP/BLAS
    environment. Forked DataLoader workers need nothing more: torch runs each on one thread."""
    torch.set_num_threads(choice.threads)
    for name in THREAD_ENV_VARS:
        os.environ[name] = str(choice.threads)
    logger.info("Computing with %d CPU thread%s (%s). Set trainer.num_threads to choose; on a "
                "shared machine 1 is safest.", choice.threads, "" if choice.threads == 1 else "s",
                choice.reason)
