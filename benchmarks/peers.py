"""Peers: what users would run instead of tnmdp for an exact finite-horizon solve.

* :func:`numpy_backward_induction` -- dense ``P`` as an ``(A*S, S)`` matrix (row ``a*S + s``),
  one BLAS matrix-vector product, an argmax and a gather per step;
* :func:`csr_backward_induction` -- ``P`` as the ``(S*A, S)`` CSR matrix of a
  :class:`tnmdp.FiniteMDP`, one scipy product and an argmax per step;
* :func:`mdptoolbox_finite_horizon` -- pymdptoolbox's ``FiniteHorizon`` (stationary ``P`` and
  ``R``; keeps the whole ``(S, T+1)`` value table and ``(S, T)`` policy).

All three return the ``(T, S)`` optimal actions (ties to the lowest action, as tnmdp) and
``V_0``. They take prepared arrays (built outside the timed region) and only do the
induction.
"""

from __future__ import annotations

import contextlib
import io
import warnings

import numpy as np
import scipy.sparse as sp

__all__ = ["dense_inputs", "numpy_backward_induction", "csr_inputs", "csr_backward_induction",
           "mdptoolbox_inputs", "mdptoolbox_finite_horizon"]


def dense_inputs(mdp):
    """``(P (A*S, S), R (A, S), terminal, T)`` for :func:`numpy_backward_induction`."""
    S, A = mdp.n_states, mdp.n_actions
    P = mdp.transition_matrix(0)
    P = P.toarray() if sp.issparse(P) else np.asarray(P)
    P = np.ascontiguousarray(P.reshape(S, A, S).transpose(1, 0, 2).reshape(A * S, S))
    R = np.ascontiguousarray(mdp.expected_reward(0).T)
    return P, R, np.array(mdp.terminal_rewards), mdp.horizon


def numpy_backward_induction(P, R, terminal, horizon):
    """Plain dense backward induction (finite rewards, stationary model)."""
    A, S = R.shape
    v = terminal.copy()
    actions = np.empty((horizon, S), dtype=np.int8)
    idx = np.arange(S)
    for t in range(horizon - 1, -1, -1):
        q = R + (P @ v).reshape(A, S)
        a = q.argmax(axis=0)
        actions[t] = a
        v = q[a, idx]
    return actions, v


def csr_inputs(mdp):
    """``(P (S*A, S) CSR, arrival reward (S,) or None, rbar (S, A), terminal, T)``."""
    P = sp.csr_matrix(mdp.transition_matrix(0))
    arrival = mdp.reward_slice(0)[0, 0].copy() if mdp.reward_kind() == "arrival" else None
    return P, arrival, mdp.expected_reward(0), np.array(mdp.terminal_rewards), mdp.horizon


def csr_backward_induction(P, arrival, rbar, terminal, horizon):
    """CSR backward induction: one sparse product and an argmax per step (stationary model;
    an arrival reward is folded into the product, ``Q = P (r + V)``)."""
    S, A = rbar.shape
    v = terminal.copy()
    actions = np.empty((horizon, S), dtype=np.int8)
    idx = np.arange(S)
    for t in range(horizon - 1, -1, -1):
        q = (P @ (arrival + v)).reshape(S, A) if arrival is not None else rbar + (P @ v).reshape(S, A)
        a = q.argmax(axis=1)
        actions[t] = a
        v = q[idx, a]
    return actions, v


def mdptoolbox_inputs(mdp, *, sparse=None):
    """``(P, R, T, terminal)`` for pymdptoolbox: ``P`` a list of ``A`` ``(S, S)`` matrices (CSR
    when the MDP is sparse), ``R`` the ``(S, A)`` expected reward."""
    S, A = mdp.n_states, mdp.n_actions
    P = mdp.transition_matrix(0)
    sparse = sp.issparse(P) if sparse is None else sparse
    if sp.issparse(P):
        P = sp.csr_matrix(P)
        mats = [sp.csr_matrix(P[a::A]) for a in range(A)]
        if not sparse:
            mats = np.stack([m.toarray() for m in mats])
    else:
        mats = np.ascontiguousarray(np.asarray(P).reshape(S, A, S).transpose(1, 0, 2))
    return mats, np.array(mdp.expected_reward(0)), mdp.horizon, np.array(mdp.terminal_rewards)


def mdptoolbox_finite_horizon(P, R, horizon, terminal):
    """pymdptoolbox ``FiniteHorizon(P, R, discount=1, N=T, h=terminal)``; returns its
    ``(T, S)`` policy and ``V_0``."""
    import mdptoolbox.mdp

    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")  # it prints (and warns) that undiscounted runs may diverge
        solver = mdptoolbox.mdp.FiniteHorizon(P, R, 1.0, horizon, h=terminal)
        solver.run()
    return np.asarray(solver.policy).T, np.asarray(solver.V)[:, 0]
