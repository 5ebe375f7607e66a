"""Exact evaluation of a fixed policy: expected return, moments, marginals; and sampling.

Each is a contraction of the network of :mod:`tnmdp.network` carried out site by site on
arrays: ``evaluate`` and ``moments`` sweep right to left (``O(order^2 sum_t nnz(P_t))``),
``marginals`` left to right (``O(sum_t nnz(P_t))``).
"""

from __future__ import annotations

import numbers
from math import comb
from typing import NamedTuple

import numpy as np
import scipy.sparse as sp

from .kernels import backup, matvec, propagate, weighted_sum
from .local import site_value
from .model import as_rng
from .policy import as_policy

__all__ = ["evaluate", "policy_values", "start_values", "moments", "marginals", "sample",
           "Trajectories"]


def _check(mdp, policy):
    from .solve import check_mdp

    check_mdp(mdp)
    return as_policy(policy, mdp)


def start_values(mdp, policy):
    """``E[G | s_0 = s]`` under ``policy``, shape ``(S,)`` (``policy`` already validated)."""
    v = mdp.terminal_rewards
    for t in range(mdp.horizon - 1, -1, -1):  # int sites are read as actions, not expanded
        v = site_value(backup(mdp, t, v), policy.site(t), 0.0, 0.0)
    return v


def policy_values(mdp, policy):
    """Values-to-go of ``policy`` at every step, shape ``(T + 1, S)``.

    ``V_t(s) = E[sum_{t' >= t} gamma^(t'-t) r_t' + gamma^(T-t) terminal(s_T) | s_t = s]``: row
    ``t`` is pymdptoolbox's ``FiniteHorizon.V[:, t]`` and QuantEcon's ``backward_induction``
    ``vs[t]``; row ``T`` is the terminal reward, row 0 :attr:`Solution.values`.

    Parameters
    ----------
    mdp : FiniteMDP
    policy : Policy or array_like
        Any form :func:`tnmdp.policy.as_policy` accepts.

    Returns
    -------
    ndarray, shape (T + 1, S)

    Notes
    -----
    One backward pass, ``O(sum_t nnz(P_t))`` time and ``(T + 1) S`` floats of output.
    """
    policy = _check(mdp, policy)
    out = np.empty((mdp.horizon + 1, mdp.n_states))
    out[-1] = mdp.terminal_rewards
    for t in range(mdp.horizon - 1, -1, -1):
        out[t] = site_value(backup(mdp, t, out[t + 1]), policy.site(t), 0.0, 0.0)
    return out


def evaluate(mdp, policy, *, per_state=False):
    """Expected return ``E[G] = <-r| G M |pi>`` of a policy.

    Parameters
    ----------
    mdp : FiniteMDP
    policy : Policy or array_like, shape (T, S, A)
        For a continuing MDP (``horizon=None``): a stationary policy, ``(S, A)`` or ``(S,)``
        int actions; the result is then ``initial @ V^pi`` (discounted, an exact linear solve)
        or the gain (``discount == 1``), see :mod:`tnmdp.continuing`.

    per_state : bool
        Return ``E[G | s_0 = s]`` for every state (shape ``(S,)``) instead of the expectation
        over ``mdp.initial``.

    Returns
    -------
    float, or ndarray of shape (S,) with ``per_state=True``
        ``-inf`` when a forbidden (``-inf``) transition has positive probability.
    """
    if getattr(mdp, "continuing", False):
        if per_state:
            raise ValueError("per_state=True needs a finite horizon (mdp is continuing)")
        from .continuing import evaluate_continuing

        return evaluate_continuing(mdp, policy)
    policy = _check(mdp, policy)
    values = start_values(mdp, policy)
    return values if per_state else weighted_sum(mdp.initial, values)


def moments(mdp, policy, order=2):
    """Raw moments ``[E[G], E[G^2], ..., E[G^order]]`` of the return.

    Parameters
    ----------
    mdp : FiniteMDP
        Rewards may be stochastic (:meth:`FiniteMDP.from_joint`); ``-inf`` rewards are rejected.
    policy : Policy or array_like, shape (T, S, A)
    order : int
        Highest moment, ``>= 1``.

    Returns
    -------
    ndarray, shape (order,)

    Notes
    -----
    The contraction of the moment MPO of bond ``order + 1``: right environments
    ``m_t[j](s) = E[G_{t:}^j | s_t = s]`` obey
    ``m_t[j] = sum_a pi sum_i binom(j, i) gamma^(j-i) W_i m_{t+1}[j-i]`` with
    ``W_i = P ⊙ E[r^i | s, a, s']``. Cost ``O(order^2 sum_t nnz(P_t))``.
    """
    policy = _check(mdp, policy)
    if isinstance(order, bool) or not isinstance(order, numbers.Integral) or order < 1:
        raise ValueError(f"order must be an int >= 1, got {order!r}")
    if mdp.has_neg_inf:
        raise ValueError("moments are undefined for rewards with -inf entries")
    S, A, gamma = mdp.n_states, mdp.n_actions, mdp.discount
    m = np.stack([mdp.terminal_rewards ** j for j in range(order + 1)])  # (order+1, S)
    built = {}  # W_i per distinct site: built once for stationary models
    for t in range(mdp.horizon - 1, -1, -1):
        probs = policy[t]
        key = mdp._site_key(t)
        if key not in built:
            built.clear()
            built[key] = [mdp.weighted_transitions(t, lambda r, i=i: r ** i)
                          for i in range(order + 1)]
        weighted = built[key]
        new = np.empty_like(m)
        for j in range(order + 1):
            acc = np.zeros(S * A)
            for i in range(j + 1):
                acc += comb(j, i) * gamma ** (j - i) * matvec(weighted[i], m[j - i])
            new[j] = (probs * acc.reshape(S, A)).sum(axis=1)
        m = new
    return m[1:] @ mdp.initial


def marginals(mdp, policy):
    """State marginals ``Pr(s_t = s)`` for ``t = 0..T``, shape ``(T+1, S)``."""
    policy = _check(mdp, policy)
    out = np.empty((mdp.horizon + 1, mdp.n_states))
    out[0] = mdp.initial
    for t in range(mdp.horizon):
        out[t + 1] = propagate(mdp, t, out[t][:, None] * policy[t])
    return out


class Trajectories(NamedTuple):
    """Sampled episodes.

    Attributes
    ----------
    states : ndarray of int, shape (n, T+1)
    actions : ndarray of int, shape (n, T)
    rewards : ndarray, shape (n, T)
    returns : ndarray, shape (n,)
        ``sum_t gamma^t r_t + gamma^T terminal(s_T)``.
    """

    states: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    returns: np.ndarray


_SAMPLERS = {}


def _row_sampler(P):
    """Per-row inverse-CDF tables of an ``(S*A, S)`` operator (cached per operator)."""
    entry = _SAMPLERS.get(id(P))
    if entry is not None and entry[0] is P:
        return entry[1]
    csr = P if sp.issparse(P) else sp.csr_matrix(P)
    rows = np.repeat(np.arange(csr.shape[0]), np.diff(csr.indptr))
    within = np.cumsum(csr.data) - np.repeat(
        np.concatenate([[0.0], np.cumsum(csr.data)])[csr.indptr[:-1]], np.diff(csr.indptr))
    # keys increase across rows: row r covers (r, r + rowsum]; searchsorted finds the entry
    table = (rows + within, csr.indices, csr.indptr)
    if len(_SAMPLERS) > 64:
        _SAMPLERS.clear()
    _SAMPLERS[id(P)] = (P, table)
    return table


def _draw_rows(P, rows, u):
    keys, cols, indptr = _row_sampler(P)
    hi = indptr[rows + 1] - 1
    k = np.minimum(np.searchsorted(keys, rows + u * (keys[hi] - rows), side="right"), hi)
    return cols[k]


def sample(mdp, policy, n, *, rng=None):
    """Sample ``n`` episodes under ``policy``, vectorised over episodes.

    Returns
    -------
    Trajectories

    Notes
    -----
    Cost ``O(n T log nnz)``; each step draws actions and next states by inverse CDF.
    """
    policy = _check(mdp, policy)
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
        raise ValueError(f"n must be an int >= 1, got {n!r}")
    rng = as_rng(rng)
    T, A = mdp.horizon, mdp.n_actions
    states = np.empty((n, T + 1), dtype=np.int64)
    actions = np.empty((n, T), dtype=np.int64)
    rewards = np.empty((n, T))
    states[:, 0] = _draw_rows(sp.csr_matrix(mdp.initial[None, :]), np.zeros(n, dtype=np.int64),
                              rng.random(n))
    for t in range(T):
        s = states[:, t]
        cdf = np.cumsum(policy[t][s], axis=1)
        a = np.minimum((cdf < rng.random(n)[:, None] * cdf[:, -1:]).sum(axis=1), A - 1)
        rows = s * A + a
        s2 = _draw_rows(mdp.transition_matrix(t), rows, rng.random(n))
        law = mdp.reward_power_law(t)
        if law is None:
            r = mdp.reward_slice(t)
            idx = tuple(x if r.shape[k] > 1 else 0 for k, x in enumerate((s, a, s2)))
            rewards[:, t] = np.broadcast_to(r[idx], (n,))
        else:
            dist, values = law
            cdf_r = np.cumsum(dist[s, a, s2], axis=1)
            k = np.minimum((cdf_r < rng.random(n)[:, None]).sum(axis=1), len(values) - 1)
            rewards[:, t] = values[k]
        actions[:, t], states[:, t + 1] = a, s2
    discounts = mdp.discount ** np.arange(T)
    with np.errstate(invalid="ignore"):
        returns = rewards @ discounts + mdp.discount ** T * mdp.terminal_rewards[states[:, -1]]
    return Trajectories(states, actions, rewards, returns)
