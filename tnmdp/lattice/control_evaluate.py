"""Exact evaluation of local policies on a :class:`~tnmdp.lattice.control.LatticeMDP`.

The expected return of a local policy is a 2-D (space x time) tensor network: row ``t`` is the
transfer operator ``T_t`` (an MPO of bond ``d^2``, :mod:`tnmdp.lattice.control_network`), the
bottom boundary the product initial state, and the reward a sum of local terms. It is contracted
row by row with a boundary MPS: ``p_{t+1} = compress(T_t p_t)`` (the distribution of the
configuration at time ``t+1``), and since the reward is local::

    E[G] = sum_t gamma^t sum_i sum_ctx rho_{t,i}(ctx) rbar_{t,i}(ctx),
    rbar_{t,i}(ctx) = sum_a pi[t, i, ctx, a] reward[t, i, ctx, a],

with ``rho_{t,i}`` the three-site (context) marginals of ``p_t``. With ``max_bond >= d^{L/2}``
nothing is truncated and the result is exact; otherwise ``truncation_error`` reports the summed
discarded weight of the compressions (see :func:`tnmdp.lattice.mps.compress`).

Sampling needs no network: the controlled process is simulated forward exactly, all sites and
trajectories vectorised (``O(n T L)``).
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from ..model import _check_int, as_rng
from . import control_network as cn
from . import mps as mps_ops
from .control import as_local_policy

__all__ = ["LatticeEvaluation", "LatticeTrajectories", "evaluate", "marginals", "sample"]


@dataclass(frozen=True)
class LatticeEvaluation:
    """Result of :func:`evaluate`.

    Attributes
    ----------
    value : float
        ``E[G]`` (``-inf`` when a forbidden local action has positive probability).
    truncation_error : float
        Sum over the ``T`` compressions of the discarded weight (relative squared 2-norm of the
        distribution dropped); 0 when nothing was truncated. A diagnostic, not a bound on the
        error of ``value``: check convergence in ``max_bond``.
    max_bond_used : int
        Largest bond dimension of the boundary MPS.
    row_values : ndarray, shape (T,)
        ``sum_i E[r_{t,i}]`` (undiscounted) at every time step.
    """

    value: float
    truncation_error: float
    max_bond_used: int
    row_values: np.ndarray


class LatticeTrajectories(NamedTuple):
    """Sampled trajectories of a controlled lattice.

    states : (n, T+1, L) int8; actions : (n, T, L) int8; rewards : (n, T) (summed over sites);
    returns : (n,) (discounted).
    """

    states: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    returns: np.ndarray


def check_max_bond(max_bond):
    """``max_bond`` must be an int >= 1."""
    return _check_int("max_bond", max_bond, 1)


def check_cutoff(cutoff):
    if isinstance(cutoff, bool) or not isinstance(cutoff, numbers.Real) or not 0 <= cutoff < 1:
        raise ValueError(f"cutoff must be a number in [0, 1), got {cutoff!r}")
    return float(cutoff)


def local_rewards(reward_t, policy_t, extra=None):
    """``rbar[i, ctx] = sum_a pi r`` with ``0 * -inf = 0``; ``-inf`` where a forbidden action has
    positive probability. ``extra`` (same shape as ``rbar``) is added (e.g. a KL penalty)."""
    terms = np.where(policy_t > 0, policy_t * np.where(policy_t > 0, reward_t, 0.0), 0.0)
    out = terms.sum(axis=-1)
    out[((policy_t > 0) & np.isneginf(reward_t)).any(axis=-1)] = -np.inf
    return out if extra is None else out + extra


def row_value(rho, rbar):
    """``sum_i sum_ctx rho rbar`` with contexts of zero (or negative round-off) weight skipped."""
    live = rho > 0
    if np.isneginf(rbar[live]).any():
        return -np.inf
    return float(np.sum(np.where(live, rho * np.where(live, rbar, 0.0), 0.0)))


def forward_pass(mdp, policy, max_bond, cutoff):
    """``[p_0, ..., p_T]`` (MPS), the summed discarded weight and the largest bond used."""
    p = mps_ops.product_mps(mdp.initial)
    states, discarded, bond = [p], 0.0, 1
    for t in range(mdp.horizon):
        W = cn.transfer_mpo(cn.transfer_tensors(mdp.kernel[t], policy[t]))
        p, dw = cn.applied(W, p, max_bond, cutoff)
        states.append(p)
        discarded += dw
        bond = max(bond, mps_ops.max_bond_of(p))
    return states, discarded, bond


def evaluate(mdp, policy, *, max_bond=64, cutoff=1e-14):
    """Expected return of a local policy by boundary-MPS contraction of the space-time network.

    Parameters
    ----------
    mdp : LatticeMDP
    policy : array_like
        ``(d, d, d, k)``, ``(L, d, d, d, k)`` or ``(T, L, d, d, d, k)``; see
        :func:`~tnmdp.lattice.control.as_local_policy`.
    max_bond : int
        Largest bond dimension of the boundary MPS ``p_t``.
    cutoff : float
        Singular values below ``cutoff`` times the largest are dropped at each bond (see
        :func:`tnmdp.lattice.mps.compress`), besides the ``max_bond`` limit.

    Returns
    -------
    LatticeEvaluation

    Notes
    -----
    Cost ``O(T L chi^3 d^5)`` time and ``O(L chi^2 d)`` memory per row with ``chi = max_bond``
    (the rows are not stored).
    """
    pi = as_local_policy(policy, mdp)
    max_bond, cutoff = check_max_bond(max_bond), check_cutoff(cutoff)
    p = mps_ops.product_mps(mdp.initial)
    rows, discarded, bond = np.empty(mdp.horizon), 0.0, 1
    for t in range(mdp.horizon):
        rows[t] = row_value(cn.context_marginals(p), local_rewards(mdp.reward[t], pi[t]))
        if t + 1 < mdp.horizon:
            W = cn.transfer_mpo(cn.transfer_tensors(mdp.kernel[t], pi[t]))
            p, dw = cn.applied(W, p, max_bond, cutoff)
            discarded += dw
            bond = max(bond, mps_ops.max_bond_of(p))
    weights = mdp.discount ** np.arange(mdp.horizon)
    value = -np.inf if np.isneginf(rows).any() else float(np.dot(weights, rows))
    rows.flags.writeable = False
    return LatticeEvaluation(value, float(discarded), int(bond), rows)


def marginals(mdp, policy, *, max_bond=64, cutoff=1e-14, contexts=False):
    """Per-site state and action probabilities at every time step.

    Parameters
    ----------
    mdp, policy, max_bond, cutoff :
        As :func:`evaluate`.
    contexts : bool
        Also return the context probabilities.

    Returns
    -------
    states : ndarray, shape (T+1, L, d)
        ``Pr(x_i(t) = x)``.
    actions : ndarray, shape (T, L, k)
        ``Pr(a_i(t) = a)``.
    context_probabilities : ndarray, shape (T+1, L, d, d, d)
        Only with ``contexts=True``: ``Pr(x_{i-1}(t), x_i(t), x_{i+1}(t))`` (missing neighbours
        read as 0).

    Notes
    -----
    Exact up to the truncation of the boundary MPS (as :func:`evaluate`); cost as
    :func:`evaluate`.
    """
    pi = as_local_policy(policy, mdp)
    states, _, _ = forward_pass(mdp, pi, check_max_bond(max_bond), check_cutoff(cutoff))
    T, L, d, k = mdp.horizon, mdp.n_sites, mdp.local_dim, mdp.n_local_actions
    state_marg = np.empty((T + 1, L, d))
    action_marg = np.empty((T, L, k))
    context_marg = np.empty((T + 1, L, d, d, d))
    for t, p in enumerate(states):
        rho = context_marg[t] = cn.context_marginals(p)
        state_marg[t] = rho.sum(axis=(1, 3))
        if t < T:
            action_marg[t] = np.einsum("iyzu,iyzua->ia", rho, pi[t])
    if contexts:
        return state_marg, action_marg, context_marg
    return state_marg, action_marg


def _draw(probs, rng):
    """One categorical draw per row of ``probs`` (..., m) by inverse CDF."""
    u = rng.random(probs.shape[:-1])[..., None]
    cdf = np.cumsum(probs, axis=-1)
    return np.minimum((cdf < u * cdf[..., -1:]).sum(axis=-1), probs.shape[-1] - 1)


def sample(mdp, policy, n, *, rng=None):
    """Simulate ``n`` trajectories of the controlled lattice exactly.

    Parameters
    ----------
    mdp : LatticeMDP
    policy : array_like
        A local policy (see :func:`evaluate`).
    n : int
        Number of trajectories.
    rng : numpy.random.Generator or int or None

    Returns
    -------
    LatticeTrajectories
        ``states (n, T+1, L)``, ``actions (n, T, L)`` (int8), ``rewards (n, T)`` (summed over
        sites), ``returns (n,)`` (discounted).

    Notes
    -----
    Every site draws its action from its context and its next state from the kernel, all sites
    at once (parallel update); cost ``O(n T L (k + d))``.
    """
    pi = as_local_policy(policy, mdp)
    n = _check_int("n", n, 1)
    rng = as_rng(rng)
    T, L, d = mdp.horizon, mdp.n_sites, mdp.local_dim
    if d > 127 or mdp.n_local_actions > 127:
        raise ValueError("sample stores states and actions as int8: local_dim and "
                         "n_local_actions must be <= 127")
    states = np.zeros((n, T + 1, L), dtype=np.int8)
    actions = np.zeros((n, T, L), dtype=np.int8)
    rewards = np.zeros((n, T))
    sites = np.arange(L)
    x = _draw(np.broadcast_to(mdp.initial, (n, L, d)), rng)
    states[:, 0] = x
    for t in range(T):
        padded = np.pad(x, ((0, 0), (1, 1)))
        xl, xc, xr = padded[:, :-2], padded[:, 1:-1], padded[:, 2:]
        a = _draw(pi[t][sites, xl, xc, xr], rng)                    # (n, L)
        rewards[:, t] = mdp.reward[t][sites, xl, xc, xr, a].sum(axis=1)
        x = _draw(mdp.kernel[t][sites, xl, xc, xr, a], rng)
        actions[:, t] = a
        states[:, t + 1] = x
    returns = rewards @ (mdp.discount ** np.arange(T))
    return LatticeTrajectories(states, actions, rewards, returns)
