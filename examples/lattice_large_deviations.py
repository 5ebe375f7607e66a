"""Dynamical large deviations of lattice processes with tensor networks (issue 10, item 7).

1. ``theta(s)`` of the East model (activity) and of TASEP (current): MPS at ``L = 8`` against
   exact diagonalisation of ``generator(s)``, and the MPS curve at ``L = 32`` where enumeration
   (``2^32`` states) is out of reach.
2. Space-time pictures (``t`` horizontal, sites vertical) of East trajectories sampled exactly:
   typical (``s = 0``), conditioned inactive (``s > 0``) and active (``s < 0``).
3. Vicious walkers: ``D = 4`` walkers between two walls conditioned never to meet ("stars",
   free end points; the excursions of Gillman, Rose & Garrahan's Fig. 2 for ``D`` walkers):
   sampled paths and the Doob densities.

Writes ``examples/results/lattice_large_deviations.json`` and three PNGs. Run:
``python examples/lattice_large_deviations.py`` (about two minutes on a loaded 2-core machine).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import tnmdp.lattice as la  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def exact_theta(proc, s):
    """Largest real eigenvalue of the dense tilted generator (exact diagonalisation)."""
    return float(np.linalg.eigvals(proc.generator(s).toarray()).real.max())


def theta_curves(s_grid):
    out = {}
    models = {"east": lambda L: la.east(L, 0.5), "tasep": lambda L: la.tasep(L, 0.3, 0.7)}
    for name, factory in models.items():
        small, large = factory(8), factory(32)
        rows = []
        for s in s_grid:
            mps_small = la.scgf(small, s, max_bond=16, rng=0)
            mps_large = la.scgf(large, s, max_bond=16, rng=0)
            rows.append({"s": s, "exact_L8": exact_theta(small, s), "mps_L8": mps_small.value,
                         "mps_L32": mps_large.value, "residual_L32": mps_large.residual,
                         "chi_history_L32": [list(h) for h in mps_large.bond_history]})
        out[name] = rows
    return out


def plot_theta(curves, path):
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, (name, rows) in zip(axes, curves.items()):
        s = [r["s"] for r in rows]
        # the activity is extensive (theta / L); the boundary current is not (theta)
        per8, per32 = (8, 32) if name == "east" else (1, 1)
        ax.plot(s, [r["exact_L8"] / per8 for r in rows], "k-", lw=3, alpha=0.3,
                label="L=8 exact diagonalisation")
        ax.plot(s, [r["mps_L8"] / per8 for r in rows], "o", mfc="none", label="L=8 MPS")
        ax.plot(s, [r["mps_L32"] / per32 for r in rows], "s-", ms=4, label="L=32 MPS")
        ax.axhline(0, color="grey", lw=0.5)
        ax.axvline(0, color="grey", lw=0.5)
        what = "activity, c=0.5" if name == "east" else "current, alpha=0.3, beta=0.7"
        ax.set(xlabel="s", ylabel="theta(s) / L" if name == "east" else "theta(s)",
               title=f"{name.upper()} ({what})")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def spacetime(L, n_steps, fields, rng):
    proc = la.east(L, 0.5)
    out = {}
    for s in fields:
        t0 = time.perf_counter()
        got = la.sample(proc, s, n_steps, 1, rng=rng, max_bond=16)
        traj = got.trajectories[0]
        out[s] = {"trajectory": traj, "seconds": time.perf_counter() - t0,
                  "log_weight": float(got.log_weights[0]), "dt": got.dt,
                  "truncation_error": got.truncation_error,
                  "activity": int(np.abs(np.diff(traj.astype(int), axis=0)).sum())}
    return out


def plot_spacetime(runs, path):
    fig, axes = plt.subplots(len(runs), 1, figsize=(11, 2.3 * len(runs)), sharex=True)
    for ax, (s, run) in zip(axes, runs.items()):
        traj = run["trajectory"]
        t_end = run["dt"] * (traj.shape[0] - 1)
        ax.imshow(traj.T, aspect="auto", origin="lower", cmap="Greys", interpolation="nearest",
                  extent=(0, t_end, -0.5, traj.shape[1] - 0.5))
        label = "typical" if s == 0 else ("inactive" if s > 0 else "active")
        ax.set(ylabel="site i", title=f"East L={traj.shape[1]}, s={s:+g} ({label}): "
               f"{run['activity']} flips, log weight {run['log_weight']:.1e}")
    axes[-1].set_xlabel("time t (black = up)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def walkers(L, starts, n_steps, n_samples, rng):
    proc = la.vicious_walkers(L, starts)
    got = la.sample(proc, 0.0, n_steps, n_samples, rng=rng)
    dens = la.doob_densities(proc, 0.0, n_steps)
    return proc, got, dens


def plot_walkers(got, dens, path):
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    traj = got.trajectories
    n_steps, L = traj.shape[1] - 1, traj.shape[2]
    t = np.arange(n_steps + 1)
    ax = axes[0]
    colours = plt.cm.viridis(np.linspace(0, 0.9, 4))
    for k in range(min(3, traj.shape[0])):
        pos = np.array([np.flatnonzero(row) for row in traj[k]])  # (n+1, D), ordered
        for j in range(pos.shape[1]):
            ax.plot(t, pos[:, j] + 0.08 * (k - 1), "-", color=colours[j], alpha=0.85, lw=1.3)
    ax.axhline(-0.5, color="k", lw=2)
    ax.axhline(L - 0.5, color="k", lw=2)
    ax.set(xlabel="step t", ylabel="site", ylim=(-1, L),
           title=f"{pos.shape[1]} vicious walkers conditioned to survive {n_steps} steps (3 samples)")
    ax = axes[1]
    im = ax.imshow(dens.densities.T, aspect="auto", origin="lower", cmap="magma",
                   extent=(-0.5, n_steps + 0.5, -0.5, L - 0.5))
    fig.colorbar(im, ax=ax, label="<n_i(t)> (Doob)")
    ax.set(xlabel="step t", ylabel="site i",
           title=f"conditioned densities; log Z = {dens.log_partition.value:.3f}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main():
    RESULTS.mkdir(exist_ok=True)
    rng = np.random.default_rng(2026)
    t0 = time.perf_counter()
    s_grid = [-0.3, -0.15, -0.05, -0.02, 0.0, 0.02, 0.05, 0.15, 0.3]
    curves = theta_curves(s_grid)
    plot_theta(curves, RESULTS / "lattice_theta.png")
    runs = spacetime(24, 600, [0.0, 0.1, -0.1], rng)
    plot_spacetime(runs, RESULTS / "lattice_spacetime.png")
    _, got, dens = walkers(17, [2, 6, 10, 14], 60, 200, rng)
    plot_walkers(got, dens, RESULTS / "lattice_walkers.png")
    summary = {
        "theta": curves,
        "max_abs_error_L8": {name: max(abs(r["mps_L8"] - r["exact_L8"]) for r in rows)
                             for name, rows in curves.items()},
        "spacetime": {str(s): {k: v for k, v in run.items() if k != "trajectory"}
                      for s, run in runs.items()},
        "walkers": {"L": 17, "starts": [2, 6, 10, 14], "n_steps": 60,
                    "log_partition": dens.log_partition.value,
                    "max_abs_log_weight": float(np.abs(got.log_weights).max()),
                    "n_samples": int(got.trajectories.shape[0])},
        "seconds": time.perf_counter() - t0,
    }
    (RESULTS / "lattice_large_deviations.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps({k: summary[k] for k in ("max_abs_error_L8", "walkers", "seconds")}, indent=1))


if __name__ == "__main__":
    main()
