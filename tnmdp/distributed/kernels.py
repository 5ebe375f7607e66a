"""Compiled row-block kernels: the site update of :func:`tnmdp.solve` on rows ``lo..hi-1``.

A worker of :mod:`tnmdp.distributed` holds the rows ``s*A + a``, ``lo <= s < hi``, of the
transition operator: an ``((hi - lo) A, S)`` block whose columns are *global* states. Per time
step it receives the full ``V_{t+1}`` (``S`` floats) and returns its slice of ``V_t``.

The single-process sweep's fused loop (:func:`tnmdp.backends.numba.kernels.backward_run` and its parallel twin) cannot serve such
a block: it sizes ``V`` from the operator's rows (``S = rows / A``) and writes ``V_t`` over
``V_{t+1}`` in place, which needs a square operator. The functions here call the *same*
compiled building blocks in the same order -- the operator product (``product``: stored
entries of a row added in column order from the first, the order scipy's CSR product uses),
``Q = rbar + gamma P V``, the argmax with ties to the lowest action (``argmax_rows``), the
paired product and row-wise soft maximum of the soft sweep (``product_pair``,
``soft_rows``) -- on a rectangular block, so a block's ``V_t`` and policy rows are those of
the single-process sweep (the same bits for the argmax sweep).

Importing this module imports numba; :mod:`tnmdp.distributed` imports it on the workers only.
"""

from __future__ import annotations

from numba import njit

from ..backends.numba.kernels import argmax_rows, next_input, product, product_pair
from ..backends.numba.soft_kernels import soft_rows
from ..backends.numpy.operators import Operator

__all__ = ["Operator", "block_argmax", "block_soft", "block_policy_value", "block_forward", "fill"]


def fill(x, slices):
    """Write the concatenation of ``slices`` into ``x[:S]`` and ``0`` into ``x[S]`` (the entry
    ELL padding points at); returns ``x``."""
    pos = 0
    for piece in slices:
        x[pos:pos + piece.shape[0]] = piece
        pos += piece.shape[0]
    x[pos:] = 0.0
    return x


@njit(cache=True, nogil=True)
def _add_reward(q, rbar, gamma):
    """``q = rbar + gamma q`` in place (as the compiled sweep forms ``Q``: the same loop)."""
    next_input(True, rbar.ravel(), gamma, q, q)


@njit(cache=True, nogil=True)
def block_argmax(kind, indptr, cols, vals, rbar, gamma, x, q, values, actions):
    """One hard site update of a row block.

    Parameters
    ----------
    kind, indptr, cols, vals
        ``Operator.args`` of the block, shape ``(n A, S)``.
    rbar : ndarray, shape (n, A)
        Expected rewards of the block's state-action pairs (``-inf`` allowed).
    gamma : float
    x : ndarray, shape (S + 1,)
        ``V_{t+1}`` followed by a ``0`` (:func:`fill`).
    q : ndarray, shape (n A,)
        Scratch: receives ``Q_t``.
    values : ndarray, shape (n,)
        Receives ``V_t = max_a Q_t``.
    actions : ndarray of small ints, shape (n,)
        Receives the argmax (lowest action on ties).

    Notes
    -----
    ``O(nnz)`` of the block.
    """
    product(kind, indptr, cols, vals, x, q)
    _add_reward(q, rbar, gamma)
    argmax_rows(q, rbar.shape[1], values, actions)


@njit(cache=True, nogil=True)
def block_soft(kind, indptr, cols, vals, rbar, gamma, tau, log_pi0, pi0, x, y, q, qu, values,
               plain, probs, scratch):
    """One soft (KL-regularised) site update of a row block.

    ``x`` holds the soft values ``V_{t+1}`` and ``y`` the plain values ``u_{t+1}`` (each
    ``(S + 1,)`` with a trailing ``0``); ``values`` receives ``V_t = tau logsumexp_a(log pi0 +
    Q/tau)``, ``plain`` receives ``u_t = sum_a pi Qu`` and ``probs`` (when it has rows) the
    policy rows ``pi_t ∝ pi0 exp(Q/tau)``. ``log_pi0`` and ``pi0`` have one row (shared) or
    ``n``; ``scratch`` is ``(5, n)`` for two actions, else ``(0, n)``. ``O(nnz + n A)``.
    """
    n = values.shape[0]
    product_pair(kind, indptr, cols, vals, x, y, q, qu, 0, q.shape[0])
    _add_reward(q, rbar, gamma)
    _add_reward(qu, rbar, gamma)
    soft_rows(q, qu, log_pi0, pi0, tau, values, plain, probs, scratch, 0, n)


@njit(cache=True, nogil=True)
def block_policy_value(kind, indptr, cols, vals, rbar, gamma, x, q, actions, probs, values):
    """``V_t[s] = sum_a pi_t(a|s) Q_t(s, a)`` of a given policy on a row block.

    ``actions`` (shape ``(n,)``) is used when ``probs`` has no rows, else ``probs``
    (``(n, A)``); zero-probability actions are skipped, so ``0 * -inf`` never enters.
    ``O(nnz + n A)``.
    """
    product(kind, indptr, cols, vals, x, q)
    _add_reward(q, rbar, gamma)
    n_actions = rbar.shape[1]
    if probs.shape[0] == 0:
        for s in range(values.shape[0]):
            values[s] = q[s * n_actions + actions[s]]
    else:
        for s in range(values.shape[0]):
            acc = 0.0
            for a in range(n_actions):
                p = probs[s, a]
                if p > 0.0:
                    acc += p * q[s * n_actions + a]
            values[s] = acc


@njit(cache=True, nogil=True)
def block_forward(kind, indptr, cols, vals, rbar, dist, y):
    """Move the left environment of the uniform policy over a row block.

    With ``w[s A + a] = dist[s] / A`` for the block's states, ``y`` (shape ``(S + 1,)``; entry
    ``S`` collects ELL padding) receives ``P_b^T w``, the block's share of
    ``Pr(s_{t+1} = .)``; returns the gain ``sum_{w > 0} w rbar`` (so ``0 * -inf`` never
    enters). ``O(nnz)`` of the block.
    """
    n, n_actions = rbar.shape
    p = 1.0 / n_actions
    flat = rbar.ravel()
    y[:] = 0.0
    gain = 0.0
    for i in range(n * n_actions):
        w = dist[i // n_actions] * p
        gain += w * flat[i] if w > 0.0 else 0.0
    if kind == 0:
        for j in range(cols.shape[0]):
            cj, vj = cols[j], vals[j]
            for i in range(n * n_actions):
                y[cj[i]] += vj[i] * (dist[i // n_actions] * p)
    elif kind == 1:
        c, d = cols[0], vals[0]
        for i in range(n * n_actions):
            w = dist[i // n_actions] * p
            for k in range(indptr[i], indptr[i + 1]):
                y[c[k]] += d[k] * w
    else:
        for i in range(n * n_actions):
            w = dist[i // n_actions] * p
            if w != 0.0:
                for k in range(vals.shape[1]):
                    y[k] += vals[i, k] * w
    return gain
