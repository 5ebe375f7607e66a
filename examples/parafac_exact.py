"""PARAFAC policies on the finite pendulum: exact learning curves against the exact optimum.

The pendulum is discretised into a finite MDP (``tnmdp.models.pendulum``); ``tnmdp.solve`` gives
the exact optimum on the very grid the low-rank policy uses, and every iterate of the learner is
evaluated exactly by contraction (``tnmdp.evaluate``), so the curves carry no Monte Carlo noise.

Reported, for ranks 1..10:

* the exact return of the rank-K policy learned by Adam on the exact policy gradient
  (``exact_ascent``: gradients by contraction, best of two initialisations), and of each of the
  four sampled learners (TLRPG, TLRAC, PTLRPO, TRTLRPO; one seed) after a fixed budget of
  episodes, as fractions of the optimum,
  ``(J - J_uniform) / (J* - J_uniform)`` (returns are negative costs, so the uniform random
  policy is the zero of the scale and the optimum its one), with parameter counts;
* the relative CP-fit error ``||X - X_K|| / ||X||`` of three exact tensors of shape
  ``(n_theta, n_omega, A)`` at ``t = 0``: the optimal ``Q``, the advantage ``Q - V`` (what a
  softmax policy's logits must represent) and the optimal deterministic policy as one-hot -- the
  paper's Fig. 1 on an exact optimum instead of a trained network.

Step sizes of the sampled learners (``STEPS``) were screened on rank 5: Adam 0.03 for one
epoch per batch (TLRPG, TLRAC); PTLRPO's ten epochs per batch need 0.003 (at 0.03 it stalls near
0.3 of the optimum); TRTLRPO takes KL steps of 0.01.

Usage::

    python examples/parafac_exact.py            # ~6 min on 2 cores
    python examples/parafac_exact.py --quick    # ~30 s

Writes ``examples/results/parafac_exact.{json,png}``.
"""

import argparse
import json
import os
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # the process pool provides the parallelism
from concurrent.futures import ProcessPoolExecutor

import numpy as np

import tnmdp
from tnmdp.adapters import parafac_learn
from tnmdp.adapters.cp import cp_als
from tnmdp.adapters.exact import action_values
from tnmdp.adapters.parafac import ParafacPolicy
from tnmdp.models.pendulum import pendulum

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
STEPS = {"tlrpg": {"learning_rate": 0.03, "epochs": 1},
         "tlrac": {"learning_rate": 0.03, "epochs": 1},
         "ptlrpo": {"learning_rate": 0.003, "epochs": 10}, "trtlrpo": {"max_kl": 0.01}}


def make_mdp(args, horizon=None):
    return pendulum(args.n_theta, args.n_omega, horizon=horizon or args.horizon,
                    initial=args.initial)


def train(job):
    """One learning run (a process-pool worker): returns the exact learning curve."""
    args, method, rank, seed = job
    mdp = make_mdp(args)
    modes = (mdp.n_states,) if rank == "tabular" else (args.n_theta, args.n_omega)
    policy = ParafacPolicy(modes, mdp.n_actions, mdp.n_actions if rank == "tabular" else rank,
                           rng=seed, init_scale=args.init_scale)
    if method == "exact":
        result = parafac_learn.exact_ascent(policy, mdp, n_steps=args.steps,
                                            learning_rate=args.exact_lr)
    else:
        result = getattr(parafac_learn, method)(policy, mdp, n_updates=args.updates,
                                                episodes_per_update=args.episodes, rng=seed,
                                                **STEPS[method])
    curve = np.append(result.exact_returns, result.final_exact_return)
    return method, rank, seed, curve.tolist(), result.n_parameters


def cp_errors(mdp, args, ranks):
    """Relative CP-fit errors of the exact Q, advantage and one-hot policy tensors at t = 0."""
    q = action_values(mdp, time=0)  # exact optimal Q_0 (tnmdp's backup)
    shape = (args.n_theta, args.n_omega, mdp.n_actions)
    advantage = q - q.max(axis=1, keepdims=True)
    greedy = np.eye(mdp.n_actions)[q.argmax(axis=1)]
    tensors = {"Q": q, "advantage": advantage, "policy": greedy}
    return {name: [cp_als(x.reshape(shape), k, rng=0).relative_error for k in ranks]
            for name, x in tensors.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small budgets, ranks 1, 2, 5, 10")
    parser.add_argument("--n-theta", type=int, default=10)
    parser.add_argument("--n-omega", type=int, default=10)
    parser.add_argument("--horizon", type=int, default=100)
    parser.add_argument("--initial", default="uniform")
    parser.add_argument("--steps", type=int, default=300, help="exact-ascent Adam steps")
    parser.add_argument("--exact-lr", type=float, default=0.05)
    parser.add_argument("--algorithms", nargs="+", default=list(parafac_learn.ALGORITHMS),
                        choices=parafac_learn.ALGORITHMS)
    parser.add_argument("--sampled-ranks", type=int, nargs="+", default=list(range(1, 11)))
    parser.add_argument("--updates", type=int, default=600)
    parser.add_argument("--episodes", type=int, default=16)
    parser.add_argument("--init-scale", type=float, default=0.5)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    ranks = list(range(1, 11))
    if args.quick:
        args.steps, args.updates, ranks = 100, 100, [1, 2, 5, 10]
        args.sampled_ranks = [5]
    start = time.time()

    mdp = make_mdp(args)
    optimum = tnmdp.solve(mdp).expected_return
    uniform = tnmdp.evaluate(mdp, np.full((mdp.horizon, mdp.n_states, mdp.n_actions),
                                          1 / mdp.n_actions))
    errors = cp_errors(mdp, args, ranks)

    jobs = [(args, "exact", rank, seed) for rank in ranks + ["tabular"] for seed in (0, 1)]
    jobs += [(args, alg, rank, 0) for alg in args.algorithms for rank in args.sampled_ranks]
    with ProcessPoolExecutor(args.workers) as pool:
        runs = list(pool.map(train, jobs))

    def best(method, rank):
        found = [(c, n) for m, r, _, c, n in runs if m == method and r == rank]
        return max(found, key=lambda item: item[0][-1]) if found else (None, None)

    def fraction(value):
        return (value - uniform) / (optimum - uniform)

    exact = {r: best("exact", r) for r in ranks + ["tabular"]}
    sampled = {alg: {r: best(alg, r) for r in args.sampled_ranks} for alg in args.algorithms}
    print(f"finite pendulum {args.n_theta}x{args.n_omega}, {mdp.n_actions} torques, "
          f"T={args.horizon}, gamma={mdp.discount}, initial={args.initial}: "
          f"J*={optimum:.2f}, J_uniform={uniform:.2f}; fraction = (J - J_unif) / (J* - J_unif)")
    print(f"{'rank':>7} {'params':>6} {'exact ascent':>12} "
          + "".join(f"{alg:>8}" for alg in args.algorithms)
          + f" {'CP err Q':>9} {'Q - V':>7} {'policy':>7}")
    for i, rank in enumerate(ranks + ["tabular"]):
        curve, n_params = exact[rank]
        row = f"{rank:>7} {n_params:>6} {fraction(curve[-1]):>12.3f} "
        for alg in args.algorithms:
            row += (f"{fraction(sampled[alg][rank][0][-1]):>8.3f}" if rank in sampled[alg]
                    else f"{'-':>8}")
        row += " "
        if rank != "tabular":
            row += (f"{errors['Q'][i]:>9.2e} {errors['advantage'][i]:>7.3f} "
                    f"{errors['policy'][i]:>7.3f}")
        print(row)
    print(f"('tabular': a stationary softmax over all {mdp.n_states} states; the optimum is "
          f"time-dependent.) Sampled learners: {args.updates} x {args.episodes} episodes. "
          f"Elapsed {time.time() - start:.0f} s")

    summary = {
        "settings": vars(args), "optimum": optimum, "uniform": uniform,
        "fraction_definition": "(J - J_uniform) / (J* - J_uniform)", "ranks": ranks,
        "params": [exact[r][1] for r in ranks],
        "exact_ascent_fraction": [fraction(exact[r][0][-1]) for r in ranks],
        "tabular_stationary_fraction": fraction(exact["tabular"][0][-1]),
        "steps": {alg: STEPS[alg] for alg in args.algorithms},
        "sampled_fraction": {alg: {str(r): fraction(c[-1]) for r, (c, _) in runs_.items()}
                             for alg, runs_ in sampled.items()},
        "cp_error": errors,
        "exact_curves": {str(r): exact[r][0] for r in ranks},
        "sampled_curves": {alg: {str(r): c for r, (c, _) in runs_.items()}
                           for alg, runs_ in sampled.items()},
    }
    os.makedirs(RESULTS, exist_ok=True)
    suffix = "_quick" if args.quick else ""
    with open(os.path.join(RESULTS, f"parafac_exact{suffix}.json"), "w") as fh:
        json.dump(summary, fh, indent=1)
    plot(summary, os.path.join(RESULTS, f"parafac_exact{suffix}.png"))


def plot(summary, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    settings = summary["settings"]
    fig, axes = plt.subplots(1, 3, figsize=(17, 4.8))
    ax = axes[0]
    shown = "5" if all("5" in c for c in summary["sampled_curves"].values()) else None
    for i, (alg, curves) in enumerate(summary["sampled_curves"].items()):
        rank = shown or next(iter(curves))
        episodes = np.arange(len(curves[rank])) * settings["episodes"]
        ax.plot(episodes, curves[rank], color=f"C{i + 3}", label=f"{alg.upper()}, rank {rank}")
    ax.axhline(summary["optimum"], color="k", ls="--", label="exact optimum (solve)")
    ax.axhline(summary["uniform"], color="gray", ls=":", label="uniform policy")
    ax.set(xlabel="episodes sampled", ylabel="exact expected return of the iterate",
           title="sampled learning, exact evaluation (no MC noise)")
    ax.legend(fontsize=8)

    ax = axes[1]
    ranks = summary["ranks"]
    ax.plot(ranks, summary["exact_ascent_fraction"], "o-", label="exact-gradient ascent")
    budget = settings["updates"] * settings["episodes"]
    for i, (alg, fractions) in enumerate(summary["sampled_fraction"].items()):
        ax.plot([int(r) for r in fractions], list(fractions.values()), "s", color=f"C{i + 3}",
                label=f"{alg.upper()} ({budget} episodes)")
    ax.axhline(summary["tabular_stationary_fraction"], color="C2", ls="-.",
               label="stationary tabular softmax")
    ax.axhline(1.0, color="k", ls="--", label="exact optimum")
    for r, n in zip(ranks, summary["params"]):
        ax.annotate(str(n), (r, 0.03), ha="center", fontsize=7)
    ax.set(xlabel="rank K (numbers: policy parameters)", ylim=(0, 1.05),
           ylabel="(J - J_unif) / (J* - J_unif)", title="rank-K policy vs exact optimum")
    ax.legend(fontsize=8, loc="lower right", bbox_to_anchor=(1.0, 0.08))

    ax = axes[2]
    labels = {"Q": "optimal Q_0", "advantage": "Q_0 - V_0", "policy": "optimal policy (one-hot)"}
    for name, errs in summary["cp_error"].items():
        ax.semilogy(ranks, np.maximum(errs, 1e-16), "o-", label=labels[name])
    ax.set(xlabel="rank K", ylabel="relative CP-fit error",
           title=f"CP fit of exact tensors ({settings['n_theta']}, {settings['n_omega']}, A)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
