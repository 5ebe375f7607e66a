"""Controlling an epidemic on a line of 32 sites with a local policy found by space-time sweeps.

1. The issue's check (L = 4, T = 10, beta 0.5, rho 0.1, cost 1.5, p_infected 0.2): the joint-action
   optimum of the flat MDP (16 states, 16 joint actions), the best neighbourhood policy found by
   ``tnmdp.lattice.solve`` and the best policy that sees only its own site (``scope="site"``).
2. ``epidemic(32, 20, beta=0.3, rho=0.05, cost=2.5, p_infected=0.3)`` (2^32 states, 2^32 joint
   actions): the learned rule of a bulk site as a table per context ``(x_{i-1}, x_i, x_{i+1})`` and
   time; space-time plots (time horizontal, sites vertical) of an uncontrolled and a controlled
   epidemic drawn with the same random numbers; the solved policy evaluated at increasing bond
   dimension (convergence of the boundary-MPS contraction) against the three heuristics.

Run:  python examples/lattice_control.py [--quick]
Writes examples/results/lattice_control.png and lattice_control.json.
"""

import argparse
import json
from pathlib import Path

import numpy as np

import tnmdp
from tnmdp import lattice

RESULTS = Path(__file__).resolve().parent / "results"
CONTEXTS = [(xl, x, xr) for x in (0, 1) for xl in (0, 1) for xr in (0, 1)]


def paper_check():
    mdp = lattice.epidemic(4, 10, beta=0.5, rho=0.1, cost=1.5, p_infected=0.2)
    joint = tnmdp.solve(mdp.to_flat()).expected_return
    context = lattice.solve(mdp, max_bond=16)
    site = lattice.solve(mdp, max_bond=16, scope="site")
    heuristics = {name: lattice.evaluate(mdp, rule).value
                  for name, rule in lattice.heuristic_policies().items()}
    print(f"L=4, T=10: joint-action optimum {joint:.6f}; neighbourhood sweep "
          f"{context.expected_return:.6f} ({context.n_sweeps} sweeps); own-site-only sweep "
          f"{site.expected_return:.6f}; heuristics {heuristics}")
    return dict(joint_optimum=joint, neighbourhood=context.expected_return,
                own_site=site.expected_return, heuristics=heuristics)


def rule_table(policy, site, context_probabilities, floor=1e-9):
    """``P(act)`` of ``site`` per context (rows) and time (columns); nan where the context has
    probability below ``floor`` (there the sweep's choice is immaterial and set by round-off)."""
    return np.array([[policy[t, site][ctx][1]
                      if context_probabilities[t, site][ctx] >= floor else np.nan
                      for t in range(policy.shape[0])] for ctx in CONTEXTS])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="L = 12, T = 10")
    args = parser.parse_args(argv)
    L, T, chi = (12, 10, 16) if args.quick else (32, 20, 32)
    record = {"paper_check": paper_check()}

    mdp = lattice.epidemic(L, T, beta=0.3, rho=0.05, cost=2.5, p_infected=0.3)
    sol = lattice.solve(mdp, max_bond=chi, progress=True)
    heuristics = {name: lattice.evaluate(mdp, rule, max_bond=chi).value
                  for name, rule in lattice.heuristic_policies().items()}
    print(f"L={L}, T={T}: sweep {sol.expected_return:.6f}, heuristics {heuristics}")
    _, _, ctx_prob = lattice.marginals(mdp, sol.policy, max_bond=chi, contexts=True)
    table = rule_table(np.asarray(sol.policy), L // 2, ctx_prob)
    print("P(act) of site", L // 2, "per context (x_l x x_r) and time ('.': probability < 1e-9):")
    print("ctx  " + "".join(f"{t:>3d}" for t in range(T)))
    for ctx, row in zip(CONTEXTS, table):
        print("".join(map(str, ctx)) + "  " + "".join("  ." if np.isnan(v) else f"{v:>3.0f}"
                                                      for v in row))
    chis = [1, 2, 4, 8, 16, 2 * chi]
    evals = [lattice.evaluate(mdp, sol.policy, max_bond=c) for c in chis]
    for c, e in zip(chis, evals):
        print(f"evaluate at chi={c:3d}: {e.value:.12f} (discarded weight {e.truncation_error:.1e})")
    rng_seed = 7
    free = lattice.sample_controlled(mdp, lattice.heuristic_policies()["never"], 1, rng=rng_seed)
    ctrl = lattice.sample_controlled(mdp, sol.policy, 1, rng=rng_seed)
    many = lattice.sample_controlled(mdp, sol.policy, 2000, rng=1)
    se = many.returns.std() / np.sqrt(len(many.returns))
    print(f"Monte Carlo return of the solved policy {many.returns.mean():.3f} +- {se:.3f} "
          f"(exact {sol.expected_return:.3f})")
    record.update(L=L, T=T, chi=chi, value=sol.expected_return, heuristics=heuristics,
                  n_sweeps=sol.n_sweeps, sweep_values=sol.sweep_values.tolist(),
                  truncation_error=sol.truncation_error,
                  rule_site=L // 2, rule_contexts=["".join(map(str, c)) for c in CONTEXTS],
                  rule_p_act=[[None if np.isnan(v) else v for v in row] for row in table],
                  bond=[dict(chi=c, value=e.value, discarded=e.truncation_error)
                        for c, e in zip(chis, evals)],
                  monte_carlo=dict(mean=float(many.returns.mean()), se=float(se), n=2000))
    RESULTS.mkdir(exist_ok=True)
    suffix = "_quick" if args.quick else ""
    (RESULTS / f"lattice_control{suffix}.json").write_text(json.dumps(record, indent=2) + "\n")
    figure(RESULTS / f"lattice_control{suffix}.png", free, ctrl, table, chis, evals, sol,
           heuristics, L, T)


def figure(path, free, ctrl, table, chis, evals, sol, heuristics, L, T):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(11, 8))
    for ax, traj, title in ((axes[0, 0], free, "uncontrolled (never act)"),
                            (axes[0, 1], ctrl, "controlled (solved local policy)")):
        ax.imshow(traj.states[0].T, aspect="auto", cmap="Reds", origin="lower",
                  extent=(-0.5, T + 0.5, -0.5, L - 0.5), vmin=0, vmax=1.3)
        t_act, i_act = np.nonzero(traj.actions[0])
        ax.scatter(t_act, i_act, marker="x", s=14, color="C0", label="act")
        ax.set_xlabel("time t")
        ax.set_ylabel("site i")
        ax.set_title(f"{title}: return {traj.returns[0]:.1f}\n(red: infected, x: action; "
                     "same random numbers)", fontsize=9)
        ax.legend(loc="upper right", fontsize=7)
    ax = axes[1, 0]
    ax.imshow(np.ma.masked_invalid(table), aspect="auto", cmap="Blues", vmin=-0.15, vmax=1)
    ax.set_yticks(range(len(CONTEXTS)))
    ax.set_yticklabels([f"{a}{b}{c}" for a, b, c in CONTEXTS])
    ax.set_xlabel("time t")
    ax.set_ylabel("context x_{i-1} x_i x_{i+1}")
    ax.set_title(f"learned rule of site {L // 2}: dark = act, pale = do nothing, "
                 "white = context\nwith probability < 1e-9", fontsize=9)
    ax = axes[1, 1]
    ref = evals[-1].value
    nonzero = [(c, abs(e.value - ref) / abs(ref)) for c, e in zip(chis[:-1], evals[:-1])
               if e.value != ref]             # exact agreement has no place on a log axis
    ax.loglog(*zip(*nonzero), "o-", label=f"|E[G](chi) - E[G]({chis[-1]})| / |E[G]| "
              "(omitted where 0)")
    ax.loglog(chis, [max(e.truncation_error, 1e-30) for e in evals], "s--",
              label="summed discarded weight")
    ax.set_xlabel("max_bond chi")
    best = max(heuristics, key=heuristics.get)
    ax.set_title(f"convergence in bond dimension; E[G] = {sol.expected_return:.3f}\n"
                 f"(best heuristic '{best}': {heuristics[best]:.3f})", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print("wrote", path)


if __name__ == "__main__":
    main()
