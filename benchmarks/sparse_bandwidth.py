"""Random sparse MDPs against plain CSR backward induction and the memory-bandwidth bound.

Cases (issue 14, item 6; the density threshold of :data:`tnmdp.model.SPARSE_DENSITY`):

* ``sparse``: random CSR MDP, S=200,000, A=4, 8 non-zeros per ``(s, a)`` row, T=100.
  ``solve`` (second call: the packed operator is in the model's cache) and its first call
  (packing included) against the CSR peer taking ``max(axis=1)`` (``csr_dp``) and the same loop
  taking the maximum with ``np.maximum`` over action columns (``csr_dp_maximum``), and
  ``solve`` on one numba thread (``solve_one_thread``: the serial kernel, the state before the
  row-block parallel kernel; ``numba.set_num_threads(1)`` for that call only). The
  bandwidth bound is the bytes one backward induction must stream -- ``T`` times the operator
  (``12 nnz + 4 (S A + 1)`` bytes) plus the ``Q``/``V`` vectors -- divided by the streaming
  bandwidth measured in the same run (a numpy sum over a 256 MB array). Ratios are given for
  wall and CPU time: on the shared machine under load (up to ~12 on 2 cores) the CPU-time
  ratios are the meaningful ones for the one-thread entries; ``solve`` runs on both cores
  (:mod:`tnmdp.backends.numba.parallel`), so its WALL ratio is the one the target is about
  (its CPU time counts both threads).
  Memory: peak RSS growth of a first ``solve`` (packing included) in a fresh subprocess,
  sampled by a thread while the kernels run (numba's allocations are invisible to
  ``tracemalloc``), against the operator's size; it includes the ``(T, S)`` int8 policy.
* ``density``: one backup ``P @ v`` on ``(S*A, S)`` operators with a fraction ``d`` of
  non-zeros, dense (BLAS) against CSR (scipy), S=512, A=4 (``S A S = 2^20`` entries); CPU
  times.

Writes ``results/sparse_bandwidth.json`` and ``results/sparse_bandwidth.png``. The machine is
shared: absolute times are noisy; the ratios are taken in one run, interleaved.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np
import scipy.sparse as sp

from . import RESULTS, compare, write_json
from .peers import csr_backward_induction, csr_inputs

__all__ = ["csr_backward_induction_maximum", "streaming_bandwidth", "run", "summary"]

TARGETS = {"solve_over_csr_dp": 0.5, "solve_added_over_operator": 2.0}


def csr_backward_induction_maximum(P, arrival, rbar, terminal, horizon):
    """CSR backward induction taking the maximum over action columns with ``np.maximum``."""
    S, A = rbar.shape
    v = terminal.copy()
    actions = np.empty((horizon, S), dtype=np.int8)
    for t in range(horizon - 1, -1, -1):
        q = (P @ (arrival + v)).reshape(S, A) if arrival is not None else \
            rbar + (P @ v).reshape(S, A)
        best = q[:, 0].copy()
        arg = np.zeros(S, dtype=np.int8)
        for a in range(1, A):
            better = q[:, a] > best
            np.maximum(best, q[:, a], out=best)
            arg[better] = a
        actions[t] = arg
        v = best
    return actions, v


def streaming_bandwidth(n_bytes=256 * 2**20, repeats=3):
    """Bytes per second of one core summing a large float64 array (read-only streaming)."""
    x = np.ones(n_bytes // 8)
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        x.sum()
        best = min(best, time.perf_counter() - t0)
    return n_bytes / best


_MEMORY_SCRIPT = """
import gc, json, sys, threading, time
sys.path.insert(0, {root!r})
import numpy as np, psutil, tnmdp
from benchmarks.strategies import random_sparse_mdp
tnmdp.solve(random_sparse_mdp(2000, 4, 100, nnz_per_row=8))  # compile outside the measurement
mdp = random_sparse_mdp({S}, 4, {T}, nnz_per_row=8)
P = mdp.transition_matrix(0)
gc.collect()
proc, peak, done = psutil.Process(), [0], threading.Event()
def poll():  # the kernels release the GIL: RSS is sampled while they run
    while not done.is_set():
        peak[0] = max(peak[0], proc.memory_info().rss)
        time.sleep(0.0005)
before = proc.memory_info().rss
thread = threading.Thread(target=poll)
thread.start()
sol = tnmdp.solve(mdp)
done.set()
thread.join()
print(json.dumps({{"operator_mb": (P.data.nbytes + P.indices.nbytes + P.indptr.nbytes) / 1e6,
                  "added_peak_mb": (max(peak[0], proc.memory_info().rss) - before) / 1e6,
                  "policy_mb": sol.policy.nbytes / 1e6, "rss_before_mb": before / 1e6}}))
"""


def solve_memory(n_states, horizon):
    """Peak RSS growth of one ``solve`` (first call: the packing included), fresh process."""
    from pathlib import Path

    root = str(Path(__file__).resolve().parent.parent)
    code = _MEMORY_SCRIPT.format(root=root, S=n_states, T=horizon)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _sparse_case(n_states, horizon, repeats):
    import numba

    import tnmdp
    from .strategies import random_sparse_mdp

    mdp = random_sparse_mdp(n_states, 4, horizon, nnz_per_row=8)
    P = mdp.transition_matrix(0)
    args = csr_inputs(mdp)
    sol = tnmdp.solve(mdp)
    ref_actions, ref_values = csr_backward_induction(*args)
    assert np.array_equal(sol.policy.actions, ref_actions)
    assert np.array_equal(sol.values, ref_values)

    def first_solve():  # a fresh model each time: packing the operator included
        tnmdp.solve(tnmdp.FiniteMDP(P, mdp.rewards[0, :, :, 0], horizon, 0))

    def solve_one_thread():  # the serial kernel (below parallel.pays' thread condition)
        import numba

        threads = numba.get_num_threads()
        numba.set_num_threads(1)
        try:
            tnmdp.solve(mdp)
        finally:
            numba.set_num_threads(threads)

    times = compare({"solve": lambda: tnmdp.solve(mdp), "solve_first": first_solve,
                     "solve_one_thread": solve_one_thread,
                     "csr_dp": lambda: csr_backward_induction(*args),
                     "csr_dp_maximum": lambda: csr_backward_induction_maximum(*args)}, repeats)
    S, A = mdp.n_states, mdp.n_actions
    streamed = horizon * (12 * P.nnz + 4 * (S * A + 1) + 8 * (S * A + 2 * S))
    bandwidth = streaming_bandwidth()
    bound = streamed / bandwidth
    return {"n_states": S, "n_actions": A, "horizon": horizon, "nnz": int(P.nnz),
            "numba_threads": numba.get_num_threads(),
            "seconds": times, "bandwidth_gb_s": bandwidth / 1e9, "bound_seconds": bound,
            "ratio_wall": {k: v["wall"] / times["csr_dp"]["wall"] for k, v in times.items()},
            "ratio_cpu": {k: v["cpu"] / times["csr_dp"]["cpu"] for k, v in times.items()},
            "ratio_to_bound": {k: v["cpu"] / bound for k, v in times.items()},
            "ratio_to_bound_wall": {k: v["wall"] / bound for k, v in times.items()}}


def _density_case(n_states, repeats):
    rng = np.random.default_rng(0)
    A = 4
    v = rng.random(n_states)
    out = {}
    for density in (0.01, 0.03, 0.1, 0.2, 0.3, 0.5, 1.0):
        dense = rng.random((n_states * A, n_states)) * (rng.random((n_states * A, n_states))
                                                         < density)
        csr = sp.csr_array(dense)
        times = compare({"dense": lambda: [dense @ v for _ in range(20)],
                         "csr": lambda: [csr @ v for _ in range(20)]}, repeats)
        out[str(density)] = {"dense": times["dense"]["cpu"] / 20, "csr": times["csr"]["cpu"] / 20,
                             "csr_over_dense": times["csr"]["cpu"] / times["dense"]["cpu"]}
    return out


def run(quick=False, repeats=None):
    """Run both cases; write JSON and PNG; return the result dict."""
    repeats = repeats or (1 if quick else 3)
    S, T = (20_000, 20) if quick else (200_000, 100)
    result = {"sparse": _sparse_case(S, T, repeats),
              "density": _density_case(128 if quick else 512, repeats),
              "memory": solve_memory(S, T), "targets": TARGETS}
    mem = result["memory"]
    mem["added_over_operator"] = mem["added_peak_mb"] / mem["operator_mb"]
    name = "sparse_bandwidth" + ("_quick" if quick else "")
    write_json(name, result)
    _plot(result, name)
    return result


def _plot(result, name):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 3.6))
    ax1, ax2 = fig.subplots(1, 2)
    case = result["sparse"]
    labels = list(case["ratio_cpu"])
    x = np.arange(len(labels))
    ax1.bar(x - 0.2, [case["ratio_cpu"][k] for k in labels], 0.4, label="CPU time")
    ax1.bar(x + 0.2, [case["ratio_wall"][k] for k in labels], 0.4, label="wall time")
    for xi, k in zip(x, labels):
        ax1.annotate(f"{case['ratio_cpu'][k]:.2f}\n({case['ratio_to_bound'][k]:.1f}x\nbound)",
                     (xi - 0.2, case["ratio_cpu"][k]), ha="center", va="bottom", fontsize=6)
        ax1.annotate(f"{case['ratio_wall'][k]:.2f}", (xi + 0.2, case["ratio_wall"][k]),
                     ha="center", va="bottom", fontsize=6)
    ax1.axhline(1.0, color="k", lw=0.8)
    ax1.axhline(TARGETS["solve_over_csr_dp"], color="r", lw=0.8, ls="--", label="target 0.5")
    ax1.set_xticks(x, labels, fontsize=7, rotation=15)
    ax1.set_ylabel("time / csr_dp (lower is better)")
    ax1.set_title(f"S={case['n_states']}, A={case['n_actions']}, T={case['horizon']}, "
                  f"8 nnz/row", fontsize=9)
    ax1.set_ylim(0, 1.6 * max(max(case["ratio_wall"].values()), max(case["ratio_cpu"].values())))
    ax1.legend(fontsize=7, ncol=3, loc="upper center")
    dens = result["density"]
    d = [float(k) for k in dens]
    ax2.loglog(d, [dens[k]["csr_over_dense"] for k in dens], "o-")
    ax2.axhline(1.0, color="k", lw=0.8)
    ax2.axvline(0.1, color="r", lw=0.8, ls="--", label="SPARSE_DENSITY = 0.1")
    ax2.set_xlabel("density of P")
    ax2.set_ylabel("CSR / dense time of P @ v")
    ax2.set_title("dense input: when CSR is faster (below 1)", fontsize=9)
    ax2.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(RESULTS / f"{name}.png", dpi=120)


def summary(result):
    """Lines of text: ratios, bound and memory against the targets."""
    case, mem = result["sparse"], result["memory"]
    lines = [f"bandwidth {case['bandwidth_gb_s']:.1f} GB/s, bound {case['bound_seconds']:.3f} s"]
    for k, v in case["seconds"].items():
        lines.append(f"{k:15s} {v['wall']:8.3f} s wall {v['cpu']:8.3f} s cpu  ratio wall "
                     f"{case['ratio_wall'][k]:5.2f} cpu {case['ratio_cpu'][k]:5.2f}  "
                     f"cpu/bound {case['ratio_to_bound'][k]:5.1f} "
                     f"wall/bound {case['ratio_to_bound_wall'][k]:5.1f}")
    lines.append(f"solve adds {mem['added_peak_mb']:.0f} MB peak "
                 f"(policy {mem['policy_mb']:.0f} MB) "
                 f"to a {mem['operator_mb']:.0f} MB operator ({mem['added_over_operator']:.2f}x; "
                 f"target <= "
                 f"{TARGETS['solve_added_over_operator']})")
    for k, v in result["density"].items():
        lines.append(f"density {k:5s}: csr/dense {v['csr_over_dense']:.2f}")
    return lines


if __name__ == "__main__":  # pragma: no cover
    import os

    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    print("\n".join(summary(run(quick="--quick" in sys.argv))))
