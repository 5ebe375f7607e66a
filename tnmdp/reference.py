"""Independent exact references: plain dynamic programming on dense arrays.

Written without the sweeper, the kernels or the network so that tests compare against code
that did not compute the result under test. Dense ``(S, A, S)`` per step: for small and
moderate problems (tests, oracles), not for speed.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

__all__ = ["backward_induction", "soft_backward_induction", "dense_model"]


def dense_model(mdp, t):
    """``(P, R)`` at step ``t`` as dense ``(S, A, S)`` arrays (``R`` broadcast in full)."""
    S, A = mdp.n_states, mdp.n_actions
    P = mdp.transition_matrix(t)
    P = (P.toarray() if sp.issparse(P) else np.asarray(P)).reshape(S, A, S)
    R = np.broadcast_to(mdp.rewards[t if mdp.rewards.shape[0] > 1 else 0], (S, A, S))
    return P, R


def _q(P, R, v, gamma):
    """``sum_s' P (R + gamma v)`` with ``0 * -inf = 0``."""
    with np.errstate(invalid="ignore"):
        terms = np.where(P > 0, P * (R + gamma * v[None, None, :]), 0.0)
    return terms.sum(axis=2)


def backward_induction(mdp):
    """Plain backward induction, the oracle.

    Returns
    -------
    Solution
        Deterministic optimal policy (ties to the lowest action), its values and expected return;
        ``history`` holds the single final objective.
    """
    from .policy import Policy
    from .solve import Solution

    v = np.asarray(mdp.terminal_rewards, dtype=float)
    actions = np.empty((mdp.horizon, mdp.n_states), dtype=np.int64)
    for t in range(mdp.horizon - 1, -1, -1):
        q = _q(*dense_model(mdp, t), v, mdp.discount)
        actions[t] = np.argmax(q, axis=1)
        v = q.max(axis=1)
    with np.errstate(invalid="ignore"):
        expected = float(np.where(mdp.initial > 0, mdp.initial * v, 0.0).sum())
    return Solution(policy=Policy.from_actions(actions, mdp.n_actions), expected_return=expected,
                    values=v, soft_value=None, history=np.array([expected]), n_sweeps=1,
                    success=True, status=0, message="backward induction")


def soft_backward_induction(mdp, temperature, reference_policy=None):
    """Soft (KL-regularised) dynamic programming in log space.

    Parameters
    ----------
    temperature : float
        ``tau > 0``.
    reference_policy : array_like (T, S, A), optional
        ``pi0``; uniform by default.

    Returns
    -------
    soft_value : float
        ``max_pi J_tau`` from the initial distribution.
    values : ndarray, shape (S,)
        Soft values ``V_0``.
    policy : ndarray, shape (T, S, A)
        The optimal policy ``pi_t ∝ pi0 exp(Q_t / tau)``.
    """
    T, S, A = mdp.horizon, mdp.n_states, mdp.n_actions
    pi0 = np.full((T, S, A), 1.0 / A) if reference_policy is None else np.asarray(reference_policy)
    v = np.asarray(mdp.terminal_rewards, dtype=float)
    policy = np.empty((T, S, A))
    for t in range(T - 1, -1, -1):
        q = _q(*dense_model(mdp, t), v, mdp.discount)
        with np.errstate(divide="ignore"):
            z = np.log(pi0[t]) + q / temperature
        zmax = z.max(axis=1, keepdims=True)
        finite = np.isfinite(zmax)
        shift = np.where(finite, zmax, 0.0)
        with np.errstate(divide="ignore"):
            lse = shift + np.log(np.exp(z - shift).sum(axis=1, keepdims=True))
        policy[t] = np.where(finite, np.exp(z - np.where(finite, lse, 0.0)), pi0[t])
        v = temperature * np.where(finite, lse, -np.inf)[:, 0]
    with np.errstate(invalid="ignore"):
        value = float(np.where(mdp.initial > 0, mdp.initial * v, 0.0).sum())
    return value, v, policy
