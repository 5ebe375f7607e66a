"""Controlled lattices at scale: DMRG-style sweeps against local heuristics and the flat solver.

``python -m benchmarks.lattice_control --part NAME [--quick]`` with ``NAME`` one of

=============  ==============================================================================
epidemic       ``epidemic(L, T=30, beta=0.3, rho=0.05, cost=2.5, p_infected=0.3)`` at
               ``L = 16, 32, 64``: time and objective per sweep, peak memory, the solved policy
               evaluated at ``chi`` and ``2 chi`` (relative change), the three heuristics
sysadmin       ``sysadmin(L, T=30, p_failed=0.1, reboot_cost=0.5)``, same measurements
horizon_*      ``horizon_epidemic``, ``horizon_sysadmin``: ``L = 64``, ``T = 50``, same measurements
bond           convergence in the bond dimension: the solved epidemic ``L = 64`` policy
               evaluated at ``chi = 2..128``, and solved at ``chi = 16, 32``
flat           the joint-action flat solver (``tnmdp.solve(mdp.to_flat())``) against the lattice
               sweep for ``L = 2..8``, ``T = 10`` (time, peak memory, ratio of the optima)
plot           reads the JSON files and draws ``benchmarks/results/lattice_control.png``
=============  ==============================================================================

Each part runs in well under 5 minutes on a 2-core machine shared with other jobs; absolute
times are noisy under that load (compare within one run). Peak memory is the ``tracemalloc``
peak of the measured call (numpy allocations included).
"""

from __future__ import annotations

import argparse
import itertools
import json

from benchmarks import RESULTS, measured, write_json
from tnmdp import lattice

__all__ = ["epidemic_model", "sysadmin_model", "scale", "bond", "flat", "plot"]

EPIDEMIC = dict(beta=0.3, rho=0.05, cost=2.5, p_infected=0.3)
SYSADMIN = dict(p_failed=0.1, reboot_cost=0.5)


def epidemic_model(L, T):
    return lattice.epidemic(L, T, **EPIDEMIC)


def sysadmin_model(L, T):
    return lattice.sysadmin(L, T, **SYSADMIN)


MODELS = {"epidemic": epidemic_model, "sysadmin": sysadmin_model}


def scale(model, sizes, horizons, chi, max_sweeps):
    rows = []
    for L, horizon in itertools.product(sizes, horizons):
        mdp = MODELS[model](L, horizon)
        heuristics = {name: lattice.evaluate(mdp, rule, max_bond=2 * chi).value
                      for name, rule in lattice.heuristic_policies().items()}
        sol, wall, peak = measured(lambda: lattice.solve(mdp, max_bond=chi, max_sweeps=max_sweeps,
                                                         tol=1e-7))
        check = lattice.evaluate(mdp, sol.policy, max_bond=2 * chi)
        best = max(heuristics, key=heuristics.get)
        row = dict(L=L, T=horizon, chi=chi, seconds=wall, peak_mib=peak,
                   sweep_times=sol.sweep_times, sweep_values=sol.sweep_values,
                   value=sol.expected_return, value_2chi=check.value,
                   relative_change_2chi=abs(check.value - sol.expected_return) / abs(check.value),
                   truncation_error=sol.truncation_error, max_bond_used=sol.max_bond_used,
                   environment_error=sol.environment_error, n_sweeps=sol.n_sweeps,
                   status=sol.status, message=sol.message, heuristics=heuristics,
                   best_heuristic=best, gain_over_best=sol.expected_return - heuristics[best])
        print(f"{model} L={L} T={horizon}: {wall:.1f} s, {peak:.0f} MiB, value "
              f"{sol.expected_return:.6f} (2chi {check.value:.6f}), best heuristic {best} "
              f"{heuristics[best]:.6f}, {sol.n_sweeps} sweeps, status {sol.status}", flush=True)
        rows.append(row)
    return rows


def bond(L, horizon, chis_eval, chis_solve):
    mdp = epidemic_model(L, horizon)
    solves = []
    for chi in chis_solve:
        sol, wall, peak = measured(lambda: lattice.solve(mdp, max_bond=chi, max_sweeps=6, tol=1e-7))
        solves.append(dict(chi=chi, value=sol.expected_return, seconds=wall, peak_mib=peak,
                           truncation_error=sol.truncation_error, sweep_values=sol.sweep_values))
        print(f"solve chi={chi}: {sol.expected_return:.8f} in {wall:.1f} s", flush=True)
        policy = sol.policy
    evals = []
    for chi in chis_eval:
        res, wall, peak = measured(lambda: lattice.evaluate(mdp, policy, max_bond=chi))
        evals.append(dict(chi=chi, value=res.value, seconds=wall, peak_mib=peak,
                          truncation_error=res.truncation_error, max_bond_used=res.max_bond_used))
        print(f"evaluate chi={chi}: {res.value:.10f}, discarded {res.truncation_error:.2e}, "
              f"{wall:.1f} s", flush=True)
    return dict(L=L, T=horizon, solves=solves, evaluations=evals)


def flat(sizes, horizon):
    import tnmdp

    rows = []
    for model in MODELS:
        for L in sizes:
            mdp = MODELS[model](L, horizon)
            joint, wall_flat, peak_flat = measured(lambda: tnmdp.solve(mdp.to_flat()))
            sol, wall_lat, peak_lat = measured(
                lambda: lattice.solve(mdp, max_bond=2 ** (L // 2 + 1), max_sweeps=10))
            local_flat = tnmdp.evaluate(mdp.to_flat(), lattice.policy_to_flat(mdp, sol.policy))
            rows.append(dict(model=model, L=L, T=horizon, flat_seconds=wall_flat,
                             flat_peak_mib=peak_flat, flat_value=joint.expected_return,
                             lattice_seconds=wall_lat, lattice_peak_mib=peak_lat,
                             lattice_value=sol.expected_return, lattice_value_flat=local_flat,
                             ratio=sol.expected_return / joint.expected_return))
            print(f"{model} L={L}: flat {joint.expected_return:.6f} ({wall_flat:.2f} s, "
                  f"{peak_flat:.0f} MiB); sweep {sol.expected_return:.6f} ({wall_lat:.2f} s); "
                  f"ratio {rows[-1]['ratio']:.6f}", flush=True)
        try:
            MODELS[model](sizes[-1] + 1, horizon).to_flat()
            refused = None
        except ValueError as exc:
            refused = str(exc)
        rows.append(dict(model=model, L=sizes[-1] + 1, refused=refused))
    return rows


def _load(name):
    path = RESULTS / f"lattice_control_{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def plot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(11, 8.5))
    scale_data = {model: _load(model) for model in MODELS}
    flat_rows = (_load("flat") or {"rows": []})["rows"]
    markers = {"epidemic": "o", "sysadmin": "s"}
    ax = axes[0, 0]
    for model, data in scale_data.items():
        if data is None:
            continue
        Ls = [row["L"] for row in data["rows"]]
        gains = [100 * row["gain_over_best"] / abs(row["heuristics"][row["best_heuristic"]])
                 for row in data["rows"]]
        ax.plot(Ls, gains, marker=markers[model], label=f"{model} (best heuristic: "
                f"{data['rows'][-1]['best_heuristic']})")
        for L, gain, row in zip(Ls, gains, data["rows"]):
            ax.annotate(f"{row['value']:.2f}\nvs {row['heuristics'][row['best_heuristic']]:.2f}",
                        (L, gain), fontsize=7, textcoords="offset points", xytext=(4, 4))
    ax.set_xscale("log", base=2)
    ax.set_ylim(bottom=0)
    ax.set_xlabel("L (sites)")
    ax.set_ylabel("gain of the sweep over the best heuristic (%)")
    ax.set_title("DMRG-style sweep vs local heuristics (T = 30, chi = 32)")
    ax.legend(fontsize=7, loc="center right")
    for ax, key, flat_key, ylabel in ((axes[0, 1], "seconds", "flat_seconds", "seconds"),
                                      (axes[1, 1], "peak_mib", "flat_peak_mib", "peak MiB")):
        for model, data in scale_data.items():
            if data is None:
                continue
            ax.plot([row["L"] for row in data["rows"]], [row[key] for row in data["rows"]],
                    marker=markers[model], label=f"{model}: lattice solve, T=30")
            rows = [r for r in flat_rows if r.get("model") == model and flat_key in r]
            lat_key = "lattice_seconds" if key == "seconds" else "lattice_peak_mib"
            ax.plot([r["L"] for r in rows], [max(r[lat_key], 1e-3) for r in rows],
                    marker=markers[model], ls="--", mfc="none", label=f"{model}: lattice, T=10")
            ax.plot([r["L"] for r in rows], [max(r[flat_key], 1e-3) for r in rows], ls=":",
                    marker="x", label=f"{model}: flat joint-action solve, T=10")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("L (sites)")
        ax.set_ylabel(ylabel)
        ax.set_title(f"{ylabel}: lattice vs flat (flat stops at L=8)")
        ax.legend(fontsize=6)
    ax = axes[1, 0]
    data = _load("bond")
    if data is not None:
        evals = data["result"]["evaluations"]
        chis = [e["chi"] for e in evals]
        ref = evals[-1]["value"]
        nonzero = [(c, abs(e["value"] - ref) / abs(ref)) for c, e in zip(chis[:-1], evals[:-1])
                   if e["value"] != ref]    # exact agreement has no place on a log axis
        ax.loglog(*zip(*nonzero), "o-", label=f"|E[G](chi) - E[G]({chis[-1]})| / |E[G]| "
                  "(omitted where 0)")
        ax.loglog(chis, [max(e["truncation_error"], 1e-30) for e in evals], "s--",
                  label="summed discarded weight")
        ax.axhline(1e-6, color="k", lw=0.6, ls=":")
        ax.set_xlabel("max_bond chi")
        ax.set_title(f"evaluating the solved epidemic policy, L={data['result']['L']}, "
                     f"T={data['result']['T']}")
        ax.legend(fontsize=7)
    fig.tight_layout()
    path = RESULTS / "lattice_control.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.lattice_control")
    parser.add_argument("--part", required=True,
                        choices=["epidemic", "sysadmin", "horizon_epidemic", "horizon_sysadmin",
                                 "bond", "flat", "plot"])
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke run)")
    args = parser.parse_args(argv)
    suffix = "_quick" if args.quick else ""
    if args.part in MODELS:
        sizes = (8, 12) if args.quick else (16, 32, 64)
        rows = scale(args.part, sizes, (10,) if args.quick else (30,), 8 if args.quick else 32,
                     4 if args.quick else 8)
        write_json(f"lattice_control_{args.part}{suffix}", {"params": EPIDEMIC if args.part ==
                                                            "epidemic" else SYSADMIN, "rows": rows})
    elif args.part.startswith("horizon_"):
        model = args.part[len("horizon_"):]
        rows = scale(model, (12,) if args.quick else (64,), (20,) if args.quick else (50,),
                     8 if args.quick else 32, 4 if args.quick else 8)
        write_json(f"lattice_control_{args.part}{suffix}", {"params": EPIDEMIC if model ==
                                                            "epidemic" else SYSADMIN, "rows": rows})
    elif args.part == "bond":
        result = bond(12, 10, (2, 4, 8, 16), (8,)) if args.quick else \
            bond(64, 30, (2, 4, 8, 16, 32, 64, 128), (16, 32))
        write_json(f"lattice_control_bond{suffix}", {"params": EPIDEMIC, "result": result})
    elif args.part == "flat":
        rows = flat((2, 3, 4) if args.quick else (2, 3, 4, 5, 6, 7, 8), 10)
        write_json(f"lattice_control_flat{suffix}", {"params": {"epidemic": EPIDEMIC,
                                                                "sysadmin": SYSADMIN},
                                                     "rows": rows})
    else:
        print(plot())


if __name__ == "__main__":
    main()
