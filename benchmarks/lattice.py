"""Many-body processes as space-time tensor networks (issue 10, item 6): scale and crossover.

Sections (each runs in its own process so that its peak RSS is its own; ``--only`` picks some):

``east``     SCGF ``theta(s)`` of the open East model, ``c = 0.5``, ``L = 64`` and ``128``,
             ``s`` in ``[-0.2, 0.2]``, bond schedule 8 -> 16 -> 32 (-> 64): the relative change
             ``|theta(chi) - theta(2 chi)| / |theta|`` and the smallest ``chi`` reaching 1e-8.
``tasep``    current SCGF of TASEP, ``L = 64``: low-density phase (``alpha = 0.3, beta = 0.7``)
             and maximal-current phase (``alpha = beta = 1``), non-Hermitian sweeps.
``finite``   ``log Z_n(s)`` of East ``L = 64``, ``n = 1000``, bond 8, 16, 32, with the
             summed discarded weight.
``walkers``  ``D = 4`` vicious walkers, ``n = 40``, against the flat DP count of non-crossing
             paths over the ``C(L, 4)`` walker configurations.
``flat``     the crossover: East ``theta(s = -0.1)`` by sparse exact diagonalisation of
             ``generator(s)`` (ARPACK) and by the MPS (bond 32) for ``L = 6 .. 20``; time and
             tracemalloc peak of each in the same run.

Timings are single runs on a shared 2-core machine under load from other jobs: absolute times
are noisy; the ratios between methods run back to back are the result. Writes
``results/lattice.json`` and ``results/lattice.png``; ``python -m benchmarks.lattice [--quick]``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from math import comb

from . import RESULTS, machine_info, measured

__all__ = ["run", "plot", "SECTIONS"]

SECTIONS = ("east", "tasep", "finite", "walkers", "flat")
TARGETS = {"east_64_seconds_per_s": 120.0, "east_64_peak_mb": 2048.0, "relative_change": 1e-8}


def _peak_rss_mb():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM")) / 1024


def _theta_row(proc, s, max_bond, **kwargs):
    import tnmdp.lattice as la

    t0 = time.perf_counter()
    res = la.scgf(proc, s, max_bond=max_bond, rng=0, **kwargs)
    seconds = time.perf_counter() - t0
    hist = [list(h) for h in res.bond_history]
    changes = [abs(b[1] - a[1]) / max(abs(b[1]), 1e-300) for a, b in zip(hist, hist[1:])]
    chi_needed = next((a[0] for a, c in zip(hist, changes) if c < TARGETS["relative_change"]), None)
    return {"s": s, "theta": res.value, "history": hist, "relative_changes": changes,
            "chi_for_1e-8": chi_needed, "residual": res.residual, "converged": res.converged,
            "n_sweeps": res.n_sweeps, "seconds": seconds, "method": res.method}


def section_east(quick):
    import tnmdp.lattice as la

    out = {}
    sizes = {64: [-0.2, -0.1, -0.05, -0.02, 0.02, 0.05, 0.1, 0.2], 128: [-0.1, -0.02, 0.02, 0.1]}
    if quick:
        sizes = {16: [-0.1, 0.1]}
    for L, grid in sizes.items():
        proc = la.east(L, 0.5)
        out[str(L)] = [_theta_row(proc, s, 16 if quick else 32) for s in grid]
    return out


def section_tasep(quick):
    import tnmdp.lattice as la

    L = 12 if quick else 64
    out = {"L": L, "low_density": [], "maximal_current": []}
    proc = la.tasep(L, 0.3, 0.7)
    for s in ([0.1] if quick else [-0.1, -0.05, 0.05, 0.1]):
        out["low_density"].append(_theta_row(proc, s, 16 if quick else 32))
    proc = la.tasep(L, 1.0, 1.0)
    out["maximal_current"].append(_theta_row(proc, 0.05, 16 if quick else 32))
    return out


def section_finite(quick):
    import tnmdp.lattice as la

    L, n, s = (16, 50, 0.05) if quick else (64, 1000, 0.05)
    proc = la.east(L, 0.5)
    rows = []
    for chi in ((4, 8) if quick else (8, 16, 32)):
        t0 = time.perf_counter()
        res = la.log_partition(proc, s, n, max_bond=chi)
        rows.append({"max_bond": chi, "value": res.value, "truncation_error": res.truncation_error,
                     "max_bond_used": res.max_bond_used, "seconds": time.perf_counter() - t0})
    return {"L": L, "n_steps": n, "s": s, "rows": rows}


def _walker_dp(L, starts, n):
    """``log Z_n`` from the exact integer count of non-crossing paths (DP over positions)."""
    import itertools

    counts = {tuple(starts): 1}
    for _ in range(n):
        nxt = {}
        for pos, c in counts.items():
            for moves in itertools.product((-1, 1), repeat=len(pos)):
                new = tuple(p + m for p, m in zip(pos, moves))
                if new[0] < 0 or new[-1] > L - 1 or any(a >= b for a, b in zip(new, new[1:])):
                    continue  # order kept: no shared site and no swap (a swap reverses order)
                nxt[new] = nxt.get(new, 0) + c
        counts = nxt
    return math.log(sum(counts.values())) - n * len(starts) * math.log(2)  # exact big ints


def section_walkers(quick):
    import tnmdp.lattice as la

    rows = []
    n = 10 if quick else 40
    for L in ((8,) if quick else (12, 24, 48)):
        starts = [round((k + 0.5) * L / 4) for k in range(4)]
        t0 = time.perf_counter()
        exact = _walker_dp(L, starts, n)
        dp_seconds = time.perf_counter() - t0
        for chi in (8, 16, 32):
            t0 = time.perf_counter()
            res = la.log_partition(la.vicious_walkers(L, starts), 0.0, n, max_bond=chi)
            rows.append({"L": L, "starts": starts, "n_steps": n, "max_bond": chi,
                         "value": res.value, "exact": exact, "abs_error": abs(res.value - exact),
                         "truncation_error": res.truncation_error,
                         "seconds": time.perf_counter() - t0, "dp_seconds": dp_seconds,
                         "dp_states": comb(L, 4)})
    return {"rows": rows}


def section_flat(quick):
    import scipy.sparse.linalg as spla

    import tnmdp.lattice as la

    s, rows = -0.1, []
    for L in ((6, 8, 10) if quick else (6, 8, 10, 12, 14, 16, 18, 20)):
        proc = la.east(L, 0.5)

        def flat():
            w = proc.generator(s)
            return float(spla.eigs(w, k=1, which="LR", tol=1e-12)[0][0].real)

        def mps():
            return la.scgf(proc, s, max_bond=32, rng=0).value

        t0 = time.perf_counter()
        theta_mps = mps()
        mps_seconds = time.perf_counter() - t0
        t0 = time.perf_counter()
        theta_flat = flat()
        flat_seconds = time.perf_counter() - t0
        _, _, mps_peak = measured(mps)
        _, _, flat_peak = measured(flat)
        rows.append({"L": L, "states": 2 ** L, "theta_flat": theta_flat, "theta_mps": theta_mps,
                     "abs_difference": abs(theta_flat - theta_mps), "flat_seconds": flat_seconds,
                     "mps_seconds": mps_seconds, "flat_peak_mb": flat_peak,
                     "mps_peak_mb": mps_peak})
    return {"s": s, "rows": rows}


def _run_section(name, quick):
    func = globals()[f"section_{name}"]
    t0 = time.perf_counter()
    data = func(quick)
    data = {"data": data, "section_seconds": time.perf_counter() - t0,
            "peak_rss_mb": _peak_rss_mb()}
    return data


def run(sections=SECTIONS, quick=False):
    """Run each section in a fresh subprocess; merge into ``results/lattice[_quick].json``."""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / ("lattice_quick.json" if quick else "lattice.json")
    results = json.loads(path.read_text()) if path.exists() else {}
    results["machine"] = machine_info()
    results["targets"] = TARGETS
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "QUIMB_NUM_THREAD_WORKERS": "1"}
    for name in sections:
        code = (f"import json; from benchmarks.lattice import _run_section; "
                f"print(json.dumps(_run_section({name!r}, {quick!r})))")
        proc = subprocess.run([sys.executable, "-c", code], cwd=root, env=env,
                              capture_output=True, text=True, check=True)
        results[name] = json.loads(proc.stdout.strip().splitlines()[-1])
        print(name, f"{results[name]['section_seconds']:.1f} s,",
              f"peak RSS {results[name]['peak_rss_mb']:.0f} MB", flush=True)
        path.write_text(json.dumps(results, indent=1))
    plot(results, RESULTS / ("lattice_quick.png" if quick else "lattice.png"))
    return results


def plot(results, path):
    """Six panels: East theta(s), chi convergence, crossover time and memory, finite time, TASEP."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(15, 8.5))
    ax = axes[0, 0]
    east = results.get("east", {}).get("data", {})
    for L, rows in east.items():
        s = [r["s"] for r in rows]
        ax.plot(s, [r["theta"] / int(L) for r in rows], "o-", label=f"East L={L}")
    ax.axvline(0, color="grey", lw=0.5)
    ax.set(xlabel="s", ylabel="theta(s) / L", title="East c=0.5: active (s<0) / inactive (s>0)")
    ax.legend()
    ax = axes[0, 1]
    for L, rows in east.items():
        for k, label in ((0, "8->16"), (1, "16->32")):
            vals = [(r["s"], r["relative_changes"][k]) for r in rows if len(r["relative_changes"]) > k]
            if vals:
                ax.semilogy(*zip(*vals), "o-" if k else "s--", label=f"L={L}, chi {label}")
    ax.axhline(1e-8, color="k", ls=":", label="1e-8")
    ax.set(xlabel="s", ylabel="|theta(chi) - theta(2chi)| / |theta|", title="convergence in bond dimension")
    ax.legend(fontsize=7)
    flat = results.get("flat", {}).get("data", {}).get("rows", [])
    if flat:
        L = [r["L"] for r in flat]
        ax = axes[0, 2]
        ax.semilogy(L, [r["flat_seconds"] for r in flat], "o-", label="flat: sparse eigs of W_s")
        ax.semilogy(L, [r["mps_seconds"] for r in flat], "s-", label="MPS: scgf, chi=32")
        ax.set(xlabel="L", ylabel="seconds (shared machine)", title="East theta(-0.1): flat vs MPS time")
        ax.legend()
        ax = axes[1, 0]
        ax.semilogy(L, [r["flat_peak_mb"] for r in flat], "o-", label="flat")
        ax.semilogy(L, [r["mps_peak_mb"] for r in flat], "s-", label="MPS")
        ax.set(xlabel="L", ylabel="tracemalloc peak (MB)", title="memory: flat vs MPS")
        ax.legend()
    fin = results.get("finite", {}).get("data", {})
    if fin:
        ax = axes[1, 1]
        rows = fin["rows"]
        best = rows[-1]["value"]
        chis = [r["max_bond"] for r in rows[:-1]]
        ax.loglog(chis, [abs(r["value"] - best) for r in rows[:-1]], "o-",
                  label=f"|log Z(chi) - log Z({rows[-1]['max_bond']})|")
        ax.loglog([r["max_bond"] for r in rows], [max(r["truncation_error"], 1e-30) for r in rows],
                  "s--", label="summed discarded weight")
        ax.set(xlabel="max_bond", title=f"East L={fin['L']}, n={fin['n_steps']}, s={fin['s']}: log Z_n")
        ax.legend(fontsize=8)
    tas = results.get("tasep", {}).get("data", {})
    if tas:
        ax = axes[1, 2]
        rows = tas["low_density"]
        ax.plot([r["s"] for r in rows], [r["theta"] for r in rows], "o-",
                label="low density (0.3, 0.7)")
        for r in tas["maximal_current"]:
            ax.plot([r["s"]], [r["theta"]], "r^", label="maximal current (1, 1)")
        ax.axhline(0, color="grey", lw=0.5)
        ax.set(xlabel="s", ylabel="theta(s)", title=f"TASEP L={tas['L']}: current SCGF")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.lattice")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    args = parser.parse_args(argv)
    run(args.only, args.quick)


if __name__ == "__main__":
    main()
