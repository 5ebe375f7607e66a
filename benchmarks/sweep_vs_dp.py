"""Headline ratios: ``tnmdp.solve`` (backward sweep, argmax) against plain backward induction.

Cases (issue 2 item 11, issue 4 item 4):

* dense random MDP, S=1000, A=8, T=200: ``solve`` / plain numpy backward induction (``P`` as
  ``(A*S, S)``, one matrix-vector product per step);  targets <= 1.2 (issue 2), <= 1.1 (issue 4);
* excursion walk, T=2000 (S=4001): ``solve`` / CSR backward induction (one ``(S*A, S)`` CSR
  product and an argmax per step);  targets <= 1.0 (issue 2), <= 0.5 (issue 4); pymdptoolbox
  ``FiniteHorizon`` in the same run;
* peak memory of ``solve`` on the walk at T=2000 (< 500 MB) and T=10,000 (S=20,001; < 1 GB),
  each in a fresh subprocess: peak RSS of the whole process and its growth during the solve
  (``tracemalloc`` peak of the solve for numpy's allocations).

Every timed tnmdp policy is checked against the peer's (identical actions) before timing.
Writes ``results/sweep_vs_dp.json`` and ``results/sweep_vs_dp.png``.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np

from . import RESULTS, compare, write_json
from .peers import (csr_backward_induction, csr_inputs, dense_inputs, mdptoolbox_finite_horizon,
                    mdptoolbox_inputs, numpy_backward_induction)

__all__ = ["dense_random_mdp", "run", "peak_memory"]

TARGETS = {"dense_ratio_issue2": 1.2, "dense_ratio_issue4": 1.1, "walk_ratio_issue2": 1.0,
           "walk_ratio_issue4": 0.5, "walk_2000_peak_mb": 500, "walk_10000_peak_mb": 1024}


def dense_random_mdp(n_states, n_actions, horizon, *, rng=0):
    """A dense random MDP: ``P(.|s, a)`` uniform on the simplex-ish (normalised uniforms),
    rewards ``(S, A)`` uniform in ``[0, 1)``, start in state 0."""
    import tnmdp

    rng = np.random.default_rng(rng)
    P = rng.random((n_states, n_actions, n_states))
    P /= P.sum(axis=2, keepdims=True)
    return tnmdp.FiniteMDP(P, rng.random((n_states, n_actions)), horizon, 0)


_MEMORY_SCRIPT = """
import json, sys, tracemalloc
import numpy as np, tnmdp

def high_water_mb():  # VmHWM: peak RSS of this process (ru_maxrss survives exec on Linux)
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmHWM")) / 1024

T = int(sys.argv[1])
mdp = tnmdp.models.excursion(T)
tnmdp.solve(tnmdp.models.excursion(400))  # load the compiled kernels outside the measurement
before = high_water_mb()
tracemalloc.start()
sol = tnmdp.solve(mdp)
_, traced = tracemalloc.get_traced_memory()
tracemalloc.stop()
peak = high_water_mb()
print(json.dumps({"horizon": T, "n_states": mdp.n_states, "rss_before_mb": before,
                  "peak_rss_mb": peak, "traced_peak_mb": traced / 2**20,
                  "policy_mb": sol.policy.nbytes / 2**20,
                  "expected_return": sol.expected_return}))
"""


def peak_memory(horizon):
    """Peak memory of ``solve(excursion(horizon))`` in a fresh process (dict of MB figures)."""
    out = subprocess.run([sys.executable, "-c", _MEMORY_SCRIPT, str(horizon)], check=True,
                         capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _check_same(name, a, b):
    a, b = np.asarray(a), np.asarray(b)
    if not np.array_equal(a, b):
        raise AssertionError(f"{name}: tnmdp and the peer disagree on {np.sum(a != b)} actions")


def run(*, quick=False, repeats=None):
    """Run the comparison; return the result dict (also written to ``results/``)."""
    import tnmdp

    repeats = repeats or (2 if quick else 5)
    dense_shape = (300, 8, 60) if quick else (1000, 8, 200)
    walk_horizon = 400 if quick else 2000
    result = {"targets": TARGETS, "cases": {}}

    # ---- dense random
    mdp = dense_random_mdp(*dense_shape)
    args = dense_inputs(mdp)
    sol = tnmdp.solve(mdp)
    _check_same("dense", sol.policy.actions, numpy_backward_induction(*args)[0])
    times = compare({"tnmdp": lambda: tnmdp.solve(mdp),
                     "numpy_dp": lambda: numpy_backward_induction(*args)}, repeats)
    result["cases"]["dense"] = _case(dense_shape, times, "numpy_dp")

    # ---- excursion walk
    walk = tnmdp.models.excursion(walk_horizon)
    cargs, margs = csr_inputs(walk), mdptoolbox_inputs(walk)
    sol = tnmdp.solve(walk)
    _check_same("walk", sol.policy.actions, csr_backward_induction(*cargs)[0])
    _check_same("walk/mdptoolbox", sol.policy.actions, mdptoolbox_finite_horizon(*margs)[0])
    times = compare({"tnmdp": lambda: tnmdp.solve(walk),
                     "csr_dp": lambda: csr_backward_induction(*cargs),
                     "mdptoolbox": lambda: mdptoolbox_finite_horizon(*margs)}, repeats)
    result["cases"]["walk"] = _case((walk.n_states, walk.n_actions, walk_horizon), times, "csr_dp")

    # ---- memory
    result["memory"] = {str(T): peak_memory(T) for T in ((400,) if quick else (2000, 10000))}
    result["quick"] = quick
    write_json("sweep_vs_dp" + ("_quick" if quick else ""), result)
    _plot(result, quick)
    return result


def _case(shape, times, reference):
    S, A, T = shape
    ref = times[reference]
    return {"n_states": S, "n_actions": A, "horizon": T, "reference": reference,
            "seconds": times,
            "ratio_wall": {k: v["wall"] / ref["wall"] for k, v in times.items()},
            "ratio_cpu": {k: v["cpu"] / ref["cpu"] for k, v in times.items()}}


def _plot(result, quick):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for ax, (name, case) in zip(axes, result["cases"].items()):
        labels = list(case["ratio_cpu"])
        cpu = [case["ratio_cpu"][k] for k in labels]
        wall = [case["ratio_wall"][k] for k in labels]
        x = np.arange(len(labels))
        ax.bar(x - 0.2, cpu, 0.4, label="CPU time")
        ax.bar(x + 0.2, wall, 0.4, label="wall time")
        ax.axhline(1.0, color="k", lw=0.8)
        ax.set_xticks(x, labels)
        if max(cpu + wall) > 3:  # a peer far behind: log scale, bars from 0.1
            ax.set_yscale("log")
            ax.set_ylim(0.1, None)
        else:
            ax.set_ylim(0, None)
        for xi, value in zip(x, cpu):
            ax.annotate(f"{value:.2f}", (xi - 0.2, value), ha="center", va="bottom", fontsize=8)
        ax.set_ylabel(f"time / {case['reference']} (lower is better)")
        ax.set_title(f"{name}: S={case['n_states']}, A={case['n_actions']}, T={case['horizon']}")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(RESULTS / ("sweep_vs_dp" + ("_quick" if quick else "") + ".png"), dpi=120)
    plt.close(fig)


def summary(result):
    """Lines of text: ratios and memory against the targets."""
    lines = []
    for name, case in result["cases"].items():
        for k in case["ratio_cpu"]:
            lines.append(f"{name:6s} {k:11s} {case['seconds'][k]['wall']:8.4f} s wall "
                         f"{case['seconds'][k]['cpu']:8.4f} s cpu   ratio wall "
                         f"{case['ratio_wall'][k]:6.3f}  cpu {case['ratio_cpu'][k]:6.3f}")
    for T, mem in result["memory"].items():
        lines.append(f"walk T={T}: peak RSS {mem['peak_rss_mb']:.0f} MB (before solve "
                     f"{mem['rss_before_mb']:.0f} MB), traced peak {mem['traced_peak_mb']:.0f} MB")
    return lines


if __name__ == "__main__":  # pragma: no cover
    import os

    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    print("\n".join(summary(run(quick="--quick" in sys.argv))))
