"""Low-rank times sparse connectivity, ``W(r, s) = (W1(r) W2(r)) ⊙ M(s)``.

The recurrent weight parameterisation of "Leveraging Low-Rank and Sparse Recurrent Connectivity
for Robust Closed-Loop Control" (arXiv 2310.03915): from an initial full matrix ``W`` (shape
``(m, n)``) with singular value decomposition ``U Sigma V^T``,

    W1 = U_r Sigma_r^{1/2}   (m, r),      W2 = Sigma_r^{1/2} V_r^T   (r, n),

the rank-``r`` truncation split symmetrically (Eckart--Young: ``W1 W2`` is the best rank-``r``
approximation), and ``M`` a fixed Bernoulli(``1 - s``) mask: each connection is kept with
probability ``1 - s`` (the sparsity ``s`` is the expected fraction removed). ``W1`` and ``W2``
are trained; ``M`` is not.

As a tensor network the matrix is two factors on a bond of size ``r`` and the mask, joined to
the open row and column indices through COPY (hyper-diagonal) tensors, which is the Hadamard
product::

        i ── COPY_i ── W1 ──k── W2 ── COPY_j ── j
               \\_______ M ________/

:meth:`LowRankSparse.matvec` contracts it against a vector without forming ``W1 W2``: for each
kept connection ``(i, j)``, ``W[i, j] = W1[i, :] @ W2[:, j]``, so ``y = W x`` costs
``O(r nnz(M))`` time and ``O(nnz(M))`` memory.

Spectral facts the paper relies on (measured in ``examples/lowrank_sparse.py``): a dense
Gaussian ``n x n`` matrix with entry variance ``1/n`` has spectral radius ``~1`` (circular law)
and norm ``~2``; keeping each entry with probability ``p = 1 - s`` scales the bulk of the
spectrum, the radius and the norm by ``~sqrt(p)``; truncating the rank keeps the top singular
values (the norm is unchanged) and removes the others.
"""

from __future__ import annotations

import numbers

import numpy as np

from ..model import _check_int, as_rng

__all__ = ["LowRankSparse"]


def _check_matrix(name, value, shape=None):
    arr = np.array(value, dtype=float)  # a copy: never alias the caller's arrays
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-d array, got shape {arr.shape}")
    if shape is not None and arr.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {arr.shape}")
    bad = ~np.isfinite(arr)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise ValueError(f"{name}[{i}, {j}] = {arr[i, j]} is not finite")
    return arr


class LowRankSparse:
    """The matrix ``(W1 @ W2) * mask``.

    Parameters
    ----------
    W1 : array_like, shape (m, r)
    W2 : array_like, shape (r, n)
    mask : array_like of bool or {0, 1}, shape (m, n)
        Kept connections. Copied.

    Attributes
    ----------
    W1, W2 : ndarray
    mask : ndarray of bool, shape (m, n)
    rows, cols : ndarray of int, shape (nnz,)
        Kept connections in row-major order.

    Notes
    -----
    Parameters: ``r (m + n)`` trainable (``W1``, ``W2``) against ``m n`` for a dense matrix.
    """

    def __init__(self, W1, W2, mask):
        self.W1 = _check_matrix("W1", W1)
        m, r = self.W1.shape
        if r < 1:
            raise ValueError("W1 must have at least one column (rank >= 1)")
        self.W2 = _check_matrix("W2", W2)
        if self.W2.shape[0] != r:
            raise ValueError(f"W2 must have {r} rows (the rank of W1), got shape {self.W2.shape}")
        n = self.W2.shape[1]
        mask = np.array(mask)
        if mask.shape != (m, n):
            raise ValueError(f"mask must have shape {(m, n)}, got {mask.shape}")
        if mask.dtype != bool:
            if not np.all((mask == 0) | (mask == 1)):
                raise ValueError("mask must hold booleans or 0/1 values")
            mask = mask.astype(bool)
        self.mask = mask
        self.rows, self.cols = np.nonzero(mask)

    @classmethod
    def from_matrix(cls, W, rank, sparsity, rng=None):
        """Rank-``rank`` SVD truncation of ``W`` split as ``U Sigma^{1/2}``, ``Sigma^{1/2} V^T``,
        and a Bernoulli(``1 - sparsity``) mask.

        Parameters
        ----------
        W : array_like, shape (m, n)
        rank : int in ``1..min(m, n)``
        sparsity : float in [0, 1)
            Probability that a connection is removed.
        rng : numpy.random.Generator or int or None
            Draws the mask (``rng.random((m, n)) >= sparsity``).
        """
        W = _check_matrix("W", W)
        rank = _check_int("rank", rank, 1)
        if rank > min(W.shape):
            raise ValueError(f"rank must be <= min(m, n) = {min(W.shape)}, got {rank}")
        if (isinstance(sparsity, bool) or not isinstance(sparsity, numbers.Real)
                or not 0.0 <= sparsity < 1.0):
            raise ValueError(f"sparsity must be a real number in [0, 1), got {sparsity!r}")
        U, sig, Vt = np.linalg.svd(W, full_matrices=False)
        root = np.sqrt(sig[:rank])
        mask = as_rng(rng).random(W.shape) >= sparsity
        return cls(U[:, :rank] * root, root[:, None] * Vt[:rank], mask)

    def __repr__(self):
        return (f"LowRankSparse(shape={self.shape}, rank={self.rank}, "
                f"density={self.density:.3f})")

    @property
    def shape(self):
        """``(m, n)``."""
        return self.mask.shape

    @property
    def rank(self):
        """Inner dimension ``r`` (the bond of the network)."""
        return self.W1.shape[1]

    @property
    def nnz(self):
        """Number of kept connections."""
        return self.rows.size

    @property
    def density(self):
        """Fraction of kept connections, ``nnz / (m n)``."""
        return self.nnz / self.mask.size

    @property
    def n_parameters(self):
        """Trainable parameters ``r (m + n)`` (the mask is fixed)."""
        return self.W1.size + self.W2.size

    def matrix(self):
        """Dense ``(W1 @ W2) * mask``, shape (m, n); ``O(m n r)``."""
        return (self.W1 @ self.W2) * self.mask

    def entries(self):
        """Kept entries ``W[rows, cols]``, shape (nnz,), in ``O(r nnz)``."""
        return np.einsum("kr,rk->k", self.W1[self.rows], self.W2[:, self.cols])

    def matvec(self, x):
        """``W @ x`` without forming ``W1 @ W2``.

        Parameters
        ----------
        x : array_like, shape (n,) or (n, B)

        Returns
        -------
        ndarray, shape (m,) or (m, B)

        Notes
        -----
        ``O(r nnz + nnz B)`` time, ``O(nnz B)`` memory.
        """
        x = np.asarray(x, dtype=float)
        n = self.shape[1]
        if x.ndim not in (1, 2) or x.shape[0] != n:
            raise ValueError(f"x must have shape ({n},) or ({n}, B), got {x.shape}")
        w = self.entries()
        contrib = w * x[self.cols] if x.ndim == 1 else w[:, None] * x[self.cols]
        out = np.zeros((self.shape[0],) + x.shape[1:])
        np.add.at(out, self.rows, contrib)
        return out

    def to_tensor_network(self):
        """quimb network of ``W``: ``W1``, ``W2`` on a bond ``k`` of size ``r``, the mask, and
        COPY tensors on the open indices ``i`` (rows) and ``j`` (columns).

        Returns
        -------
        quimb.tensor.TensorNetwork
            Five tensors; ``tn.contract(output_inds=("i", "j"))`` is :meth:`matrix`.
        """
        import quimb.tensor as qtn

        m, n = self.shape

        def copy3(size):
            t = np.zeros((size,) * 3)
            idx = np.arange(size)
            t[idx, idx, idx] = 1.0
            return t

        return qtn.TensorNetwork([
            qtn.Tensor(copy3(m), inds=("i", "i_w", "i_m"), tags={"COPY", "COPY_i"}),
            qtn.Tensor(copy3(n), inds=("j", "j_w", "j_m"), tags={"COPY", "COPY_j"}),
            qtn.Tensor(self.W1.copy(), inds=("i_w", "k"), tags={"W1"}),
            qtn.Tensor(self.W2.copy(), inds=("k", "j_w"), tags={"W2"}),
            qtn.Tensor(self.mask.astype(float), inds=("i_m", "j_m"), tags={"MASK"}),
        ])

    def spectral_radius(self):
        """``max |eigenvalue|`` of the (square) matrix; dense ``O(n^3)``."""
        m, n = self.shape
        if m != n:
            raise ValueError(f"the spectral radius needs a square matrix, got shape {(m, n)}")
        return float(np.max(np.abs(np.linalg.eigvals(self.matrix()))))

    def spectral_norm(self):
        """Largest singular value; dense ``O(m n min(m, n))``."""
        return float(np.linalg.norm(self.matrix(), 2))
