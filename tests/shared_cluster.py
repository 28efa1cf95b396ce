"""One embedded Dask cluster per worker count for the whole test session.

Each in-process ``qfeat features`` run starts qfeat's embedded cluster: a scheduler and
nanny-managed worker processes that import torch and qfeat, then close. That costs about
5 s per run on two cores, and the suite makes dozens of runs. Here the first run of a
session starts the cluster through qfeat's own :func:`qfeat.pipeline.cluster.connect`
(same server classes, same Dask settings) and later runs reuse it.

A reused worker must behave as a fresh one, so a run reuses the cluster only when:

- it asks for the embedded CPU cluster (no ``--scheduler``, no ``--dashboard``);
- the process environment, working directory and ``sys.path`` are those the workers
  were started with (a test that sets the fault-injection variables, another models
  folder or ``HF_HUB_OFFLINE``, or changes directory, gets a cluster of its own as
  before). The per-test data, cache and runs folders are excepted: workers are given
  absolute paths and never read those variables;

and before each run the workers drop the stage models they built (``worker._MODELS``),
as new processes would. Everything else (fault tests, Ctrl-C, killed workers) starts
its own cluster exactly as the CLI does.
"""

from __future__ import annotations

import os
import sys
from contextlib import ExitStack, contextmanager

# set per test by conftest.isolated_dirs; read by the driver only
PER_TEST = {"PYTEST_CURRENT_TEST", "QFEAT_DATA_ROOT", "QFEAT_CACHE_DIR", "QFEAT_RUNS_DIR"}
# set in the parent's environment by Dask's nanny when it spawns a worker, kept there while
# the session's cluster is open (`distributed.nanny.pre-spawn-environ`: every worker gets
# them), or by a library on import, the same in every process that imports it: torch
# (TORCHINDUCTOR_CACHE_DIR), open_clip.tokenizer (TOKENIZERS_PARALLELISM); decord appends
# its own folder to PATH (see _env)
LIBRARY_SETS = {"__DASK_PARENT_PID", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                "MALLOC_TRIM_THRESHOLD_", "PYTHONHASHSEED", "TORCHINDUCTOR_CACHE_DIR",
                "TOKENIZERS_PARALLELISM"}  # fmt: skip


def _env() -> tuple:
    """The environment a worker would be spawned with, less what libraries set on import:
    without this, the first test that imported open_clip or decord made every later run
    start a cluster of its own (about 40 worker processes a session, 10-15 s of imports
    each)."""
    skip = PER_TEST | LIBRARY_SETS
    env = {k: v for k, v in os.environ.items() if k not in skip}
    if "PATH" in env:
        parts = env["PATH"].split(os.pathsep)
        env["PATH"] = os.pathsep.join(p for p in parts if "site-packages" not in p)
    return tuple(sorted(env.items()))


def _state() -> tuple:
    """What a worker process inherits from the driver when it is spawned."""
    path = tuple(p for p in sys.path if "dask-scratch-space" not in p)  # a scheduler's own
    return _env(), os.getcwd(), path


def _drop_models() -> None:
    from qfeat.pipeline import worker

    worker._MODELS.clear()


class SharedClusters:
    def __init__(self, real_connect):
        self.real_connect = real_connect
        self.baseline = _state()
        self.stack = ExitStack()
        self.clients: dict[int, object] = {}

    def shareable(self, scheduler, resources, dashboard) -> bool:
        return (
            not scheduler
            and not dashboard
            and resources.device == "cpu"
            and _state() == self.baseline
        )

    @contextmanager
    def connect(self, scheduler, resources, dashboard: bool = False):
        if not self.shareable(scheduler, resources, dashboard):
            with self.real_connect(scheduler, resources, dashboard) as client:
                yield client
            return
        client = self.clients.get(resources.workers)
        if client is None or client.status != "running":
            client = self.stack.enter_context(self.real_connect(None, resources, False))
            self.clients[resources.workers] = client
        client.run(_drop_models)
        yield client

    def close(self) -> None:
        self.stack.close()
