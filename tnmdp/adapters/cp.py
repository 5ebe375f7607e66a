"""The CP (PARAFAC) core shared by the adapters: entries, dense tensor, network, ALS fit.

A rank-``K`` CP tensor over ``N`` modes is a list of factor matrices ``F_i`` of shape
``(n_i, K)``::

    X[j_0, ..., j_{N-1}] = sum_k  F_0[j_0, k] F_1[j_1, k] ... F_{N-1}[j_{N-1}, k]

As a tensor network it is a star: every factor carries its mode index and one shared rank
index ``k``, a hyperedge (the COPY tensor on ``k`` left implicit, as quimb does)::

      j_0    j_1         j_{N-1}
       |      |             |
      F_0    F_1   ...   F_{N-1}
        \\     |            /
         +----- k --------+          K * sum_i n_i numbers instead of prod_i n_i

Every adapter builds on these functions (:mod:`tnmdp.adapters.parafac`,
:mod:`tnmdp.adapters.qtensor`, :mod:`tnmdp.adapters.qtensor_learn`):

* :func:`row_products` -- ``prod_i F_i[j_i, :]`` for a batch of index tuples, with the
  leave-one-out products that every gradient needs (``d X / d F_i[j_i, :]``);
* :func:`cp_full` -- the dense tensor (one reconstruction, Khatri-Rao products);
* :func:`cp_network` -- the quimb network (one way of building the star);
* :func:`cp_als` -- alternating least squares (Kolda & Bader, "Tensor Decompositions and
  Applications", SIAM Review 51 (2009), Sect. 3.4), e.g. to measure how well an exact optimal
  policy or Q-tensor from :func:`tnmdp.solve` is described by a rank-``K`` CP form.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..model import _check_int, as_rng

__all__ = ["CPFit", "cp_als", "cp_full", "cp_network", "row_products"]


def _check_positive_int(name, value, minimum=1):
    """``int(value)`` for an int ``>= minimum`` (TypeError / ValueError naming ``name``)."""
    return _check_int(name, value, minimum)


def cp_full(factors):
    """Dense tensor of CP factors ``[(n_0, K), ..., (n_{N-1}, K)]``, shape ``(n_0, ...)``.

    Notes
    -----
    Cost and memory ``O(K prod_i n_i)``: for small tensors, tests and plots.
    """
    return _khatri_rao(factors).sum(axis=1).reshape([f.shape[0] for f in factors])


def row_products(rows, *, leave_one_out=False):
    """Products of factor rows, and optionally the products leaving one factor out.

    Parameters
    ----------
    rows : sequence of ndarray, each shape (..., K)
        ``rows[i] = F_i[j_i, :]`` gathered for a batch of index tuples (any common leading
        shape ``B``; ``N = len(rows) >= 1``).
    leave_one_out : bool, optional
        Also return ``loo[..., i, :] = prod_{i' != i} rows[i']``.

    Returns
    -------
    prod : ndarray, shape (..., K)
        ``prod_i rows[i]``; summed over ``k`` it is the CP entry ``X[j_0, ..., j_{N-1}]``.
    loo : ndarray, shape (..., N, K)
        Only with ``leave_one_out``: ``d prod / d rows[i]``, the gradient of an entry by the
        row ``F_i[j_i, :]``.

    Notes
    -----
    ``O(B N K)``: prefix products times suffix products, no division (factor entries may be
    zero).
    """
    n = len(rows)
    if not leave_one_out:
        out = rows[0]
        for r in rows[1:]:
            out = out * r
        return out
    first = np.asarray(rows[0])
    loo = np.empty(first.shape[:-1] + (n, first.shape[-1]),
                   dtype=np.result_type(*rows))
    loo[..., 0, :] = 1.0
    for i in range(1, n):  # prefix products, then times the suffix products
        np.multiply(loo[..., i - 1, :], rows[i - 1], out=loo[..., i, :])
    suffix = rows[n - 1]
    for i in range(n - 2, -1, -1):
        loo[..., i, :] *= suffix
        suffix = suffix * rows[i]
    return suffix, loo


def cp_network(factors, index_names, tags=None, *, rank_index="k"):
    """The CP form as a quimb ``TensorNetwork``: one tensor per factor, one shared rank index.

    Parameters
    ----------
    factors : sequence of ndarray, each shape (n_i, K)
        Copied into the network.
    index_names : sequence of str
        Open index of each factor.
    tags : sequence of str, optional
        One tag per factor (default the index names in upper case); a tag may also be a set.
    rank_index : str, optional
        Name of the shared rank index (a hyperindex when there are more than two factors).

    Returns
    -------
    quimb.tensor.TensorNetwork
        Tensors with indices ``(index_names[i], rank_index)``;
        ``tn.contract(output_inds=index_names)`` equals :func:`cp_full` entry by entry.
    """
    import quimb.tensor as qtn

    if len(index_names) != len(factors):
        raise ValueError(f"index_names has {len(index_names)} names; there are {len(factors)} "
                         "factors")
    if tags is None:
        tags = [name.upper() for name in index_names]
    return qtn.TensorNetwork([
        qtn.Tensor(np.array(f, copy=True), inds=(name, rank_index),
                   tags=tag if isinstance(tag, (set, frozenset)) else {tag})
        for f, name, tag in zip(factors, index_names, tags)])


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
