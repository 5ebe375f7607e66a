"""With environment noise, the best policy is not the conditioned process.

A walker chooses down/up, but each move goes the other way with probability `noise`. The
KL-regularised optimum (tnmdp.solve with temperature=1, uniform reference) maximises
E[G] - KL(policy || uniform): it can only bias the *actions*, so it cannot remove the noise.
The Doob transform (tnmdp.doob_transform) tilts the whole process, noise included, by exp(G):
its value log Z = log E_uniform[exp(G)] bounds the soft optimum, with equality iff the moves are
deterministic. With hard constraints (-inf on forbidden moves) and noise, no policy avoids a
forbidden move for certain, so every policy has E[G] = -inf, while the conditioned process
still exists -- the paper's penalty rewards (finite) are the policy-side formulation.

Run:  python examples/noisy_walk.py [--horizon 40] [--noise 0.1]
Writes examples/results/noisy_walk.png and noisy_walk.json.
"""

import argparse
import json
from pathlib import Path

import numpy as np

import tnmdp
from tnmdp.plotting import _pyplot, density_panel
from tnmdp.tilted import event_probability

RESULTS = Path(__file__).resolve().parent / "results"


def with_rewards_of(process, model):
    """The one-action ``process`` with ``model``'s (arrival) rewards: its events, measurable."""
    ops = [process.transition_matrix(t) for t in range(process.horizon)]
    return tnmdp.FiniteMDP(ops, model.rewards, process.horizon, process.initial,
                           model.terminal_rewards, atol=1e-8)


def compare(horizon, noise):
    """Soft-optimal policy vs Doob process of the penalty excursion: numbers and densities."""
    mdp = tnmdp.models.excursion(horizon, noise=noise)
    hard = tnmdp.models.excursion(horizon, noise=noise, hard=True)
    sol = tnmdp.solve(mdp, temperature=1.0)
    doob = tnmdp.doob_transform(mdp)
    one = tnmdp.Policy.uniform(horizon, doob.n_states, 1)
    row = dict(noise=noise, soft_value=sol.soft_value, log_partition=tnmdp.log_partition(mdp),
               expected_return_policy=sol.expected_return,
               expected_return_doob=tnmdp.evaluate(doob, one),
               excursion_probability_policy=event_probability(hard, sol.policy),
               excursion_probability_doob=event_probability(with_rewards_of(doob, hard), one),
               hard_soft_value=tnmdp.solve(hard, temperature=1.0).soft_value,
               hard_log_event_probability=tnmdp.log_partition(hard))
    return row, tnmdp.marginals(mdp, sol.policy), tnmdp.marginals(doob, one)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--horizon", type=int, default=40)
    parser.add_argument("--noise", type=float, default=0.1)
    args = parser.parse_args(argv)
    T = args.horizon
    plt = _pyplot()
    fig, axes = plt.subplots(2, 2, figsize=(12, 8), sharex=True)
    rows = []
    for r, noise in enumerate((0.0, args.noise)):
        row, policy_density, doob_density = compare(T, noise)
        rows.append(row)
        density_panel(axes[r, 0], policy_density, T,
                      title=f"noise {noise}: soft-optimal policy, J* = {row['soft_value']:.4f}, "
                            f"Pr(excursion) = {row['excursion_probability_policy']:.3f}")
        density_panel(axes[r, 1], doob_density, T,
                      title=f"noise {noise}: Doob transform, log Z = "
                            f"{row['log_partition']:.4f}, "
                            f"Pr(excursion) = {row['excursion_probability_doob']:.3f}")
        gap = np.abs(policy_density - doob_density).max()
        print(f"noise {noise}: J* = {row['soft_value']:.10f}  log Z = {row['log_partition']:.10f}"
              f"  max density gap {gap:.2e}  Pr(excursion): policy "
              f"{row['excursion_probability_policy']:.4f}, Doob "
              f"{row['excursion_probability_doob']:.4f}  (hard constraints: J* = "
              f"{row['hard_soft_value']}, log Pr(event) = "
              f"{row['hard_log_event_probability']:.4f})")
    fig.suptitle(f"Penalty excursion, T = {T}, temperature 1: path density of the best policy "
                 "(left) and of the tilted process (right)", fontsize=10)
    fig.tight_layout()
    RESULTS.mkdir(exist_ok=True)
    fig.savefig(RESULTS / "noisy_walk.png", dpi=130, bbox_inches="tight")
    (RESULTS / "noisy_walk.json").write_text(json.dumps(dict(horizon=T, rows=rows), indent=2)
                                             + "\n")
    print(f"wrote {RESULTS / 'noisy_walk.png'}")


if __name__ == "__main__":
    main()
