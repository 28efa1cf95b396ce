"""Fault injection for the fault-tolerance tests, installed only where a test asks.

A Dask worker preload (``distributed.worker.preload = ["tests.faults"]``, see
:func:`tests.runner_helpers.fault_env`): on worker start :func:`dask_setup` wraps
:func:`qfeat.pipeline.worker.run_shard`, which workers resolve by name when a task
arrives, so production code reads no test variable. The wrapper reads:

- ``QFEAT_TEST_CRASH_ITEM``: a shard holding this item id kills its worker process (a
  segfault or OOM kill, as far as Dask can tell);
- ``QFEAT_TEST_SHARD_DELAY``: seconds each shard sleeps first, to kill things mid-run;
- ``QFEAT_TEST_LOAD_ERROR``: the stage's model fails to load with this message (plus
  a thousand-line tail, as load_state_dict's size mismatches are);
- ``QFEAT_TEST_SHARD_ERROR``: computing a shard raises this message (a failure that
  might not repeat: Dask retries it).
"""

from __future__ import annotations

import os
import time

CRASH = "QFEAT_TEST_CRASH_ITEM"
DELAY = "QFEAT_TEST_SHARD_DELAY"
LOAD_ERROR = "QFEAT_TEST_LOAD_ERROR"
SHARD_ERROR = "QFEAT_TEST_SHARD_ERROR"
PRELOAD = "tests.faults"


def dask_setup(worker=None) -> None:
    from qfeat.pipeline import worker as shards

    run = shards.run_shard
    if getattr(run, "faulty", False):
        return

    def run_shard(*, task):
        crash = os.environ.get(CRASH)
        if crash and any(i["item_id"] == crash for i in task.items):
            os._exit(3)
        if os.environ.get(DELAY):
            time.sleep(float(os.environ[DELAY]))
        return run(task=task)

    run_shard.faulty = True
    shards.run_shard = run_shard
    build = shards._stage_instance

    def stage_instance(task):
        if os.environ.get(LOAD_ERROR):
            tail = "\n".join(f"\tsize mismatch for block{i}.weight" for i in range(1000))
            raise RuntimeError(f"{os.environ[LOAD_ERROR]}\n{tail}")
        stage = build(task)
        if os.environ.get(SHARD_ERROR):

            def process_shard(items, upstream):
                raise RuntimeError(os.environ[SHARD_ERROR])

            stage.process_shard = process_shard
        return stage

    shards._stage_instance = stage_instance
