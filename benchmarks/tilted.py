"""The tilted recursion (``log_partition``, ``doob_transform``) against the soft ``solve``.

Issue 14 measured ``log_partition`` / ``doob_transform`` 10-80x slower and 3-12x heavier than the
soft ``solve`` that runs a recursion of the same cost (dense S = 3000, A = 4, T = 50: 175 s and
6.3 GB against 2.1 s and 0.5 GB). Each case runs in its own process (peak RSS is per process;
the imports, ~150 MB, are included), after one warm-up call, best of ``--repeats``. Rewards
depend on the state only, so the Doob chain keeps them (action-dependent rewards would make
``doob_transform`` build dense ``(T, S, 1, S)`` conditional means, refused above 5e7 entries).

Run:  python benchmarks/tilted.py [--states 3000] [--repeats 3]
Writes benchmarks/results/tilted.json and tilted.png.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"

CHILD = r"""
import json, resource, sys, time
import numpy as np, tnmdp
kind, S, T, repeats = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
if kind.startswith("dense"):
    rng = np.random.default_rng(0)
    P = rng.dirichlet(np.ones(S), size=(S, 4))
    R = rng.normal(size=(S, 1))  # on the state: the Doob chain keeps the model's rewards
    mdp = tnmdp.FiniteMDP(P, R, T, 0)
else:
    mdp = tnmdp.models.excursion(T, hard=True)
method = kind.split(":")[1]
calls = {"soft solve": lambda: tnmdp.solve(mdp, temperature=1.0),
         "log_partition": lambda: tnmdp.log_partition(mdp),
         "doob_transform": lambda: tnmdp.doob_transform(mdp)}
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
calls[method]()
times = []
for _ in range(repeats):
    start = time.perf_counter()
    calls[method]()
    times.append(time.perf_counter() - start)
print(json.dumps(dict(best_s=min(times), all_s=times,
                      peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3,
                      rss_after_model_mb=before / 1e3)))
"""

METHODS = ("soft solve", "log_partition", "doob_transform")


def run_case(kind, n_states, horizon, repeats):
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", CHILD, kind, str(n_states), str(horizon),
                          str(repeats)], capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--states", type=int, default=3000)
    parser.add_argument("--horizon", type=int, default=50)
    parser.add_argument("--walk-horizon", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    cases = {f"dense S={args.states}, A=4, T={args.horizon}": ("dense", args.states, args.horizon),
             f"excursion walk T={args.walk_horizon}": ("walk", 0, args.walk_horizon)}
    record = dict(cases={}, load_average=list(os.getloadavg()),
                  before=dict(note="issue 14, dense S=3000, A=4, T=50, before the rewrite",
                              log_partition_s=175.0, log_partition_gb=6.3,
                              soft_solve_s=2.1, soft_solve_gb=0.5))
    for label, (kind, S, T) in cases.items():
        rows = {}
        for method in METHODS:
            rows[method] = run_case(f"{kind}:{method}", S, T, args.repeats)
            print(f"{label:28s} {method:15s} {rows[method]['best_s']:8.3f} s  "
                  f"peak RSS {rows[method]['peak_rss_mb']:7.0f} MB", flush=True)
        base = rows["soft solve"]["best_s"]
        for method in METHODS:
            rows[method]["time_over_soft_solve"] = rows[method]["best_s"] / base
        record["cases"][label] = rows
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "tilted.json").write_text(json.dumps(record, indent=2) + "\n")
    import matplotlib

    matplotlib.use("Agg")  # a standalone script: the backend is ours to choose here
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.2))
    for ax, (label, rows) in zip(axes, record["cases"].items()):
        ax.barh(list(rows), [rows[m]["best_s"] for m in rows], color="tab:blue")
        for i, m in enumerate(rows):
            ax.text(rows[m]["best_s"], i, f" {rows[m]['best_s']:.2f} s, "
                    f"{rows[m]['peak_rss_mb']:.0f} MB", va="center", fontsize=8)
        ax.set_xlabel("best wall-clock time (s), peak RSS per process")
        ax.set_title(label, fontsize=10)
        ax.set_xlim(0, 1.6 * max(rows[m]["best_s"] for m in rows))
    fig.suptitle("Tilted recursion vs the soft solve (one process per case)", fontsize=10)
    fig.tight_layout()
    fig.savefig(RESULTS / "tilted.png", dpi=110)


if __name__ == "__main__":
    main()
