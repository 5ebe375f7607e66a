"""Plots of conditioned random walks: sampled trajectories, sweep snapshots, path densities.

matplotlib is imported lazily, so ``import tnmdp`` never pulls it in, and the user's
backend is left alone (tnmdp never calls ``matplotlib.use``; figures are saved to files).
The figure functions return the matplotlib ``Figure`` and save it when given a ``filename``; the
panel functions draw on an ``Axes`` you pass.

* :func:`trajectory_panel` -- sampled paths (admissible solid blue, failures dashed red), the
  greedy path (thick black), the sweep position and ``E[G]``: one panel of the paper's Fig. 2.
* :func:`sweep_figure` -- the paper's Fig. 2 (Gillman, Rose & Garrahan 2020, Sect. 5.2):
  forward and backward sweeps from a seeded random policy, half done and complete (the sweeps
  are run by ``examples/excursions.py``).
* :func:`density_panel`, :func:`density_figure` -- path densities ``Pr(x_t = x)`` of conditioned
  walks against the exact (closed-form) density.
* :func:`plot_walk_demo` -- the figure of ``tnmdp demo ... --plot FILE``.
* :func:`draw_network` -- a tensor network drawn to a PNG (quimb's ``draw``).
"""

from __future__ import annotations

import numpy as np

from .evaluate import marginals, sample
from .models.walks import admissible, conditioned_density, walk_positions
from .solve import solve

__all__ = ["trajectory_panel", "sweep_figure", "density_panel",
           "density_figure", "plot_walk_demo", "draw_network", "chain_layout",
           "WALK_CONDITIONS"]

#: ``floor``/``end`` of the named walks.
WALK_CONDITIONS = {"excursion": dict(floor=0, end=0), "bridge": dict(end=0),
                   "meander": dict(floor=0)}


def _pyplot():
    import matplotlib.pyplot as plt

    return plt


def _save(fig, filename):
    if filename is not None:
        fig.savefig(filename, dpi=130, bbox_inches="tight")


def trajectory_panel(ax, states, horizon, *, ok=None, greedy=None, site=None, direction=None,
                     expected_return=None, title=None, floor=0):
    """Draw sampled walks on ``ax``.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
    states : array_like of int, shape (n, T+1)
        Sampled state indices (``x + T``).
    horizon : int
    ok : array_like of bool, shape (n,), optional
        Admissible paths (solid blue); the others are dashed red. Default: all admissible.
    greedy : array_like of int, shape (T+1,), optional
        The greedy trajectory (thick black).
    site : float, optional
        Time of the sweep front: a dashed vertical line, with an arrow in ``direction``
        (``"forward"`` or ``"backward"``).
    expected_return : float, optional
        Written in the panel as ``E[G]``.
    title : str, optional
    floor : float or None
        A thin horizontal line at this height.
    """
    x = np.asarray(states) - horizon
    t = np.arange(horizon + 1)
    ok = np.ones(x.shape[0], dtype=bool) if ok is None else np.asarray(ok, dtype=bool)
    for path, good in zip(x, ok):  # drawn over the greedy path, which identical samples hide
        if good:
            ax.plot(t, path, color="tab:blue", lw=0.8, alpha=0.5, ls="-", zorder=3)
        else:
            ax.plot(t, path, color="tab:red", lw=0.8, alpha=0.6, ls="--", zorder=3)
    if greedy is not None:
        ax.plot(t, np.asarray(greedy) - horizon, color="black", lw=3.0, label="greedy", zorder=2)
    if floor is not None:
        ax.axhline(floor, color="0.5", lw=0.6)
    if site is not None:
        ax.axvline(site, color="0.2", ls="--", lw=1.2)
        if direction is not None:
            top = ax.get_ylim()[1]
            dx = horizon / 6 if direction == "forward" else -horizon / 6
            ax.annotate("", xy=(site + dx, top * 0.92), xytext=(site, top * 0.92),
                        arrowprops=dict(arrowstyle="->", color="0.2", lw=1.5))
    if expected_return is not None:
        shown = float(np.round(expected_return, 10)) + 0.0  # -1e-14 reads as 0
        ax.text(0.98, 0.04, f"E[G] = {shown:.4g}", transform=ax.transAxes,
                ha="right", va="bottom", fontsize=10,
                bbox=dict(boxstyle="round", facecolor="white", alpha=0.85))
    if title:
        ax.set_title(title, fontsize=10)
    ax.set_xlim(0, horizon)
    ax.set_xlabel("t")
    ax.set_ylabel("x")


def sweep_figure(snapshots, *, rng=0, n_samples=100, label=None, filename=None):
    """The paper's Fig. 2: forward and backward sweeps of the excursion, half done and complete.

    Draws given solutions; the sweeps themselves are an experiment
    (``examples/excursions.py``, ``sweep_snapshots``).

    Parameters
    ----------
    snapshots : dict
        ``{"forward": (half, full), "backward": (half, full)}``: :class:`tnmdp.Solution` of the
        excursion after ``T // 2`` site updates and after the whole sweep.
    rng : int
        Seed of the sampled trajectories.
    n_samples : int
        Trajectories per panel.
    label : str, optional
        Appended to the figure title (e.g. the seed and the local solver).
    filename : str or path-like, optional

    Returns
    -------
    fig : matplotlib.figure.Figure
    summary : dict
        Per panel (``"forward/half"``, ...): ``expected_return``, ``admissible_fraction`` of the
        samples, ``greedy_admissible``, ``deterministic``.
    """
    from .models.walks import excursion

    plt = _pyplot()
    horizon = snapshots["backward"][1].policy.horizon
    mdp = excursion(horizon)
    fig, axes = plt.subplots(2, 2, figsize=(11, 7), sharex=True, sharey=True)
    summary = {}
    for row, direction in enumerate(("forward", "backward")):
        for col, (stage, sol) in enumerate(zip(("half", "full"), snapshots[direction])):
            paths = sample(mdp, sol.policy, n_samples, rng=np.random.default_rng(rng + 1))
            greedy = sample(mdp, sol.policy.greedy(), 1, rng=0).states[0]
            ok = admissible(paths.states, horizon, floor=0, end=0)
            n_done = horizon // 2 if stage == "half" else horizon
            site = n_done if direction == "forward" else horizon - n_done
            trajectory_panel(axes[row, col], paths.states, horizon, ok=ok, greedy=greedy,
                             site=site, direction=direction,
                             expected_return=sol.expected_return,
                             title=f"{direction} sweep, {n_done}/{horizon} sites optimised")
            summary[f"{direction}/{stage}"] = dict(
                expected_return=float(sol.expected_return),
                admissible_fraction=float(ok.mean()),
                greedy_admissible=bool(admissible(greedy[None], horizon, floor=0, end=0)[0]),
                deterministic=bool(sol.policy.deterministic))
    fig.suptitle(f"Excursions, T = {horizon}: {n_samples} samples per panel "
                 f"(blue solid: excursion, red dashed: not), greedy path in black"
                 + (f"; {label}" if label else ""), fontsize=10)
    fig.tight_layout()
    _save(fig, filename)
    return fig, summary


def density_panel(ax, density, horizon, *, exact=None, times=None, title=None):
    """Path density ``Pr(x_t = x)`` as an image, with profiles at a few times.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
    density : ndarray, shape (T+1, S)
        E.g. ``tnmdp.marginals(mdp, policy)``.
    horizon : int
    exact : ndarray, shape (T+1, S), optional
        The exact density: profiles drawn as lines, ``density`` as dots.
    times : sequence of int, optional
        Times of the profiles (default ``T/4, T/2, 3T/4``).
    title : str, optional
    """
    x = walk_positions(horizon)
    visible = density > 1e-6 * density.max()  # the bulk, for the axis limits
    used = np.flatnonzero(visible.any(axis=0))
    lo, hi = x[used.min()], x[used.max()]
    ax.imshow(density.T, origin="lower", aspect="auto", cmap="Greys",
              extent=(-0.5, horizon + 0.5, x[0] - 0.5, x[-1] + 0.5))
    ax.set_ylim(lo - 0.5, hi + 0.5)
    times = [horizon // 4, horizon // 2, 3 * horizon // 4] if times is None else times
    colors = ["tab:blue", "tab:orange", "tab:green", "tab:purple"]
    for k, t in enumerate(times):
        scale = 0.8 * horizon / len(times) / max(density[t].max(), 1e-300)
        color = colors[k % len(colors)]
        support = ((x + t) % 2 == 0) & visible[t]  # the walk's parity: x_t = t mod 2
        ax.plot(t + scale * density[t][support], x[support], "o" if exact is not None else "o-",
                ms=2.5, lw=0.8, color=color,
                label=f"t = {t}: tnmdp")
        if exact is not None:
            ax.plot(t + scale * exact[t][support], x[support], "-", lw=1.0, color=color,
                    label=f"t = {t}: exact")
        ax.axvline(t, color=color, lw=0.5, ls=":")
    ax.set_xlabel("t")
    ax.set_ylabel("x")
    if title:
        ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, loc="upper left")


def density_figure(horizon=100, kinds=("bridge", "meander"), *, filename=None):
    """Densities of Doob-conditioned walks (soft solve of the hard walk, ``tau = 1``) against
    the exact closed-form densities.

    Returns
    -------
    fig : matplotlib.figure.Figure
    errors : dict
        ``kind -> max |tnmdp - exact|`` over all times and states.
    """
    from .models.walks import conditioned_walk

    plt = _pyplot()
    fig, axes = plt.subplots(1, len(kinds), figsize=(6 * len(kinds), 4.5), squeeze=False)
    errors = {}
    for ax, kind in zip(axes[0], kinds):
        cond = WALK_CONDITIONS[kind]
        mdp = conditioned_walk(horizon, hard=True, **cond)
        density = marginals(mdp, solve(mdp, temperature=1.0).policy)
        exact = conditioned_density(horizon, **cond)
        errors[kind] = float(np.abs(density - exact).max())
        density_panel(ax, density, horizon, exact=exact,
                      title=f"{kind}, T = {horizon}: Pr(x_t = x), max error "
                            f"{errors[kind]:.1e}")
    fig.tight_layout()
    _save(fig, filename)
    return fig, errors


def plot_walk_demo(kind, horizon, *, soft=False, filename, n_samples=100, rng=0):
    """The figure of ``tnmdp demo KIND --plot FILE``.

    Left: samples and the greedy path of the solved walk. Right: with ``soft``, the path density
    against the exact conditioned density; otherwise samples of the Doob-conditioned walk (the
    same condition as hard constraints, solved at ``temperature = 1``), which are uniform over the
    admissible paths -- unlike the deterministic optimum of the penalty objective.

    Parameters
    ----------
    kind : {"excursion", "bridge", "meander"}
    horizon : int
    soft : bool
        Hard constraints at ``temperature = 1`` (the Doob-conditioned walk) instead of the
        paper's penalties at ``temperature = 0``.
    filename : str or path-like
    n_samples : int
    rng : int

    Returns
    -------
    matplotlib.figure.Figure
    """
    from . import models

    if kind not in WALK_CONDITIONS:
        raise ValueError(f"kind must be one of {sorted(WALK_CONDITIONS)}, got {kind!r}")
    plt = _pyplot()
    cond = WALK_CONDITIONS[kind]
    mdp = getattr(models, kind)(horizon, hard=soft)
    sol = solve(mdp, temperature=1.0 if soft else 0.0)
    paths = sample(mdp, sol.policy, n_samples, rng=rng)
    ok = admissible(paths.states, horizon, **cond)
    greedy = sample(mdp, sol.policy.greedy(), 1, rng=0).states[0]
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    label = ("soft solve, tau = 1 (Doob-conditioned walk)" if soft
             else "penalty rewards, exact optimum (ties to the lowest action)")
    trajectory_panel(left, paths.states, horizon, ok=ok, greedy=greedy,
                     expected_return=sol.expected_return,
                     floor=cond.get("floor"), title=f"{kind}, T = {horizon}: {label}")
    if soft:
        density_panel(right, marginals(mdp, sol.policy), horizon,
                      exact=conditioned_density(horizon, **cond),
                      title="path density Pr(x_t = x) vs exact")
    else:  # the same condition as hard constraints at tau = 1: uniform over admissible paths
        doob_mdp = getattr(models, kind)(horizon, hard=True)
        doob = solve(doob_mdp, temperature=1.0)
        doob_paths = sample(doob_mdp, doob.policy, n_samples, rng=rng)
        trajectory_panel(right, doob_paths.states, horizon,
                         ok=admissible(doob_paths.states, horizon, **cond),
                         floor=cond.get("floor"),
                         title="same condition, hard constraints, tau = 1: uniform over paths")
    fig.tight_layout()
    _save(fig, filename)
    plt.close(fig)
    return fig


def chain_layout(tn):
    """Positions ``{tag: (x, y)}`` for drawing: return MPO on top, dynamics in the middle,
    policy below; time left to right."""
    rows = {"G": 2.0, "M": 1.0, "COPY": 0.5, "PI": 0.0}
    fix = {}
    for tag in tn.tags:
        for prefix, y in rows.items():
            if tag.startswith(prefix) and tag[len(prefix):].isdigit():
                fix[tag] = (float(tag[len(prefix):]), y)
    n = max((x for x, _ in fix.values()), default=0.0)
    extra = {"P0": (-1.0, 1.0), "END": (n + 1.0, 1.0), "LEFT": (-1.0, 2.0), "RIGHT": (n + 1.0, 2.0)}
    fix.update({tag: pos for tag, pos in extra.items() if tag in tn.tags})
    return fix


def draw_network(tn, filename, *, title=None, figsize=(10, 5), **kwargs):
    """Draw a network to a PNG with index labels.

    Parameters
    ----------
    tn : quimb.tensor.TensorNetwork
        E.g. from :func:`tnmdp.network.expected_return_network`.
    filename : str or path-like
    title : str, optional
    figsize : tuple of float
    **kwargs
        Passed to ``TensorNetwork.draw`` (default: all indices shown, the chain laid out left to
        right by site, coloured by the tags ``PI``, ``M``, ``G``, ``COPY``).

    Returns
    -------
    filename
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)  # no pyplot: no global figure, no backend switch
    ax = fig.add_subplot(111)
    kwargs.setdefault("show_inds", "all")
    kwargs.setdefault("show_tags", False)
    kwargs.setdefault("fix", chain_layout(tn))
    tags = kwargs.pop("color", ["PI", "M", "G", "COPY"])
    tn.draw(color=tags, ax=ax, **kwargs)
    if title:
        ax.set_title(title)
    fig.savefig(filename, dpi=120, bbox_inches="tight")
    return filename
