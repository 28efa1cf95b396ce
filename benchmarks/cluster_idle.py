"""CPU an open embedded cluster uses while no task runs: Dask's defaults vs. qfeat's.

Opens qfeat's embedded CPU cluster (:func:`qfeat.pipeline.cluster.connect`, 2 workers)
once with Dask's housekeeping defaults (what ``--dashboard`` keeps) and once as qfeat
opens it without a dashboard (``cluster.QUIET_HOUSEKEEPING``), alternating
``--repeats`` times, and reports the CPU seconds this process and its worker processes
used over ``--seconds`` of idling, as a share of one core.
``cluster_idle_defaults_vs_qfeat`` = defaults' CPU / qfeat's CPU.
"""

from __future__ import annotations

import argparse
import time
from unittest import mock

from benchmarks.common import options, record


def cpu_seconds() -> float:
    import psutil

    procs = [psutil.Process(), *psutil.Process().children(recursive=True)]
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
        except psutil.Error:  # gone in between
            continue
        total += t.user + t.system
    return total


def idle_cpu(defaults: bool, seconds: float, settle: float = 3.0) -> float:
    """Share of one core the open cluster used while idle."""
    from qfeat.pipeline import cluster

    quiet = {} if defaults else cluster.QUIET_HOUSEKEEPING
    with (
        mock.patch.object(cluster, "QUIET_HOUSEKEEPING", quiet),
        cluster.connect(None, cluster.Resources("cpu", 2, 1)) as client,
    ):
        client.run(lambda: None)
        time.sleep(settle)  # start-up work settles
        c0, t0 = cpu_seconds(), time.perf_counter()
        time.sleep(seconds)
        return (cpu_seconds() - c0) / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--repeats", type=int, default=2)
    args = options(parser, argv)
    settle = 0.2 if args.dry_run else 3.0
    if args.dry_run:
        args.seconds, args.repeats = 0.5, 1
    runs: dict[str, list[float]] = {"defaults": [], "qfeat": []}
    for _ in range(args.repeats):
        for name in runs:
            runs[name].append(idle_cpu(name == "defaults", args.seconds, settle))
            print(f"{name}: {runs[name][-1]:.1%} of a core", flush=True)
    mean = {k: sum(v) / len(v) for k, v in runs.items()}
    results = {f"{k}_core_share": round(v, 4) for k, v in mean.items()}
    print(f"defaults {mean['defaults']:.1%}, qfeat {mean['qfeat']:.1%} of a core")
    record("cluster_idle", results)
    record("ratios", {"cluster_idle_defaults_vs_qfeat": round(mean["defaults"] / mean["qfeat"], 2)})


if __name__ == "__main__":
    main()
