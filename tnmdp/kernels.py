"""Array kernels for one site of the network: backups, propagation, soft maxima.

These are the contractions a sweep performs when it moves one site. With the transition
operator ``P_t`` stored as an ``(S*A, S)`` matrix (dense or CSR), moving the right environment
one site is one matrix-vector product ``P_t @ v`` and moving the left environment is one
transposed product ``P_t^T @ w``: ``O(nnz(P_t))`` each, never a re-contraction of the network.

All kernels are ``-inf`` safe: a ``-inf`` entry (a forbidden transition) times a zero probability
contributes ``0``, never ``nan``.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

__all__ = ["read_only", "matvec", "rmatvec", "backup", "propagate", "greedy", "soft_backup",
           "site_probabilities", "log_reference", "row_max", "row_sum", "weighted_sum",
           "small_int_dtype", "row_objective", "site_value"]

#: Up to this many actions, reductions over the action axis loop over columns: numpy's
#: reductions along a short trailing axis are ~30x slower than elementwise column operations.
_COLUMN_LOOP = 16


def row_max(x):
    """``x.max(axis=1)`` for ``x`` of shape ``(S, A)``, fast for small ``A``."""
    if x.shape[1] > _COLUMN_LOOP:
        return x.max(axis=1)
    out = x[:, 0].copy()
    for a in range(1, x.shape[1]):
        np.maximum(out, x[:, a], out=out)
    return out


def row_sum(x):
    """``x.sum(axis=1)`` for ``x`` of shape ``(S, A)``, fast for small ``A``."""
    if x.shape[1] > _COLUMN_LOOP:
        return x.sum(axis=1)
    out = x[:, 0].copy()
    for a in range(1, x.shape[1]):
        out += x[:, a]
    return out


def matvec(P, x):
    """``P @ x`` for ``P`` of shape ``(S*A, S)`` and ``x`` of shape ``(S,)`` or ``(S, k)``.

    ``-inf`` entries of ``x`` propagate only along non-zero entries of ``P``.
    """
    if sp.issparse(P):  # CSR without stored zeros: only non-zero entries multiply
        return P @ x
    neg = np.isneginf(x)
    if not neg.any():
        return P @ x
    out = P @ np.where(neg, 0.0, x)
    out[(P @ neg.astype(np.float64)) > 0] = -np.inf
    return out


def rmatvec(P, w, transposed=None):
    """``P^T @ w`` for ``P`` of shape ``(S*A, S)`` and finite ``w`` of shape ``(S*A,)``;
    ``transposed`` is ``P.T`` as CSR when the caller keeps one (a CSR product over rows is
    faster than scipy's transposed product)."""
    if sp.issparse(P):
        return (P.T.tocsr() if transposed is None else transposed) @ w
    return w @ P


def backup(mdp, t, v_next):
    """One Bellman backup: ``Q_t[s, a] = rbar_t[s, a] + gamma sum_s' P_t(s'|s,a) v_next[s']``.

    Parameters
    ----------
    mdp : FiniteMDP
    t : int
        Site (time step).
    v_next : ndarray, shape (S,) or (S, k)
        Value(s) at time ``t + 1``; ``-inf`` allowed.

    Returns
    -------
    ndarray, shape (S, A) or (S, A, k)

    Notes
    -----
    Cost ``O(nnz(P_t) k)``. Rewards on arrival only are folded into the product
    (``P_t @ (r + gamma v)``), so such sites cost a single matrix-vector product.
    """
    S, A = mdp.n_states, mdp.n_actions
    P = mdp.transition_matrix(t)
    gamma = mdp.discount
    extra = v_next.shape[1:]
    if mdp.reward_kind() == "arrival":
        r = mdp.reward_slice(t)[0, 0]
        if extra:
            r = r[:, None]
        q = matvec(P, r + gamma * v_next if gamma != 1.0 else r + v_next)
        return q.reshape((S, A) + extra)
    rbar = mdp.expected_reward(t)
    cont = matvec(P, v_next).reshape((S, A) + extra)
    if gamma != 1.0:
        cont = gamma * cont
    if extra:
        rbar = rbar[..., None]
    return rbar + cont


def propagate(mdp, t, weights):
    """Move the left environment one site: ``out[s'] = sum_{s,a} weights[s, a] P_t(s'|s,a)``.

    Parameters
    ----------
    weights : ndarray, shape (S, A)
        Joint probability ``Pr(s_t = s, a_t = a)``.

    Returns
    -------
    ndarray, shape (S,)
    """
    P = mdp.transition_matrix(t)
    transposed = mdp.cached(("transpose", id(P)), lambda: P.T.tocsr()) if sp.issparse(P) \
        else None  # kept by the model, built once
    return rmatvec(P, weights.reshape(-1), transposed)


def greedy(q):
    """Per-state argmax of ``q`` (shape ``(S, A)``), ties to the lowest action.

    Returns
    -------
    actions : ndarray of int, shape (S,)
    values : ndarray, shape (S,)
    """
    if q.shape[1] > _COLUMN_LOOP:
        actions = np.argmax(q, axis=1)
        return actions, q[np.arange(q.shape[0]), actions]
    best = q[:, 0].copy()
    actions = np.zeros(q.shape[0], dtype=np.intp)
    for a in range(1, q.shape[1]):
        better = q[:, a] > best  # strict: ties stay with the lowest action
        actions[better] = a
        np.maximum(best, q[:, a], out=best)
    return actions, best


def log_reference(reference, t, shape):
    """``log pi0_t`` as an array broadcasting to ``shape = (S, A)`` (``-inf`` where pi0 is 0)."""
    if reference is None:
        return np.full((1, 1), -np.log(shape[1]))
    site = reference[t]
    with np.errstate(divide="ignore"):
        return np.log(site)


def soft_backup(q, log_pi0, temperature):
    """Soft maximum over actions: the KL-regularised local optimum.

    Parameters
    ----------
    q : ndarray, shape (S, A)
        ``Q_t``; ``-inf`` allowed.
    log_pi0 : ndarray, broadcasting to (S, A)
        Log reference policy.
    temperature : float
        ``tau > 0``.

    Returns
    -------
    log_pi : ndarray, shape (S, A)
        ``log pi_t(a|s) = log pi0(a|s) + (Q(s,a) - V(s)) / tau``; rows of a state whose every
        action is forbidden fall back to ``log pi0`` (such states have zero probability under
        the optimal policy).
    values : ndarray, shape (S,)
        Soft values ``V(s) = tau logsumexp_a(log pi0(a|s) + Q(s,a)/tau)``.
    """
    z = q / temperature + log_pi0
    zmax = row_max(z)
    dead = np.isneginf(zmax)
    safe = np.where(dead, 0.0, zmax)
    with np.errstate(divide="ignore"):
        lse = safe + np.log(row_sum(np.exp(z - safe[:, None])))
    lse[dead] = -np.inf
    log_pi = z - np.where(dead, 0.0, lse)[:, None]
    if dead.any():
        log_pi[dead] = np.broadcast_to(log_pi0, q.shape)[dead]
    return log_pi, temperature * lse


def site_probabilities(site, n_actions):
    """``(S, A)`` probabilities of a stored policy site (int actions or probabilities)."""
    if site.ndim == 1:
        probs = np.zeros((site.shape[0], n_actions))
        probs[np.arange(site.shape[0]), site] = 1.0
        return probs
    return site


def weighted_sum(weights, values):
    """``sum_s weights[s] values[s]`` with ``0 * -inf = 0`` (``weights >= 0``), as a float."""
    forbidden = np.isneginf(values)
    if not forbidden.any():
        return float(weights @ values)
    if (forbidden & (weights > 0)).any():
        return -np.inf
    return float(weights @ np.where(forbidden, 0.0, values))


def read_only(a):
    """A read-only view of ``a`` (no copy).

    Arrays handed to the compiled kernels are passed as read-only views when the kernel only
    reads them: numba types read-only and writable arrays apart, so a mix would compile every
    kernel twice.
    """
    view = a.view()
    view.flags.writeable = False
    return view


def small_int_dtype(n):
    """The smallest signed integer dtype holding ``0..n-1`` (actions, states)."""
    for dtype in (np.int8, np.int16, np.int32):
        if n - 1 <= np.iinfo(dtype).max:
            return dtype
    return np.int64


def row_objective(q, probs, log_pi0, temperature):
    """Per-state local objective ``sum_a pi (Q - tau log(pi / pi0))``, shape ``(S,)``.

    Zero-probability actions contribute nothing, even where ``Q`` is ``-inf``.
    """
    support = probs > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(support, probs * q, 0.0)
        if temperature > 0:
            log_ratio = np.log(np.where(support, probs, 1.0)) - np.broadcast_to(log_pi0, q.shape)
            terms = terms - temperature * np.where(support, probs * log_ratio, 0.0)
    return row_sum(terms)


def site_value(q, site, log_pi0, temperature):
    """``V[s] = sum_a pi (Q - tau log(pi / pi0))`` for a site stored as int actions or
    probabilities."""
    if site.ndim == 1:
        rows = np.arange(q.shape[0])
        v = q[rows, site]
        if temperature > 0:
            v = v + temperature * np.broadcast_to(log_pi0, q.shape)[rows, site]
        return v
    return row_objective(q, site, log_pi0, temperature)
