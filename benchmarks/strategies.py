"""Contraction strategies and how their cost grows with S, T, A and density.

Strategies (all compute one exact backward sweep, i.e. the optimal policy):

(a) ``full/<optimizer>`` -- the paper's approach: for every site ``t`` the whole network
    ``<-r| G M |pi>`` except ``pi_t`` is contracted with quimb to the local tensor
    ``E_t[s, a]`` (``E[G] = sum pi_t(a|s) E_t[s, a]``), the site is set to the per-state argmax
    and the next site is contracted from scratch. Contraction paths from opt_einsum
    (``greedy``, ``auto``) or a cotengra ``HyperOptimizer``; flops and the largest intermediate
    come from the contraction tree. Tiny problems only.
(b) ``cached/dense`` -- cached environments, dense ``(S*A, S)`` sites: ``tnmdp.solve`` on a
    dense MDP, numpy kernels (``numpy``) or the compiled fast path (``compiled``), both
    recording the objective history during the sweep, and plain ``tnmdp.solve`` (``solve``:
    history on demand, so one backward pass).
(c) ``cached/sparse`` -- the same with CSR sites.

Scaling sweeps time (b) and (c) against the plain peers (numpy / CSR backward induction) and
fit log-log slopes. Writes ``results/strategies.json`` and one PNG per sweep.
"""

from __future__ import annotations

import time
import warnings

import numpy as np
import scipy.sparse as sp

from . import RESULTS, compare, fit_slope, write_json
from .peers import csr_backward_induction, csr_inputs, dense_inputs, numpy_backward_induction

__all__ = ["lattice_walk", "random_sparse_mdp", "random_dense_mdp", "full_contraction_sweep",
           "cached_solvers", "run"]


# ---------------------------------------------------------------------------------- models
def lattice_walk(n_states, horizon):
    """A reflecting walk on ``0..S-1`` with any horizon (``S`` and ``T`` independent).

    Action 0 steps down, 1 up; start in the middle; reward -1 on arriving below the middle;
    terminal reward 1 in the middle, -10 elsewhere (the paper's excursion penalties).
    """
    import tnmdp

    x = np.arange(n_states)
    down, up = np.maximum(x - 1, 0), np.minimum(x + 1, n_states - 1)
    rows = np.concatenate([2 * x, 2 * x + 1])
    P = sp.csr_matrix((np.ones(2 * n_states), (rows, np.concatenate([down, up]))),
                      shape=(2 * n_states, n_states))
    mid = n_states // 2
    step = np.where(x < mid, -1.0, 0.0)
    terminal = np.where(x == mid, 1.0, -10.0)
    return tnmdp.FiniteMDP(P, step[None, None, :], horizon, mid, terminal_rewards=terminal)


def random_sparse_mdp(n_states, n_actions, horizon, nnz_per_row=4, *, rng=0):
    """Random CSR MDP: each ``(s, a)`` row has ``nnz_per_row`` random successors."""
    import tnmdp

    rng = np.random.default_rng(rng)
    n_rows = n_states * n_actions
    cols = rng.integers(0, n_states, size=(n_rows, nnz_per_row))
    vals = rng.random((n_rows, nnz_per_row)) + 0.1
    vals /= vals.sum(axis=1, keepdims=True)
    P = sp.csr_matrix((vals.ravel(), (np.repeat(np.arange(n_rows), nnz_per_row), cols.ravel())),
                      shape=(n_rows, n_states))
    return tnmdp.FiniteMDP(P, rng.random((n_states, n_actions)), horizon, 0)


def random_dense_mdp(n_states, n_actions, horizon, density=1.0, *, rng=0, sparse=False):
    """Random MDP with a fraction ``density`` of non-zero transitions (at least one per row),
    stored dense or CSR."""
    import tnmdp

    rng = np.random.default_rng(rng)
    P = rng.random((n_states, n_actions, n_states))
    if density < 1.0:
        P *= rng.random(P.shape) < density
        P[..., 0] += P.sum(axis=2) == 0
    P /= P.sum(axis=2, keepdims=True)
    R = rng.random((n_states, n_actions))
    transitions = sp.csr_matrix(P.reshape(n_states * n_actions, n_states)) if sparse else P
    return tnmdp.FiniteMDP(transitions, R, horizon, 0)


# ---------------------------------------------------------------------------------- strategies
def _optimizer(name):
    if name != "hyper":
        return name
    import cotengra as ctg

    return ctg.HyperOptimizer(max_repeats=16, methods=["greedy"], parallel=False, progbar=False)


def full_contraction_sweep(mdp, optimize="greedy"):
    """Strategy (a): a backward sweep re-contracting the whole network for every site.

    Returns
    -------
    dict
        ``seconds`` (total), ``path_seconds`` (path finding), ``flops`` and
        ``largest_intermediate`` (max over sites, from the contraction trees),
        ``expected_return`` of the final policy (contracted once more).
    """
    from tnmdp.network import contract, expected_return_network
    from tnmdp.policy import Policy

    T, S, A = mdp.horizon, mdp.n_states, mdp.n_actions
    tn = expected_return_network(mdp, Policy.uniform(T, S, A))
    flops, width, path_seconds = 0.0, 0.0, 0.0
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # cotengra without kahypar/optuna says so
        for t in range(T - 1, -1, -1):
            env = tn.select([f"PI{t}"], which="!any")
            out = (f"s{t}", f"a{t}")
            p0 = time.perf_counter()
            tree = env.contraction_tree(optimize=_optimizer(optimize), output_inds=out)
            path_seconds += time.perf_counter() - p0
            flops += float(tree.contraction_cost())
            width = max(width, float(tree.contraction_width()))
            local = env.contract(output_inds=out, optimize=tree).transpose(*out).data
            site = np.zeros((S, A))
            site[np.arange(S), np.argmax(local, axis=1)] = 1.0
            tn[f"PI{t}"].modify(data=site)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "path_seconds": path_seconds, "flops": flops,
            "largest_intermediate": 2.0 ** width, "expected_return": contract(tn)}


def cached_solvers(mdp):
    """Strategies (b)/(c) on ``mdp`` as it is stored.

    ``numpy``: the numpy kernels with the objective history recorded during the sweep (a
    callback forces it); ``compiled``: the compiled kernels, history recorded; ``solve``: what
    ``tnmdp.solve(mdp)`` does by default -- compiled where it pays off, history on demand.
    """
    import tnmdp

    return {"numpy": lambda: tnmdp.solve(mdp, callback=_never),
            "compiled": lambda: _compiled(mdp),
            "solve": lambda: tnmdp.solve(mdp)}


def _never(state):
    return False  # a callback keeps solve on the numpy kernels


def _compiled(mdp):
    from tnmdp.backends import numba as fast

    sites = [np.full((mdp.n_states, mdp.n_actions), 1.0 / mdp.n_actions)] * mdp.horizon
    return fast.backward_argmax_sweep(mdp, sites)


def _model_flops(mdp):
    """Flops of one cached-environment sweep: backup + left environment, ``2 nnz`` each."""
    P = mdp.transition_matrix(0)
    nnz = P.nnz if sp.issparse(P) else P.size
    return 4.0 * nnz * mdp.horizon


# ---------------------------------------------------------------------------------- sweeps
def _series(label, values, build, peer, repeats):
    """Time the cached strategies and a peer over ``values``; return rows and slopes."""
    rows = []
    for value in values:
        mdp = build(value)
        funcs = cached_solvers(mdp)
        if peer == "csr_dp":
            args = csr_inputs(mdp)
            funcs["csr_dp"] = lambda args=args: csr_backward_induction(*args)
        elif peer == "numpy_dp":
            args = dense_inputs(mdp)
            funcs["numpy_dp"] = lambda args=args: numpy_backward_induction(*args)
        times = compare(funcs, repeats)
        P = mdp.transition_matrix(0)
        rows.append({label: value, "n_states": mdp.n_states, "n_actions": mdp.n_actions,
                     "horizon": mdp.horizon, "nnz": int(P.nnz if sp.issparse(P) else P.size),
                     "model_flops": _model_flops(mdp),
                     "cpu": {k: v["cpu"] for k, v in times.items()},
                     "wall": {k: v["wall"] for k, v in times.items()}})
    methods = list(rows[0]["cpu"])
    slopes = {m: fit_slope([r[label] for r in rows], [r["cpu"][m] for r in rows])
              for m in methods}
    return {"parameter": label, "rows": rows, "slopes_cpu": slopes}


def _sweeps(quick):
    """name -> (parameter, values, builder, peer)."""
    if quick:
        return {"walk_S": ("n_states", [201, 401, 801], lambda S: lattice_walk(S, 100), "csr_dp"),
                "walk_T": ("horizon", [100, 200, 400], lambda T: lattice_walk(401, T), "csr_dp")}
    return {
        "walk_S": ("n_states", [1001, 2001, 4001, 8001, 16001],
                   lambda S: lattice_walk(S, 500), "csr_dp"),
        "walk_T": ("horizon", [250, 500, 1000, 2000, 4000],
                   lambda T: lattice_walk(4001, T), "csr_dp"),
        "sparse_S": ("n_states", [1000, 2000, 4000, 8000, 16000],
                     lambda S: random_sparse_mdp(S, 4, 100), "csr_dp"),
        "sparse_A": ("n_actions", [2, 4, 8, 16, 32],
                     lambda A: random_sparse_mdp(2000, A, 100), "csr_dp"),
        "dense_S": ("n_states", [100, 200, 400, 800, 1600],
                    lambda S: random_dense_mdp(S, 4, 50), "numpy_dp"),
        "density_dense": ("density", [0.003, 0.01, 0.03, 0.1, 0.3, 1.0],
                          lambda d: random_dense_mdp(1000, 4, 50, d), "numpy_dp"),
        "density_sparse": ("density", [0.003, 0.01, 0.03, 0.1, 0.3, 1.0],
                           lambda d: random_dense_mdp(1000, 4, 50, d, sparse=True), "csr_dp"),
    }


def _full_contraction_cases(quick):
    """Strategy (a) against (b)/(c) on tiny walks and dense random MDPs."""
    import tnmdp

    optimizers = ["greedy", "auto"] + ([] if quick else ["hyper"])
    horizons = [4, 6] if quick else [4, 6, 8, 10, 12]
    rows = []
    for T in horizons:
        mdp = tnmdp.models.excursion(T)
        ref = tnmdp.reference.backward_induction(mdp).expected_return
        row = {"model": "excursion", "horizon": T, "n_states": mdp.n_states, "optimal": ref}
        for opt in optimizers:
            row[f"full/{opt}"] = full_contraction_sweep(mdp, opt)
        times = compare({"cached/sparse/numpy": cached_solvers(mdp)["numpy"]}, 3)
        row["cached/sparse/numpy"] = {"seconds": times["cached/sparse/numpy"]["wall"],
                                      "flops": _model_flops(mdp)}
        rows.append(row)
    return {"optimizers": optimizers, "rows": rows,
            "slopes_seconds": {k: fit_slope([r["horizon"] for r in rows],
                                            [r[k]["seconds"] for r in rows])
                               for k in rows[0] if "/" in k},
            "slopes_flops": {k: fit_slope([r["horizon"] for r in rows],
                                          [r[k]["flops"] for r in rows])
                             for k in rows[0] if "/" in k}}


def run(*, quick=False, repeats=None):
    """Run every sweep; return the result dict (also written to ``results/``)."""
    repeats = repeats or (1 if quick else 3)
    result = {"quick": quick, "sweeps": {}}
    for name, (label, values, build, peer) in _sweeps(quick).items():
        result["sweeps"][name] = _series(label, values, build, peer, repeats)
    result["full_contraction"] = _full_contraction_cases(quick)  # last: it imports quimb
    suffix = "_quick" if quick else ""
    write_json("strategies" + suffix, result)
    _plot(result, suffix)
    return result


def _plot(result, suffix):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker  # noqa: F401  (used for the minor tick formatter)

    sweeps = result["sweeps"]
    n = len(sweeps) + 1
    cols = 3
    fig, axes = plt.subplots((n + cols - 1) // cols, cols, figsize=(4.2 * cols, 3.4 * ((n + cols - 1) // cols)),
                             squeeze=False)
    axes = axes.ravel()
    for ax, (name, series) in zip(axes, sweeps.items()):
        label = series["parameter"]
        x = [r[label] for r in series["rows"]]
        for method, slope in series["slopes_cpu"].items():
            ax.loglog(x, [r["cpu"][method] for r in series["rows"]], "o-",
                      label=f"{method} (slope {slope:.2f})")
        ax.set_xlabel(label)
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())  # no overlapping labels
        ax.set_ylabel("CPU seconds")
        ax.set_title(name)
        ax.legend(fontsize=7)
    full = result["full_contraction"]
    ax = axes[len(sweeps)]
    x = [r["horizon"] for r in full["rows"]]
    for key, slope in full["slopes_seconds"].items():
        ax.semilogy(x, [r[key]["seconds"] for r in full["rows"]], "o-",
                    label=f"{key} (log-log slope {slope:.1f})")
    ax.set_xlabel("T (excursion, S = 2T + 1)")
    ax.set_ylabel("seconds per sweep")
    ax.set_title("full contraction per site vs cached")
    ax.legend(fontsize=7)
    for ax in axes[n:]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(RESULTS / f"strategies{suffix}.png", dpi=110)
    plt.close(fig)


def summary(result):
    """Text lines: slopes and ratios."""
    lines = []
    for name, series in result["sweeps"].items():
        slopes = ", ".join(f"{k} {v:.2f}" for k, v in series["slopes_cpu"].items())
        last = series["rows"][-1]
        peer = [k for k in last["cpu"] if k.endswith("_dp")][0]
        ratios = ", ".join(f"{k}/{peer} {last['cpu'][k] / last['cpu'][peer]:.3f}"
                           for k in ("compiled", "solve"))
        lines.append(f"{name:15s} slopes: {slopes};  at the largest size: {ratios}")
    full = result["full_contraction"]
    for row in full["rows"]:
        parts = ", ".join(f"{k} {row[k]['seconds']:.3g}s/{row[k]['flops']:.3g}fl"
                          for k in row if "/" in k)
        lines.append(f"excursion T={row['horizon']}: {parts}")
    lines.append("full-contraction slopes in T (seconds): " + ", ".join(
        f"{k} {v:.2f}" for k, v in full["slopes_seconds"].items()))
    return lines
