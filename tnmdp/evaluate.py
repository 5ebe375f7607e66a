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

from . import backends
from .continuing import evaluate_continuing
from .environments import right_values
from .kernels import (backup, matvec, propagate, read_only, site_value, small_int_dtype,
                      weighted_sum)
from ._validate import check_mdp, check_policy
from .model import as_rng

__all__ = ["evaluate", "policy_values", "start_values", "moments", "marginals", "sample",
           "Trajectories", "finite_or_raise"]


def _check(mdp, policy, atol=None):
    check_mdp(mdp)
    return check_policy(policy, mdp, atol=atol)


def finite_or_raise(value, mdp, what):
    """``value`` unless float overflow made it ``nan`` or ``+inf`` (rewards are never ``+inf``,
    so an infinite positive return is an overflow), or ``-inf`` without a ``-inf`` reward."""
    arr = np.asarray(value)
    overflow = np.isnan(arr) | np.isposinf(arr)
    if not mdp.has_neg_inf:
        overflow |= np.isneginf(arr)
    if overflow.any():
        big = max(float(np.abs(np.where(np.isfinite(mdp.rewards), mdp.rewards, 0.0)).max(
            initial=0.0)), float(np.abs(np.where(np.isfinite(mdp.terminal_rewards),
                                                mdp.terminal_rewards, 0.0)).max(initial=0.0)))
        raise OverflowError(f"{what} overflows float64: rewards as large as {big:.3g} in "
                            "magnitude add up beyond 1.8e308 (rescale the rewards)")
    return value


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
    return right_values(mdp, _check(mdp, policy))


def evaluate(mdp, policy, *, per_state=False, atol=None):
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
        over ``mdp.initial`` (continuing: ``V^pi``, or the gain of every state).
    atol : float, optional
        Tolerance when reading ``policy`` (sums, tiny negative entries); default ``mdp.atol``.

    Returns
    -------
    float, or ndarray of shape (S,) with ``per_state=True``
        ``-inf`` when a forbidden (``-inf``) transition has positive probability.

    Raises
    ------
    OverflowError
        When finite rewards add up beyond the float64 range (never a silent ``nan``).
    """
    if getattr(mdp, "continuing", False):
        return evaluate_continuing(mdp, policy, per_state=per_state)
    policy = _check(mdp, policy, atol)
    with np.errstate(over="ignore", invalid="ignore"):
        values = start_values(mdp, policy)
        result = values if per_state else weighted_sum(mdp.initial, values)
    return finite_or_raise(result, mdp, "E[G]")


def moments(mdp, policy, order=2, *, atol=None):
    """Raw moments ``[E[G], E[G^2], ..., E[G^order]]`` of the return.

    Parameters
    ----------
    mdp : FiniteMDP
        Rewards may be stochastic (:meth:`FiniteMDP.from_joint`). ``-inf`` rewards are allowed:
        moves the policy never makes (probability 0) do not enter; if one is made with
        positive probability, ``G = -inf`` with positive probability and the moments are
        ``[-inf, inf, -inf, ...]``.
    policy : Policy or array_like, shape (T, S, A)
    order : int
        Highest moment, ``>= 1``.
    atol : float, optional
        Tolerance when reading ``policy``; default ``mdp.atol``.

    Returns
    -------
    ndarray, shape (order,)

    Raises
    ------
    OverflowError
        When a moment of finite rewards exceeds the float64 range.

    Notes
    -----
    The contraction of the moment MPO of bond ``order + 1``: right environments
    ``m_t[j](s) = E[G_{t:}^j | s_t = s]`` obey
    ``m_t[j] = sum_a pi sum_i binom(j, i) gamma^(j-i) W_i m_{t+1}[j-i]`` with
    ``W_i = P ⊙ E[r^i | s, a, s']``. Cost ``O(order^2 sum_t nnz(P_t))``.
    """
    policy = _check(mdp, policy, atol)
    mdp.require_fixed_length("moments")
    if isinstance(order, bool) or not isinstance(order, numbers.Integral) or order < 1:
        raise ValueError(f"order must be an int >= 1, got {order!r}")
    masked = mdp.has_neg_inf
    if masked:
        with np.errstate(over="ignore", invalid="ignore"):
            mean = weighted_sum(mdp.initial, start_values(mdp, policy))
        if mean == -np.inf:  # Pr(G = -inf) > 0: E[G^j] = (-1)^j inf
            return np.array([(-1.0) ** j * np.inf for j in range(1, order + 1)])
    with np.errstate(over="ignore", invalid="ignore"):
        result = _moments(mdp, policy, order, masked)
    return finite_or_raise(result, mdp, "a moment of G")


def _moments(mdp, policy, order, masked):
    """The moment recursion; with ``masked`` (``-inf`` rewards that occur with probability 0)
    non-finite entries are zeroed: they sit at states the policy cannot reach, or at actions it
    never takes, and would otherwise turn ``0 * inf`` into ``nan``."""
    S, A, gamma = mdp.n_states, mdp.n_actions, mdp.discount
    m = np.stack([mdp.terminal_rewards ** j for j in range(order + 1)])  # (order+1, S)
    if masked:
        m[~np.isfinite(m)] = 0.0
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
            if masked:
                acc[~np.isfinite(acc)] = 0.0
            new[j] = (probs * acc.reshape(S, A)).sum(axis=1)
        m = new
    return m[1:] @ mdp.initial


def marginals(mdp, policy, *, atol=None):
    """State marginals ``Pr(s_t = s)`` for ``t = 0..T``, shape ``(T+1, S)``; ``atol`` as for
    :func:`evaluate`."""
    policy = _check(mdp, policy, atol)
    mdp.require_fixed_length("marginals")
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


def _row_sampler(P):
    """Per-row inverse-CDF tables of an ``(S*A, S)`` operator."""
    csr = P if sp.issparse(P) else sp.csr_matrix(P)
    rows = np.repeat(np.arange(csr.shape[0]), np.diff(csr.indptr))
    within = np.cumsum(csr.data) - np.repeat(
        np.concatenate([[0.0], np.cumsum(csr.data)])[csr.indptr[:-1]], np.diff(csr.indptr))
    # keys increase across rows: row r covers (r, r + rowsum]; searchsorted finds the entry.
    # One index type whatever the matrix's (int32 columns, int64 row starts): one compiled
    # sampler signature.
    cols = csr.indices.astype(np.int32 if csr.shape[1] <= 2**31 else np.int64, copy=False)
    return tuple(read_only(a) for a in (rows + within, cols, csr.indptr.astype(np.int64)))


def _draw_rows(table, rows, u):
    keys, cols, indptr = table
    hi = indptr[rows + 1] - 1
    k = np.minimum(np.searchsorted(keys, rows + u * (keys[hi] - rows), side="right"), hi)
    return cols[k]


#: Time steps per block of uniforms drawn for the compiled sampler (bounds their memory).
_SAMPLE_BLOCK = 2**14


def _sample_compiled(kernel, mdp, policy, rng, states, actions, rewards):
    """Fill the episodes with the compiled sampler, one call per run of time steps sharing the
    operator, the reward slice and the policy site (the uniforms drawn as the numpy loop draws
    them: per step, ``n`` for actions then ``n`` for next states)."""
    T, n = mdp.horizon, states.shape[0]
    sites = policy._sites
    table = sites if isinstance(sites, np.ndarray) else None  # (T, S) actions
    steps = np.arange(T)
    # run boundaries: where the operator, the reward slice or the stored site changes
    changes = steps[1:] % _SAMPLE_BLOCK == 0
    if not mdp.stationary_transitions:
        ids = np.array([id(mdp.transition_matrix(t)) for t in range(T)])
        changes |= ids[1:] != ids[:-1]
    if mdp.rewards.shape[0] > 1:
        changes[:] = True
    if table is None:
        if isinstance(sites, list):  # stored sites: shared objects form runs
            ids = np.array([id(site) for site in sites])
            changes |= ids[1:] != ids[:-1]
        else:  # computed on demand (a soft policy): one site at a time
            changes[:] = True
    starts = np.concatenate([[0], steps[1:][changes], [T]])
    s = states[:, 0].astype(np.int64)
    no_acts = np.zeros((0, mdp.n_states), dtype=actions.dtype)
    for t0, t1 in zip(starts[:-1].tolist(), starts[1:].tolist()):
        P = mdp.transition_matrix(t0)
        keys, cols, indptr = mdp.cached(("sampler", id(P)), lambda P=P: _row_sampler(P))
        if table is not None:
            acts, cdf = table[t0:t1], np.ones((1, mdp.n_actions))
        else:
            site = policy.site(t0)
            if site.ndim == 1:
                acts, cdf = site[None], np.ones((1, mdp.n_actions))
            else:
                acts, cdf = no_acts, np.cumsum(site, axis=1)
        reward = np.ascontiguousarray(mdp.reward_slice(t0))
        u = rng.random((t1 - t0, 2, n))
        acts = read_only(acts.astype(actions.dtype, copy=False))  # one compiled signature
        kernel(s, t0, acts, cdf, keys, cols, indptr, reward, u, states, actions, rewards)


def sample(mdp, policy, n, *, rng=None, atol=None, backend="auto"):
    """Sample ``n`` episodes under ``policy``, vectorised over episodes.

    Parameters
    ----------
    mdp : FiniteMDP
    policy : Policy or array_like
    n : int
        Number of episodes.
    rng : None, int or numpy.random.Generator
    atol : float, optional
        Tolerance when reading ``policy``; default ``mdp.atol``.
    backend : {"auto", "numpy", "numba"}
        The per-step loop in numpy (vectorised over episodes) or compiled
        (:func:`tnmdp.backends.sampler`; ``"auto"`` from ``n T >= 2^15`` on, deterministic
        rewards only). Both draw the same uniforms in the same order: the same samples.

    Returns
    -------
    Trajectories
        States and actions in the smallest integer dtype that holds ``S`` and ``A``.

    Notes
    -----
    Cost ``O(n T log nnz)``; each step draws actions and next states by inverse CDF. The
    inverse-CDF table of each operator is built once per model (:meth:`FiniteMDP.cached`).
    """
    policy = _check(mdp, policy, atol)
    mdp.require_fixed_length("sample")
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
        raise ValueError(f"n must be an int >= 1, got {n!r}")
    rng = as_rng(rng)
    T, A = mdp.horizon, mdp.n_actions
    states = np.empty((n, T + 1), dtype=small_int_dtype(mdp.n_states))
    actions = np.empty((n, T), dtype=small_int_dtype(A))
    rewards = np.empty((n, T))
    states[:, 0] = _draw_rows(_row_sampler(sp.csr_matrix(mdp.initial[None, :])),
                              np.zeros(n, dtype=np.int64), rng.random(n))
    kernel = backends.sampler(mdp, n, backend)
    for t in range(T) if kernel is None else ():
        s = states[:, t].astype(np.int64)
        cdf = np.cumsum(policy[t][s], axis=1)
        a = np.minimum((cdf < rng.random(n)[:, None] * cdf[:, -1:]).sum(axis=1), A - 1)
        rows = s * A + a
        P = mdp.transition_matrix(t)
        s2 = _draw_rows(mdp.cached(("sampler", id(P)), lambda P=P: _row_sampler(P)), rows,
                        rng.random(n))
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
    if kernel is not None:
        _sample_compiled(kernel, mdp, policy, rng, states, actions, rewards)
    discounts = mdp.discount ** np.arange(T)
    with np.errstate(invalid="ignore", over="ignore"):
        returns = rewards @ discounts + mdp.discount ** T * mdp.terminal_rewards[states[:, -1]]
    if np.isnan(returns).any() or (np.isposinf(returns).any()):
        finite_or_raise(np.nan, mdp, "a sampled return")
    return Trajectories(states, actions, rewards, returns)
