"""CP (PARAFAC) decompositions of dense tensors: reconstruction and alternating least squares.

Shared by the PARAFAC policy adapter (:mod:`tnmdp.adapters.parafac`) and the multi-task
Q-tensor adapter (:mod:`tnmdp.adapters.qtensor`), e.g. to measure how well an exact optimal
policy or Q-tensor from :func:`tnmdp.solve` is described by a rank-``K`` CP form.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..model import _check_int, as_rng

__all__ = ["CPFit", "cp_als", "cp_full"]


def _check_positive_int(name, value):
    return _check_int(name, value, 1)


def cp_full(factors):
    """Dense tensor of CP factors ``[(n_0, K), ..., (n_{N-1}, K)]``, shape ``(n_0, ...)``."""
    return _khatri_rao(factors).sum(axis=1).reshape([f.shape[0] for f in factors])


@dataclass(frozen=True)
class CPFit:
    """Result of :func:`cp_als`.

    Attributes
    ----------
    factors : list of ndarray
        ``[(n_0, K), ..., (n_{N-1}, K)]``; the column norms are folded into the first factor.
    relative_error : float
        ``||X - X_hat||_F / ||X||_F``.
    n_iter : int
        ALS sweeps of the best start.
    success : bool
        Whether the best start's relative error changed by less than ``tol`` in a sweep.
    message : str
    """

    factors: list
    relative_error: float
    n_iter: int
    success: bool
    message: str

    def full(self):
        """The fitted dense tensor."""
        return cp_full(self.factors)


def _khatri_rao(factors):
    """Column-wise Kronecker product, rows in C order of the factors' indices."""
    rank = factors[0].shape[1]
    out = np.ones((1, rank))
    for f in factors:
        out = (out[:, None, :] * f[None, :, :]).reshape(-1, rank)
    return out


def _als_once(tensor, rank, factors, max_iter, tol):
    norm = np.linalg.norm(tensor)
    n_modes = tensor.ndim
    unfoldings = [np.moveaxis(tensor, n, 0).reshape(tensor.shape[n], -1) for n in range(n_modes)]
    previous, error, it = np.inf, np.inf, 0
    for it in range(1, max_iter + 1):
        for n in range(n_modes):
            others = factors[:n] + factors[n + 1:]
            gram = np.ones((rank, rank))
            for f in others:
                gram *= f.T @ f
            mttkrp = unfoldings[n] @ _khatri_rao(others)
            factors[n] = np.linalg.lstsq(gram, mttkrp.T, rcond=None)[0].T
            if n < n_modes - 1:  # keep the scale in the last factor updated
                col = np.linalg.norm(factors[n], axis=0)
                col[col == 0] = 1.0
                factors[n] = factors[n] / col
        error = np.linalg.norm(tensor - cp_full(factors)) / norm
        if abs(previous - error) < tol:
            return factors, float(error), it, True
        previous = error
    return factors, float(error), it, False


def cp_als(tensor, rank, *, n_starts=3, max_iter=500, tol=1e-10, rng=None):
    """Fit a rank-``K`` CP decomposition to a dense tensor by alternating least squares.

    Parameters
    ----------
    tensor : array_like, shape (n_0, ..., n_{N-1}), N >= 2
        Real, finite, not identically zero.
    rank : int
        CP rank ``K >= 1``.
    n_starts : int, optional
        Starts: the first from the leading left singular vectors of each unfolding (HOSVD,
        padded with random columns when ``K > n_i``), the others random; the best is kept.
    max_iter : int, optional
        ALS sweeps per start.
    tol : float, optional
        Stop a start when the relative error changes by less than ``tol`` in a sweep.
    rng : numpy.random.Generator or int or None, optional

    Returns
    -------
    CPFit

    Notes
    -----
    One sweep costs ``O(N K prod_i n_i)`` (one MTTKRP per mode) plus ``O(N K^3)``. ALS finds
    a local optimum; the best of ``n_starts`` starts is an upper bound on the best rank-``K``
    error.
    """
    arr = np.asarray(tensor, dtype=np.float64)
    if arr.ndim < 2:
        raise ValueError(f"tensor must have at least 2 dimensions, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError("tensor holds non-finite values (nan or inf)")
    if not np.any(arr):
        raise ValueError("tensor is identically zero")
    rank = _check_positive_int("rank", rank)
    n_starts = _check_positive_int("n_starts", n_starts)
    max_iter = _check_positive_int("max_iter", max_iter)
    gen = as_rng(rng)
    best = None
    for start in range(n_starts):
        factors = []
        for n, size in enumerate(arr.shape):
            init = gen.standard_normal((size, rank))
            if start == 0:
                u = np.linalg.svd(np.moveaxis(arr, n, 0).reshape(size, -1),
                                  full_matrices=False)[0]
                m = min(rank, u.shape[1])
                init[:, :m] = u[:, :m]
            factors.append(init)
        result = _als_once(arr, rank, factors, max_iter, tol)
        if best is None or result[1] < best[1]:
            best = result
    factors, error, n_iter, ok = best
    message = ("relative error converged" if ok
               else f"max_iter={max_iter} sweeps reached before the error settled")
    return CPFit(factors=list(factors), relative_error=error, n_iter=n_iter, success=ok,
                 message=message)
