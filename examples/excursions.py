"""The paper's Fig. 2: DMRG sweeps for random-walk excursions (Gillman, Rose & Garrahan 2020).

A walker on {-T..T} starts at 0 and chooses down/up moves; the paper's rewards give 0 per step at
or above 0, -1 below, and at the end 1 at height 0, -10 elsewhere, so E[G] = 1 exactly when every
path is an excursion. From a seeded random initial policy we run one forward and one backward
sweep, stopping each half way (T/2 sites optimised) and at the end, and sample 100 trajectories
of each policy plus the greedy one. The backward sweep is backward induction: it always finds
E[G] = 1. The forward sweep optimises each site against the still-random future and can stall.

Run:  python examples/excursions.py [--horizon 20] [--seed 0] [--local-solver powell]
Writes examples/results/excursions_fig2.png and excursions_fig2.json.
"""

import argparse
import json
from pathlib import Path

import numpy as np

import tnmdp
from tnmdp.plotting import sweep_figure

RESULTS = Path(__file__).resolve().parent / "results"


def sweep_snapshots(mdp, direction, *, rng=0, local_solver="powell"):
    """A single sweep from a seeded random policy, stopped half way and run to the end.

    Parameters
    ----------
    mdp : FiniteMDP
    direction : {"forward", "backward"}
    rng : int or numpy.random.Generator
        Seed of the random initial policy (the paper's: ``T S A`` uniform reals normalised per
        state); both snapshots start from the same policy.
    local_solver : str
        ``"powell"`` as in the paper (stochastic optimal sites where actions tie), or
        ``"argmax"``.

    Returns
    -------
    half, full : Solution
        After ``T // 2`` site updates (``status == 2``, stopped by the callback) and after the
        whole sweep.
    """
    T = mdp.horizon
    seed = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    initial = seed.random((T, mdp.n_states, mdp.n_actions))
    initial /= initial.sum(axis=2, keepdims=True)
    count = {"n": 0}

    def stop_half(state):
        count["n"] += 1
        return count["n"] >= T // 2

    kwargs = dict(direction=direction, initial_policy=initial, local_solver=local_solver)
    half = tnmdp.solve(mdp, callback=stop_half, **kwargs)
    full = tnmdp.solve(mdp, **kwargs)
    return half, full


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--horizon", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--local-solver", default="powell", choices=["powell", "argmax"])
    args = parser.parse_args(argv)
    RESULTS.mkdir(exist_ok=True)
    png = RESULTS / "excursions_fig2.png"
    mdp = tnmdp.models.excursion(args.horizon)
    snapshots = {d: sweep_snapshots(mdp, d, rng=args.seed, local_solver=args.local_solver)
                 for d in ("forward", "backward")}
    _, summary = sweep_figure(snapshots, rng=args.seed, n_samples=args.samples,
                              label=f"random initial policy (seed {args.seed}), local solver "
                                    f"{args.local_solver}", filename=png)
    record = dict(horizon=args.horizon, seed=args.seed, local_solver=args.local_solver,
                  panels=summary)
    (RESULTS / "excursions_fig2.json").write_text(json.dumps(record, indent=2) + "\n")
    for panel, info in summary.items():
        print(f"{panel:16s} E[G] = {info['expected_return']:+.6f}   "
              f"admissible samples {info['admissible_fraction']:.0%}   "
              f"greedy admissible {info['greedy_admissible']}")
    print(f"wrote {png}")


if __name__ == "__main__":
    main()
