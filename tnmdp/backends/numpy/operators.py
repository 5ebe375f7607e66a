"""Operators packed for the compiled kernels: padded rows (ELL), CSR or dense.

A backup ``Q = P V`` reads every stored entry of ``P`` once; the kernels of
:mod:`tnmdp.backends.numba` take an operator as the tuple ``(kind, indptr, cols, vals)``
(:attr:`Operator.args`). Sparse rows are padded to the longest row (ELL, column-major) when
that stores at most ``ell_padding * nnz`` entries, so that the product is a vectorised gather
without per-row loop bounds; otherwise the CSR arrays are used as they are. This module is
plain numpy/scipy: packing costs ``O(nnz)`` once per distinct operator (the model's site cache
keeps the packed operator, :meth:`tnmdp.FiniteMDP.site_cache`).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ...kernels import read_only

__all__ = ["ELL", "CSR", "DENSE", "DENSE_T", "ELL_PADDING", "Operator", "markov_operator",
           "writable"]

#: Operator formats: ELL (rows padded to a common length, stored column-major so that the
#: product is a vectorised gather), CSR, dense ``y = M x`` and dense transposed ``y = x M``.
ELL, CSR, DENSE, DENSE_T = 0, 1, 2, 3

#: ELL is used when padding the rows to the longest one stores at most this many times ``nnz``.
ELL_PADDING = 1.5


_NO_PTR = np.zeros(1, dtype=np.int64)
_NO_COLS = np.zeros((1, 1), dtype=np.int32)


def writable(x):
    """``x`` as a C-contiguous, writable float64 array: itself when it is one, else a copy.

    The kernels are compiled once per argument type, and numba types read-only arrays apart:
    vectors handed to them (``O(S)`` or ``O(S A)``) are passed writable so that read-only model
    arrays do not multiply the compiled specialisations (cold-cache compile time).
    """
    return np.require(x, dtype=np.float64, requirements=["C", "W"])


#: Rows per chunk when packing (keeps the index temporaries of packing small).
_CHUNK_ROWS = 2**15


def _chunks(csr, lengths):
    """Per chunk of rows: ``(r0, r1, rows, pos, entries)``, each stored entry's row, position
    in its row, and the slice of ``csr.indices``/``csr.data`` holding the chunk."""
    n = csr.shape[0]
    for r0 in range(0, n, _CHUNK_ROWS):
        r1 = min(n, r0 + _CHUNK_ROWS)
        e0, e1 = int(csr.indptr[r0]), int(csr.indptr[r1])
        rows = np.repeat(np.arange(r0, r1), lengths[r0:r1])
        pos = np.arange(e0, e1) - np.repeat(csr.indptr[r0:r1], lengths[r0:r1])
        yield r0, r1, rows, pos, slice(e0, e1)


class Operator:
    """A matrix in the form the kernels take.

    Parameters
    ----------
    matrix : ndarray or scipy.sparse matrix, shape (n, m)
    transpose : bool
        Represent ``matrix.T`` (for moving left environments).
    ell_padding : float
        Pack sparse rows as ELL when that stores at most ``ell_padding * nnz`` entries
        (``0`` forces CSR, ``inf`` ELL).

    Attributes
    ----------
    kind : int
        ``ELL``, ``CSR``, ``DENSE`` or ``DENSE_T``.
    args : tuple
        ``(kind, indptr, cols, vals)`` for the kernels.
    shape : tuple
        Shape of the represented matrix.
    bandwidth : int
        For a sparse ``(S A, S)`` transition matrix (not transposed, no stored zeros):
        ``max |s' - s|`` over its stored entries ``P[s A + a, s']``; else ``-1`` (unknown).

    Notes
    -----
    Sparse rows are padded to the longest row (ELL, stored column-major: ``cols[j, i]`` is the
    column of the ``j``-th entry of row ``i``) when that stores at most ``ell_padding * nnz``
    entries; padding points at the trailing zero the kernels append to ``x``, with value 0.
    """

    def __init__(self, matrix, *, transpose=False, ell_padding=ELL_PADDING):
        if sp.issparse(matrix):
            csr = sp.csr_matrix(matrix.T if transpose else matrix)  # shares a CSR's arrays
            if not csr.has_sorted_indices:
                csr = csr.sorted_indices()  # a copy: never reorders the caller's matrix
            n, m = csr.shape
            lengths = np.diff(csr.indptr)
            width = int(lengths.max()) if n else 0
            if width * n <= ell_padding * max(csr.nnz, 1):
                cols = np.full((max(width, 1), n), m, dtype=np.int32)
                vals = np.zeros((max(width, 1), n))
                for r0, r1, rows, pos, entries in _chunks(csr, lengths):
                    cols[pos, rows] = csr.indices[entries]
                    vals[pos, rows] = csr.data[entries]
                self.kind, indptr = ELL, _NO_PTR
            else:
                self.kind, indptr = CSR, csr.indptr.astype(np.int64, copy=False)
                cols = csr.indices.astype(np.int32, copy=False)[None, :]
                vals = csr.data[None, :]
            self.shape = (n, m)
            self.bandwidth = -1
            if not transpose and m and n % m == 0 and csr.nnz and np.all(csr.data != 0.0):
                per_state = n // m
                self.bandwidth = max(
                    int(np.abs(csr.indices[entries].astype(np.int64) - rows // per_state).max())
                    for _, _, rows, _, entries in _chunks(csr, lengths) if rows.size)
        else:
            vals = np.ascontiguousarray(matrix, dtype=np.float64)
            self.kind, indptr, cols = (DENSE_T if transpose else DENSE), _NO_PTR, _NO_COLS
            self.shape = vals.shape[::-1] if transpose else vals.shape
            self.bandwidth = -1
        # read-only views, whatever the source: the kernels never write an operator, and one
        # array type (numba types read-only arrays apart) compiles one signature per kernel
        self.args = (self.kind,) + tuple(
            read_only(a) for a in (indptr, cols, np.ascontiguousarray(vals, dtype=np.float64)))


def markov_operator(P, probs, rbar):
    """The left-environment operator of a fixed policy site: ``(M_pi, rbar_pi)``.

    Parameters
    ----------
    P : ndarray or scipy.sparse matrix, shape (S*A, S)
    probs : ndarray, shape (S, A)
    rbar : ndarray, broadcasting to (S, A)

    Returns
    -------
    M : ndarray or CSR matrix, shape (S, S)
        ``M[s, s'] = sum_a pi(a|s) P(s'|s, a)``: a one-action MDP, so that
        ``propagate_gain(M, ones((S, 1)), rbar_pi[:, None], dist)`` moves ``dist`` as
        ``propagate_gain(P, probs, rbar, dist)`` does (to rounding).
    rbar_pi : ndarray, shape (S,)
        ``sum_{a: pi > 0} pi(a|s) rbar(s, a)``.

    Notes
    -----
    One pass over ``P``: ``O(nnz(P))``.
    """
    probs = np.ascontiguousarray(probs, dtype=np.float64)
    S, A = probs.shape
    support = probs > 0
    with np.errstate(invalid="ignore"):
        rbar_pi = np.where(support, probs * np.broadcast_to(rbar, probs.shape), 0.0).sum(axis=1)
    if sp.issparse(P):
        rows, cols = np.nonzero(support)
        weights = sp.csr_matrix((probs[rows, cols], (rows, rows * A + cols)), shape=(S, S * A))
        M = sp.csr_matrix(weights @ sp.csr_matrix(P))
        M.sum_duplicates()
        M.eliminate_zeros()
        M.sort_indices()
        return M, rbar_pi
    P = np.asarray(P, dtype=np.float64).reshape(S, A, -1)
    M = np.zeros((S, P.shape[2]))
    for a in range(A):  # actions in order; a zero probability adds nothing (P is finite)
        M += probs[:, a, None] * P[:, a, :]
    return M, rbar_pi

