"""Row-block backward induction on Dask: single process vs 1 and 2 workers of a LocalCluster.

The model (issue 16): random sparse, S = 2*10^6 states, A = 4 actions, 8 stored entries per
(s, a) row, T = 50, built by a block function (so the distributed runs never hold it in one
process). Each row's 8 successors are drawn one per stripe of S/8 states (sorted, distinct),
with weights uniform in [0.1, 1.1] normalised; rewards are standard normal. Every state's
row depends only on its chunk of 2^14 states and the seed, so any blocking builds the same model.

Measured, in one run (the machine is shared: absolute times are noisy, compare within a run):

* single process: ``tnmdp.solve`` on the model built by ``block_fn(0, S)`` (in a subprocess,
  for its peak memory), with numba's default threads and with one thread;
* ``tnmdp.distributed.solve`` on LocalClusters of 1 and 2 worker processes (one thread each,
  loopback TCP): block build time, solve time, the compute time of each step (the slowest
  block, from Dask's task stream) and the per-step overhead
  ``(solve time - sum of step compute times) / T``; peak RSS of every worker, the scheduler
  and the client;
* the CPU seconds of the backup tasks (Dask's fine-grained metrics): on a loaded machine the
  tasks' wall time is mostly waiting for a core, their CPU time is the work;
* the per-step communication model: bytes each worker receives, ``(8 + a) S (1 - 1/W)``
  (values and the ``a``-byte actions of the other blocks), and the step time it predicts for
  ``W`` nodes, ``c_1 / W + (8 + a) S (1 - 1/W) / bandwidth + latency`` with ``c_1`` the CPU
  time of a step on one worker and ``latency`` the measured 1-worker overhead per step (the
  scheduling of a step; nothing moves between workers).

Run:  python benchmarks/distributed.py [--states 2000000] [--horizon 50] [--quick]
Writes benchmarks/results/distributed.json and distributed.png (``_quick`` with --quick).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
# run as a script, this file's folder leads sys.path and this module would shadow Dask's
# ``distributed`` package: drop it
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != RESULTS.parent]
CHUNK = 2**14
N_ACTIONS, ROW_NNZ, SEED = 4, 8, 2026


class RandomBlocks:
    """``block_fn(lo, hi)`` of the benchmark model (picklable, deterministic per state)."""

    def __init__(self, n_states, n_actions=N_ACTIONS, row_nnz=ROW_NNZ, seed=SEED):
        self.n_states, self.n_actions, self.row_nnz, self.seed = n_states, n_actions, row_nnz, seed

    def _chunk(self, c):
        """Columns ``(n A, k)``, weights and rewards ``(n, A)`` of chunk ``c``."""
        S, A, k = self.n_states, self.n_actions, self.row_nnz
        n = min(S, (c + 1) * CHUNK) - c * CHUNK
        rng = np.random.default_rng([self.seed, c])
        stripe = S // k
        cols = np.arange(k, dtype=np.int32) * stripe + rng.integers(
            0, stripe, size=(n * A, k), dtype=np.int32)
        vals = rng.random((n * A, k)) + 0.1
        vals /= vals.sum(axis=1, keepdims=True)
        return cols, vals, rng.normal(size=(n, A))

    def __call__(self, lo, hi):
        import scipy.sparse as sp

        A, k = self.n_actions, self.row_nnz
        n_rows = (hi - lo) * A
        cols = np.empty((n_rows, k), dtype=np.int32)  # filled chunk by chunk: no big temporaries
        vals = np.empty((n_rows, k))
        rewards = np.empty((hi - lo, A))
        for c in range(lo // CHUNK, (hi - 1) // CHUNK + 1):
            c_cols, c_vals, c_rewards = self._chunk(c)
            s0, s1 = max(lo, c * CHUNK), min(hi, (c + 1) * CHUNK)  # states of the chunk kept
            rows = slice((s0 - lo) * A, (s1 - lo) * A)
            inner = slice((s0 - c * CHUNK) * A, (s1 - c * CHUNK) * A)
            cols[rows], vals[rows] = c_cols[inner], c_vals[inner]
            rewards[s0 - lo:s1 - lo] = c_rewards[s0 - c * CHUNK:s1 - c * CHUNK]
        indptr = np.arange(0, n_rows * k + 1, k, dtype=np.int64 if n_rows * k >= 2**31 else np.int32)
        P = sp.csr_array((vals.reshape(-1), cols.reshape(-1), indptr), shape=(n_rows, self.n_states))
        return P, rewards


def peak_rss_mib():
    """Peak resident memory of this process (``ru_maxrss``, KiB on Linux) in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def single_process(n_states, horizon):
    """Build the model in this process and time ``tnmdp.solve``; a JSON-able dict."""
    import tnmdp

    warm = RandomBlocks(4 * CHUNK)
    tnmdp.solve(tnmdp.FiniteMDP(*warm(0, 4 * CHUNK), 2, 0))  # load the compiled kernels
    start = time.perf_counter()
    P, r = RandomBlocks(n_states)(0, n_states)
    mdp = tnmdp.FiniteMDP(P, r, horizon, 0)
    del P
    built = time.perf_counter() - start
    start, cpu = time.perf_counter(), time.process_time()
    sol = tnmdp.solve(mdp)
    solved, cpu = time.perf_counter() - start, time.process_time() - cpu
    return {"build_s": built, "solve_s": solved, "step_s": solved / horizon,
            "cpu_per_step_s": cpu / horizon,  # all threads of the process
            "expected_return": sol.expected_return, "peak_rss_mib": peak_rss_mib(),
            "numba_threads": os.environ.get("NUMBA_NUM_THREADS", "default")}


def run_single(n_states, horizon, threads):
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    if threads is not None:
        env["NUMBA_NUM_THREADS"] = str(threads)
    out = subprocess.run([sys.executable, __file__, "--single", "--states", str(n_states),
                          "--horizon", str(horizon)], env=env, capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _step_compute(task_stream, horizon):
    """Per step: compute seconds of the slowest block's backup task."""
    steps = np.zeros(horizon)
    pattern = re.compile(r"tnmdp-argmax-argmax-[0-9a-f]+-t(\d+)-b(\d+)$")
    for task in task_stream:
        match = pattern.match(str(task["key"]))
        if match:
            t = int(match.group(1))
            compute = sum(s["stop"] - s["start"] for s in task["startstops"]
                          if s["action"] == "compute")
            steps[t] = max(steps[t], compute)
    return steps


def _backup_seconds(dask_scheduler):
    """CPU and non-CPU (waiting for a core) seconds spent in the backup tasks so far."""
    out = {"thread-cpu": 0.0, "thread-noncpu": 0.0}
    for key, value in dask_scheduler.cumulative_worker_metrics.items():
        if (isinstance(key, tuple) and len(key) == 4 and key[0] == "execute"
                and key[1] == "tnmdp-argmax-argmax" and key[2] in out):
            out[key[2]] += value
    return out


def run_cluster(n_workers, n_states, horizon):
    """Build the blocks and solve on a fresh LocalCluster of ``n_workers`` processes."""
    import distributed

    import tnmdp
    from tnmdp.distributed import BlockMDP

    env = {"OPENBLAS_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}
    with distributed.LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address=None, env=env,
                                  scheduler_kwargs={"dashboard_address": "127.0.0.1:0"}) \
            as cluster, distributed.Client(cluster) as client:
        warm = BlockMDP.from_function(4 * CHUNK, N_ACTIONS, 2, RandomBlocks(4 * CHUNK),
                                      n_blocks=n_workers, initial=0)
        tnmdp.distributed.solve(warm, client)  # load the compiled kernels on every worker
        warm.release()
        bmdp = BlockMDP.from_function(n_states, N_ACTIONS, horizon, RandomBlocks(n_states),
                                      n_blocks=n_workers, initial=0)
        start = time.perf_counter()
        bmdp.blocks(client)
        built = time.perf_counter() - start
        time.sleep(3)  # let the workers' heartbeats deliver the warm-up's metrics
        before = client.run_on_scheduler(_backup_seconds)
        with distributed.get_task_stream(client) as stream:
            start = time.perf_counter()
            sol = tnmdp.distributed.solve(bmdp, client)
            solved = time.perf_counter() - start
        compute = _step_compute(stream.data, horizon)
        peaks = client.run(peak_rss_mib)
        time.sleep(3)
        after = client.run_on_scheduler(_backup_seconds)
        cpu = {k: after[k] - before[k] for k in after}
        result = {"workers": n_workers, "build_s": built, "solve_s": solved,
                  "step_s": solved / horizon, "step_compute_s": compute.tolist(),
                  "overhead_per_step_s": (solved - compute.sum()) / horizon,
                  "backup_cpu_s": cpu["thread-cpu"],
                  "backup_waiting_for_cpu_s": cpu["thread-noncpu"],
                  "backup_cpu_per_step_per_worker_s": cpu["thread-cpu"] / horizon / n_workers,
                  "expected_return": sol.expected_return,
                  # LocalCluster runs its scheduler inside the client's process
                  "peak_rss_mib": {"workers": sorted(peaks.values()),
                                   "client_and_scheduler": peak_rss_mib()}}
        del sol
        bmdp.release()
    return result


def model(result, n_states):
    """The per-step communication cost model and its prediction for W nodes."""
    action_bytes = 1  # int8 actions for A <= 127
    # CPU seconds, not wall: on a loaded machine the tasks mostly wait for a core
    c1 = result["cluster_1"]["backup_cpu_per_step_per_worker_s"]
    # scheduling only: with one worker nothing moves between workers
    latency = result["cluster_1"]["overhead_per_step_s"]
    received = {w: (8 + action_bytes) * n_states * (1 - 1 / w) for w in (2, 4, 8, 16)}
    predict = {}
    for name, bandwidth in {"1 GbE": 125e6, "10 GbE": 1.25e9}.items():
        predict[name] = {w: c1 / w + (8 + action_bytes) * n_states * (1 - 1 / w) / bandwidth
                         + latency for w in range(1, 17)}
    return {"bytes_received_per_worker_per_step": received,
            "cluster_bytes_per_step": {w: (8 + action_bytes) * n_states * (w - 1)
                                       for w in (2, 4, 8, 16)},
            "one_worker_step_cpu_s": c1, "latency_s": latency,
            "predicted_step_s": predict,
            "predicted_speedup_16": {k: predict[k][1] / predict[k][16] for k in predict}}


def plot(result, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax0, ax1, ax2) = plt.subplots(1, 3, figsize=(14, 4.2))
    names = ["1 process\n(numba, 2 threads)", "1 process\n(1 thread)", "Dask\n1 worker",
             "Dask\n2 workers"]
    singles = [result["single_default"], result["single_1thread"]]
    clusters = [result["cluster_1"], result["cluster_2"]]
    compute = [s["step_s"] for s in singles] + [float(np.sum(c["step_compute_s"]))
                                                / len(c["step_compute_s"]) for c in clusters]
    overhead = [0, 0] + [c["overhead_per_step_s"] for c in clusters]
    ax0.bar(names, np.array(compute) * 1e3, label="compute, wall (slowest block)")
    ax0.bar(names, np.array(overhead) * 1e3, bottom=np.array(compute) * 1e3,
            label="overhead (scheduling, transfer)")
    cpu = [s.get("cpu_per_step_s", np.nan) for s in singles] + [
        c["backup_cpu_per_step_per_worker_s"] for c in clusters]
    ax0.hlines(np.array(cpu) * 1e3, np.arange(4) - 0.4, np.arange(4) + 0.4, colors="k",
               linewidth=2, label="CPU time per step (process; per worker)")
    ax0.set_ylim(0, 1.4 * max(np.array(compute) + np.array(overhead)) * 1e3)
    ax0.set_ylabel("time per step (ms)")
    load = result["machine"].get("load_average", [float("nan")])[0]
    ax0.set_title(f"S={result['states']:,}, A={N_ACTIONS}, {ROW_NNZ} nnz/row, "
                  f"T={result['horizon']} (2 cores, load {load:.0f})", fontsize=9)
    ax0.legend(fontsize=8, handlelength=1.5)
    ax0.tick_params(axis="x", labelsize=8)
    mem_names, mem = [], []
    for label, s in zip(["1 process\n(2 threads)", "1 process\n(1 thread)"], singles):
        mem_names.append(label)
        mem.append(s["peak_rss_mib"])
    for c in clusters:
        for i, m in enumerate(c["peak_rss_mib"]["workers"]):
            mem_names.append(f"{c['workers']}-worker\nworker {i}")
            mem.append(m)
    ax1.bar(mem_names, np.array(mem) / 1024, color="tab:green")
    ax1.set_ylabel("peak RSS (GiB)")
    ax1.set_title("peak memory per process", fontsize=9)
    ax1.tick_params(axis="x", labelsize=7)
    pred = result["model"]["predicted_step_s"]
    for name, curve in pred.items():
        w = np.array(sorted(int(k) for k in curve))
        ax2.plot(w, [curve[k] * 1e3 for k in sorted(curve, key=int)], marker=".", label=name)
    measured = [(c["workers"], c["step_s"] * 1e3) for c in clusters]
    ax2.plot(*zip(*measured), "k*", markersize=10, label="measured wall (loopback, loaded)")
    ax2.set_xlabel("workers W")
    ax2.set_ylabel("predicted time per step (ms)")
    ax2.set_title("c1/W + 9 S (1 - 1/W) / bandwidth + latency", fontsize=9)
    ax2.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--states", type=int, default=2_000_000)
    parser.add_argument("--horizon", type=int, default=50)
    parser.add_argument("--quick", action="store_true", help="S = 200,000, T = 10")
    parser.add_argument("--single", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--replot", action="store_true",
                        help="recompute the cost model and redraw from the saved JSON")
    args = parser.parse_args(argv)
    S, T = (200_000, 10) if args.quick else (args.states, args.horizon)
    if args.single:
        print(json.dumps(single_process(S, T)))
        return 0
    name = "distributed_quick" if args.quick else "distributed"
    if args.replot:
        result = json.loads((RESULTS / f"{name}.json").read_text())
        result["model"] = model(result, result["states"])
        (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=1, default=float))
        plot(result, RESULTS / f"{name}.png")
        return 0
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from benchmarks import machine_info

    result = {"states": S, "actions": N_ACTIONS, "row_nnz": ROW_NNZ, "horizon": T,
              "operator_mib": S * N_ACTIONS * (ROW_NNZ * 12 + 8) / 2**20,
              "machine": machine_info()}
    result["single_default"] = run_single(S, T, None)
    print("single process:", result["single_default"], flush=True)
    result["single_1thread"] = run_single(S, T, 1)
    print("single process, 1 thread:", result["single_1thread"], flush=True)
    for w in (1, 2):
        result[f"cluster_{w}"] = run_cluster(w, S, T)
        summary = {k: v for k, v in result[f"cluster_{w}"].items() if k != "step_compute_s"}
        print(f"{w} worker(s):", summary, flush=True)
    returns = {result[k]["expected_return"] for k in ("single_default", "single_1thread",
                                                      "cluster_1", "cluster_2")}
    result["same_expected_return"] = len(returns) == 1
    result["model"] = model(result, S)
    result["speedup_2_over_1_workers"] = result["cluster_1"]["solve_s"] / result["cluster_2"]["solve_s"]
    result["load_average_after"] = list(os.getloadavg())
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=1, default=float))
    plot(result, RESULTS / f"{name}.png")
    print(json.dumps({k: result[k] for k in ("same_expected_return", "speedup_2_over_1_workers")}
                     | {"overhead_ms": [result[f"cluster_{w}"]["overhead_per_step_s"] * 1e3
                                        for w in (1, 2)],
                        "model": result["model"]["predicted_speedup_16"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
