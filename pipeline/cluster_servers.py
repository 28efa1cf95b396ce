"""Dask server classes of qfeat's embedded cluster: quiet on the network and at exit.

- Dask's scheduler always starts an HTTP server for its health and metrics routes (on
  8787, moving to another port with a warning when two runs share a machine) and each
  worker one on a random port. qfeat talks to them over TCP comms only, so unless
  ``--dashboard`` is given :class:`NoHttpScheduler` and :class:`NoHttpWorker` build the
  routes and serve them nowhere.
- A nanny gives its worker process 4 s to exit before it kills it with a warning; a
  worker that is freeing large models on a loaded machine needs longer, so
  :class:`PatientNanny` waits up to :data:`CLOSE_TIMEOUT_S`.
- A task that raises makes distributed log "Compute Failed" with the whole exception
  and task on the worker's stderr, which is the terminal here; qfeat says each failed
  shard in one line and keeps the traceback in the cache (pipeline/failures.py), so
  :class:`QuietWorker` drops those records.

Kept in their own module: worker processes import the worker class by name.
"""

from __future__ import annotations

import logging

from distributed import Nanny, Scheduler, Worker
from distributed.http.routing import RoutingApplication

CLOSE_TIMEOUT_S = 30.0


class NoHttpScheduler(Scheduler):
    def start_http_server(self, routes, dashboard_address, default_port=0, ssl_options=None):
        self.http_application = RoutingApplication(routes)


class NoComputeFailed(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Compute Failed")


class QuietWorker(Worker):
    """A worker that leaves failed tasks to qfeat's one-line report."""

    def __init__(self, *args, **kwargs):
        logger = logging.getLogger("distributed.worker")
        if not any(isinstance(f, NoComputeFailed) for f in logger.filters):
            logger.addFilter(NoComputeFailed())
        super().__init__(*args, **kwargs)


class NoHttpWorker(QuietWorker):
    def start_http_server(self, routes, dashboard_address, default_port=0, ssl_options=None):
        self.http_application = RoutingApplication(routes)


class PatientNanny(Nanny):
    async def close(self, timeout: float = CLOSE_TIMEOUT_S, reason: str = "nanny-close"):
        return await super().close(timeout=max(timeout, CLOSE_TIMEOUT_S), reason=reason)
