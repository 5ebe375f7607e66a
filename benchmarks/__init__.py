"""Benchmarks for tnmdp: contraction strategies, scaling, and peers, as ratios in one run.

Run everything with ``python -m benchmarks`` (``--quick`` for a CI smoke run); results go to
``benchmarks/results/*.json`` and ``*.png``. Modules:

=================  ===========================================================================
sweep_vs_dp        the headline ratios: ``tnmdp.solve`` against plain numpy / CSR backward
                   induction (dense random S=1000, A=8, T=200; excursion walk T=2000), peak
                   memory of long walks (T=2000 and T=10,000)
strategies         per-site full contraction with quimb (the paper's approach; opt_einsum
                   greedy/auto, cotengra hyper-optimiser) against cached environments with dense
                   and sparse sites (numpy and compiled); sweeps in S, T, A and density with
                   fitted log-log slopes
peers              the baselines: plain numpy backward induction, CSR backward induction,
                   pymdptoolbox ``FiniteHorizon``
=================  ===========================================================================

Timings are taken with ``OPENBLAS_NUM_THREADS=1`` (set by the entry point before numpy loads),
after a warm-up call (numba kernels compiled or loaded), as the minimum over repeats that
interleave the compared methods; ratios, not absolute times, are the result.
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

import numpy as np

__all__ = ["RESULTS", "machine_info", "time_min", "measured", "compare", "fit_slope", "write_json"]

RESULTS = Path(__file__).resolve().parent / "results"


def machine_info():
    """CPU, cores, memory, library versions and thread settings of this run."""
    import scipy

    info = {"QUIMB_NUM_THREAD_WORKERS": os.environ.get("QUIMB_NUM_THREAD_WORKERS"),
            "python": platform.python_version(), "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
            "numpy": np.__version__, "scipy": scipy.__version__,
            "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS"),
            "time": time.strftime("%Y-%m-%d %H:%M:%S")}
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        if names:
            info["cpu_model"] = names[0]
    except OSError:
        pass
    try:
        import psutil

        info["memory_gib"] = round(psutil.virtual_memory().total / 2**30, 1)
        info["load_average"] = list(os.getloadavg())
    except (ImportError, OSError):
        pass
    for name in ("numba", "quimb", "opt_einsum", "cotengra", "mdptoolbox"):
        try:
            module = __import__(name)
            info[name] = getattr(module, "__version__", "installed")
        except ImportError:
            info[name] = None
    return info


def measured(func):
    """``(result, wall seconds, peak MiB traced by tracemalloc)`` of one call ``func()``."""
    import tracemalloc

    tracemalloc.start()
    try:
        start = time.perf_counter()
        result = func()
        wall = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()
    return result, wall, peak


def time_min(func, repeats=3):
    """Minimum wall and CPU seconds of ``func()`` over ``repeats`` calls."""
    walls, cpus = [], []
    for _ in range(repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        func()
        cpus.append(time.process_time() - c0)
        walls.append(time.perf_counter() - w0)
    return min(walls), min(cpus)


def compare(funcs, repeats=3):
    """Time several callables, interleaved (``repeats`` rounds), after one warm-up call each.

    Returns
    -------
    dict
        ``name -> {"wall": min seconds, "cpu": min CPU seconds}``.
    """
    for func in funcs.values():
        func()
    best = {name: [np.inf, np.inf] for name in funcs}
    for _ in range(repeats):
        for name, func in funcs.items():
            wall, cpu = time_min(func, 1)
            best[name][0] = min(best[name][0], wall)
            best[name][1] = min(best[name][1], cpu)
    return {name: {"wall": w, "cpu": c} for name, (w, c) in best.items()}


def fit_slope(x, y):
    """Least-squares slope of ``log y`` against ``log x``."""
    x, y = np.log(np.asarray(x, float)), np.log(np.asarray(y, float))
    return float(np.polyfit(x, y, 1)[0])


def write_json(name, payload):
    """Write ``payload`` (with machine info) to ``results/<name>.json``; return the path."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    payload = {"machine": machine_info(), **payload}
    path.write_text(json.dumps(payload, indent=2, default=_jsonable) + "\n")
    return path


def _jsonable(x):
    if isinstance(x, (np.floating, np.integer)):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    raise TypeError(f"not JSON serialisable: {type(x).__name__}")
