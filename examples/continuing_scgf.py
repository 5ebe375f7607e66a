"""log Z_T / T converges to the SCGF with an O(1/T) correction (issue 12, item 5).

For an irreducible tilted transfer matrix ``W`` with Perron root ``lambda`` and Perron vectors
``r`` (right) and ``l`` (left), ``log Z_T = T log lambda + c + O(|lambda_2/lambda|^T)`` with
``c = log((initial . r)(l . 1) / (l . r))``. The finite-horizon ``tnmdp.log_partition`` (its own
backward recursion) is compared with ``tnmdp.scgf`` and the predicted ``c / T`` on a random
two-action chain under the uniform reference policy, for three temperatures.

Writes ``examples/results/continuing_scgf.json`` and ``.png``. About 5 s.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

import tnmdp
from tnmdp.transfer import perron_root, tilted_transfer

RESULTS = Path(__file__).resolve().parent / "results"


def chain(seed=4, S=8, A=2):
    rng = np.random.default_rng(seed)
    P = rng.random((S, A, S)) + 0.05
    P /= P.sum(axis=2, keepdims=True)
    return P, rng.normal(size=(S, A, S)), rng.dirichlet(np.ones(S))


def main():
    P, R, init = chain()
    horizons = [1, 2, 3, 5, 8, 12, 20, 30, 50, 80, 130, 200]
    out = {"horizons": horizons, "temperatures": {}}
    for tau in (0.5, 1.0, 2.0):
        mdp = tnmdp.FiniteMDP(P, R, None, init)
        s = tnmdp.scgf(mdp, tau)
        W, shift = tilted_transfer(mdp, temperature=tau)
        root = perron_root(W)
        c = float(np.log((init @ root.right) * root.left.sum() / (root.left @ root.right)))
        log_z = [tnmdp.log_partition(tnmdp.FiniteMDP(P, R, T, init), temperature=tau)
                 for T in horizons]
        out["temperatures"][str(tau)] = {"scgf": s, "c": c, "log_z": log_z}
        print(f"tau={tau}: scgf={s:.12f}  c={c:+.6f}  "
              f"T(log Z_T/T - scgf) at T=200: {log_z[-1] - 200 * s:+.6f}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "continuing_scgf.json").write_text(json.dumps(out, indent=1))
    plot(out, RESULTS / "continuing_scgf.png")


def plot(out, path):
    from matplotlib.figure import Figure

    T = np.array(out["horizons"], dtype=float)
    fig = Figure(figsize=(10, 4), constrained_layout=True)
    left, right = fig.subplots(1, 2)
    for i, (tau, rec) in enumerate(out["temperatures"].items()):
        err = np.array(rec["log_z"]) / T - rec["scgf"]
        left.loglog(T, np.abs(err), "o", color=f"C{i}", label=f"tau={tau}")
        left.loglog(T, abs(rec["c"]) / T, "-", color=f"C{i}", lw=0.8)
        right.semilogx(T, T * err, "o-", color=f"C{i}", label=f"tau={tau}")
        right.axhline(rec["c"], color=f"C{i}", ls="--", lw=0.8)
    left.set_xlabel("T")
    left.set_ylabel("|log Z_T / T - scgf|")
    left.set_title("dots: tnmdp.log_partition; lines: |c| / T")
    left.legend(fontsize=8)
    right.set_xlabel("T")
    right.set_ylabel("T (log Z_T / T - scgf)")
    right.set_title("converges to c = log((init.r)(l.1)/(l.r)) (dashed)")
    fig.savefig(path, dpi=100)


if __name__ == "__main__":
    main()
