"""Compiled (numba) loops of the tilted backward recursion on CSR sites (:mod:`tnmdp.tilted`).

One pass per site over the stored entries, in log space per row: for each state ``s`` and
action ``a`` (row ``r = s A + a``) the row's largest exponent ``m`` is found first, then
``y = m + log sum_k P_k exp(e_k - m)``, and the rows of a state are combined by a running
``logaddexp``. ``-inf`` exponents (forbidden moves, ``h = 0``) are skipped, never ``nan``.
Inputs are trusted (validated at the public boundary).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

__all__ = ["log_step", "doob_step"]


@njit(cache=True, nogil=True, inline="always")
def _exponent(indices, log_data, entry_log, x, k):
    """``log P_k + x[col_k] (+ e_k)`` of stored entry ``k`` (``entry_log`` empty: no ``e``)."""
    e = x[indices[k]] + log_data[k]
    if entry_log.shape[0] > 0:
        e += entry_log[k]
    return e


@njit(cache=True, nogil=True)
def _row_log_sum(indptr, indices, log_data, entry_log, x, r):
    """``log sum_k exp(log P_k + x[col_k] + e_k)`` over row ``r`` (``-inf`` for an empty sum);
    a row with one live entry costs no ``exp`` or ``log``."""
    top = -np.inf
    n_live = 0
    for k in range(indptr[r], indptr[r + 1]):
        e = _exponent(indices, log_data, entry_log, x, k)
        if e > -np.inf:
            n_live += 1
            if e > top:
                top = e
    if n_live <= 1:
        return top
    total = 0.0
    for k in range(indptr[r], indptr[r + 1]):
        e = _exponent(indices, log_data, entry_log, x, k)
        if e > -np.inf:
            total += math.exp(e - top)
    return top + math.log(total)


@njit(cache=True, nogil=True)
def log_step(indptr, indices, log_data, entry_log, x, row_log, n_actions, out):
    """``out[s] = logsumexp_a (row_log[sA+a] + log sum_s' P exp(x[s'] + e))``.

    Parameters
    ----------
    indptr, indices, log_data : ndarray
        The CSR ``(S*A, S)`` operator ``P_t``, its stored entries as logs.
    entry_log : ndarray, shape (nnz,) or (0,)
        Per-entry exponents (empty when the reward does not depend on ``s'``).
    x : ndarray, shape (S,)
        ``log h_{t+1}`` plus any arrival exponent.
    row_log : ndarray, shape (S*A,)
    n_actions : int
    out : ndarray, shape (S,)
        ``log h_t``, written.
    """
    for s in range(out.shape[0]):
        acc = -np.inf
        for a in range(n_actions):
            r = s * n_actions + a
            c = row_log[r]
            if c == -np.inf:
                continue
            y = _row_log_sum(indptr, indices, log_data, entry_log, x, r)
            if y == -np.inf:
                continue
            y += c
            if acc == -np.inf:
                acc = y
            elif y > acc:
                acc = y + math.log1p(math.exp(acc - y))
            else:
                acc = acc + math.log1p(math.exp(y - acc))
        out[s] = acc


@njit(cache=True, nogil=True)
def doob_step(indptr, indices, log_data, entry_log, x, row_log, row_log_reference, log_h,
              n_actions, out_indptr, out_indices, out_data, mark, slot):
    """The conditioned kernel ``P^h_t[s, s']`` as CSR, the actions of each state summed.

    Live states (``log_h[s] > -inf``) get ``sum_a P exp(row_log + x[s'] + e - log_h[s])``,
    renormalised (rounding only); dead states the reference ``sum_a pi0 P``. Each state's
    columns are sorted, duplicates summed, zeros dropped. ``mark`` and ``slot`` are ``(S,)``
    integer scratch (``mark`` all ``-1`` on entry). Returns the number of stored entries.
    """
    has_entry = entry_log.shape[0] > 0
    n = 0
    for s in range(log_h.shape[0]):
        start = n
        alive = log_h[s] > -np.inf
        for a in range(n_actions):
            r = s * n_actions + a
            for k in range(indptr[r], indptr[r + 1]):
                if alive:
                    e = row_log[r] + x[indices[k]] - log_h[s]
                    if has_entry:
                        e += entry_log[k]
                else:
                    e = row_log_reference[r]
                e += log_data[k]
                if e == -np.inf:
                    continue
                w = math.exp(e)
                if w == 0.0:
                    continue
                col = indices[k]
                if mark[col] != s:
                    mark[col] = s
                    slot[col] = n
                    out_indices[n] = col
                    out_data[n] = w
                    n += 1
                else:
                    out_data[slot[col]] += w
        # insertion sort of the state's columns (a few entries per state)
        for i in range(start + 1, n):
            c, w = out_indices[i], out_data[i]
            j = i - 1
            while j >= start and out_indices[j] > c:
                out_indices[j + 1] = out_indices[j]
                out_data[j + 1] = out_data[j]
                j -= 1
            out_indices[j + 1] = c
            out_data[j + 1] = w
        total = 0.0
        for i in range(start, n):
            total += out_data[i]
        for i in range(start, n):
            out_data[i] /= total
        out_indptr[s + 1] = n
    return n
