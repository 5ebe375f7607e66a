"""Array-level MPS/MPO primitives for lattice processes, in log space.

A state of ``L`` sites of local dimension ``d`` is a list of ``L`` arrays (the MPS)::

    A_0[1, x_0, a_1] A_1[a_1, x_1, a_2] ... A_{L-1}[a_{L-1}, x_{L-1}, 1]      shape (Dl, d, Dr)

and an operator a list of ``L`` arrays (the MPO, quimb's ``"lrud"`` layout, ``u`` = output)::

    W_i[b_i, b_{i+1}, y_i, x_i]                                             shape (Dl, Dr, d, d)

with dummy bonds of size 1 at both ends, so every loop treats the end sites like the others.
Flat objects (:func:`mps_to_dense`, :func:`mpo_to_dense`) use the lattice convention: flat index
``sum_i x_i d^i``, site 0 least significant.

Probability vectors and partition functions grow or shrink exponentially in time and in ``L``.
Every routine here therefore keeps its tensors of order one and returns logarithms:

- :func:`apply_mpo` contracts ``W |psi>`` site by site (bond ``Dl * Dw``), brings the result to
  left-canonical form by QR (left to right) and truncates it by SVD (right to left) with a
  ``max_bond`` and a relative ``cutoff`` on the singular values (Schollwöck, Ann. Phys. 326, 96 (2011),
  Sect. 4.5). It returns the 2-norm-normalised result, ``log ||W psi||`` and the *discarded
  weight*: the sum over bonds of the squared singular values dropped, relative to the squared
  norm. For sequential SVD truncation ``||psi - psi_trunc||_2^2 <= sum of the discarded weights``
  (Oseledets, SIAM J. Sci. Comput. 33, 2295 (2011), Thm 2.2), the honest error estimate every
  caller reports.
- :func:`log_inner` and :func:`log_expectation` contract ``<a|b>`` and ``<a|W|b>`` with a left
  environment renormalised at every site, returning ``(log|value|, sign)``.
- :func:`local_expectations` gives ``<a|O_i|b> / <a|b>`` for a one-site operator at every site.
- :func:`sample_configurations` draws configurations from a *non-negative* MPS read as an
  unnormalised probability (linearly, not ``|psi|^2``: Causer, Bañuls & Garrahan, PRE 2021), site
  by site from left to right using right environments.

quimb objects are produced only at the edges (:func:`to_quimb_mps`, :func:`to_quimb_mpo`); these
kernels work on plain numpy arrays.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["ApplyResult", "product_mps", "apply_mpo", "compress", "log_inner", "log_expectation",
           "local_expectations", "hadamard", "mps_to_dense", "mpo_to_dense", "to_quimb_mps",
           "to_quimb_mpo", "sample_configurations", "max_bond_of"]


@dataclass(frozen=True)
class ApplyResult:
    """Result of :func:`apply_mpo` / :func:`compress`.

    Attributes
    ----------
    mps : list of ndarray
        The result, normalised to 2-norm 1 (last-site gauge: sites ``1..L-1`` right-canonical).
    log_norm : float
        ``log ||W psi||_2`` of the truncated result before normalisation (``-inf`` if it is 0).
    discarded_weight : float
        Sum over bonds of the discarded squared singular values relative to the squared norm;
        bounds the squared 2-norm error of the normalised state.
    max_bond : int
        Largest bond dimension of ``mps``.
    """

    mps: list
    log_norm: float
    discarded_weight: float
    max_bond: int


def max_bond_of(mps):
    """Largest bond dimension of an MPS or MPO given as a list of arrays."""
    return max(max(a.shape[0], a.shape[-1] if a.ndim == 3 else a.shape[1]) for a in mps)


def product_mps(probs):
    """The product state ``prod_i probs[i, x_i]`` as an MPS of bond dimension 1.

    Parameters
    ----------
    probs : array_like, shape (L, d)

    Returns
    -------
    list of L arrays of shape (1, d, 1)
    """
    probs = np.asarray(probs, dtype=np.float64)
    return [p.reshape(1, -1, 1).copy() for p in probs]


def _truncation_rank(s, max_bond, cutoff):
    """Number of singular values kept: those ``> cutoff * s[0]``, at most ``max_bond``, at least 1."""
    k = max(1, int((s > cutoff * s[0]).sum())) if s[0] > 0 else 1
    if max_bond is not None:
        k = min(k, int(max_bond))
    return k


def compress(mps, *, max_bond=None, cutoff=0.0):
    """Normalise and truncate an MPS (QR sweep left to right, SVD sweep right to left).

    Parameters
    ----------
    mps : list of ndarray, shapes (Dl, d, Dr)
        Not modified.
    max_bond : int or None
        Largest bond dimension kept (``None``: no limit).
    cutoff : float
        Singular values below ``cutoff * s_max`` are dropped at each bond (quimb's ``"rel"``
        mode): a dropped component has relative amplitude below ``cutoff``.

    Returns
    -------
    ApplyResult

    Notes
    -----
    Cost ``O(L d D^3)`` for bond dimension ``D``.
    """
    sites = [np.asarray(a, dtype=np.float64) for a in mps]
    L = len(sites)
    log_norm = 0.0
    for i in range(L - 1):  # left-canonical by QR, norms carried in log_norm
        dl, d, dr = sites[i].shape
        q, r = np.linalg.qr(sites[i].reshape(dl * d, dr))
        scale = np.abs(r).max()
        if scale == 0.0:
            return _zero_result(sites)
        sites[i] = q.reshape(dl, d, -1)
        nxt = sites[i + 1]
        sites[i + 1] = ((r / scale) @ nxt.reshape(nxt.shape[0], -1)).reshape(-1, *nxt.shape[1:])
        log_norm += np.log(scale)
    nrm = np.linalg.norm(sites[-1])
    if nrm == 0.0:
        return _zero_result(sites)
    sites[-1] = sites[-1] / nrm
    log_norm += np.log(nrm)
    discarded = 0.0
    for i in range(L - 1, 0, -1):  # right to left: truncate each bond in its Schmidt basis
        dl, d, dr = sites[i].shape
        u, s, vh = np.linalg.svd(sites[i].reshape(dl, d * dr), full_matrices=False)
        k = _truncation_rank(s, max_bond, cutoff)
        kept = float(np.dot(s[:k], s[:k]))
        discarded += float(np.dot(s[k:], s[k:])) / (kept + float(np.dot(s[k:], s[k:])))
        keep_norm = np.sqrt(kept)
        log_norm += np.log(keep_norm)
        sites[i] = vh[:k].reshape(k, d, dr)
        prev = sites[i - 1]
        sites[i - 1] = (prev.reshape(-1, prev.shape[2]) @ (u[:, :k] * (s[:k] / keep_norm))).reshape(
            prev.shape[0], prev.shape[1], k)
    return ApplyResult(sites, float(log_norm), float(discarded), max_bond_of(sites))


def _zero_result(sites):
    zero = [np.zeros((1, a.shape[1], 1)) for a in sites]
    return ApplyResult(zero, -np.inf, 0.0, 1)


def apply_mpo(mpo, mps, *, max_bond=None, cutoff=0.0):
    """``W |psi>`` compressed, normalised, with its log norm and discarded weight.

    Parameters
    ----------
    mpo : list of ndarray, shapes (Dl, Dr, d, d)
        ``W_i[b, b', y_i, x_i]``.
    mps : list of ndarray, shapes (Dl, d, Dr)
    max_bond, cutoff :
        As :func:`compress`.

    Returns
    -------
    ApplyResult
        ``result.mps`` times ``exp(result.log_norm)`` approximates ``W |psi>``.

    Notes
    -----
    Cost ``O(L d^2 D^3 Dw^3)``: the exact product (bond ``D * Dw``) is formed, then compressed.
    """
    if len(mpo) != len(mps):
        raise ValueError(f"mpo has {len(mpo)} sites but mps has {len(mps)}")
    product = []
    for w, a in zip(mpo, mps):
        # B[(l, m), y, (r, n)] = sum_x A[l, x, r] W[m, n, y, x]
        b = np.tensordot(a, w, axes=(1, 3)).transpose(0, 2, 4, 1, 3)  # l, m, y, r, n
        dl, dm, d, dr, dn = b.shape
        product.append(b.reshape(dl * dm, d, dr * dn))
    return compress(product, max_bond=max_bond, cutoff=cutoff)


def hadamard(a, b):
    """Element-wise product ``c(x) = a(x) b(x)`` of two MPS (bond ``Da * Db``)."""
    out = []
    for x, y in zip(a, b):
        c = np.einsum("lxr,mxn->lmxrn", x, y)
        dl, dm, d, dr, dn = c.shape
        out.append(c.reshape(dl * dm, d, dr * dn))
    return out


def log_expectation(bra, mpo, ket):
    """``<bra| W |ket>`` (no complex conjugation) as ``(log|value|, sign)``.

    Parameters
    ----------
    bra, ket : list of ndarray, shapes (Dl, d, Dr)
    mpo : list of ndarray, shapes (Dl, Dr, d, d) or None (identity)

    Returns
    -------
    (float, float)
        ``log|value|`` (``-inf`` for 0) and its sign (``+1``, ``-1`` or ``0``).

    Notes
    -----
    The left environment is rescaled to max-abs 1 at every site, so nothing under- or
    overflows. Cost ``O(L d^2 D^3 Dw)``.
    """
    env = np.ones((1, 1, 1))
    log_scale = 0.0
    for i in range(len(ket)):
        if mpo is None:
            env = np.einsum("amb,ayc,bye->cme", env, bra[i], ket[i], optimize=True)
        else:
            env = np.einsum("amb,ayc,mnyx,bxe->cne", env, bra[i], mpo[i], ket[i], optimize=True)
        scale = np.abs(env).max()
        if scale == 0.0:
            return -np.inf, 0.0
        env = env / scale
        log_scale += np.log(scale)
    value = float(env.reshape(()))
    return float(log_scale + np.log(abs(value))), float(np.sign(value))


def log_inner(bra, ket):
    """``<bra|ket>`` (no conjugation) as ``(log|value|, sign)``; see :func:`log_expectation`."""
    return log_expectation(bra, None, ket)


def local_expectations(bra, ket, op):
    """``<bra| O_i |ket> / <bra|ket>`` for the one-site operator ``O`` at every site ``i``.

    Parameters
    ----------
    bra, ket : list of ndarray, shapes (Dl, d, Dr)
    op : array_like, shape (d, d)
        ``O[y, x]``; e.g. ``diag(0, 1)`` gives the densities ``<n_i>``.

    Returns
    -------
    ndarray, shape (L,)

    Notes
    -----
    Left and right environments (each rescaled per site), cost ``O(L d^2 D^3)``.
    """
    op = np.asarray(op, dtype=np.float64)
    L = len(ket)
    lefts = [np.ones((1, 1))]
    for i in range(L - 1):
        e = np.einsum("ab,axc,bxe->ce", lefts[-1], bra[i], ket[i], optimize=True)
        lefts.append(e / np.abs(e).max())
    rights = [None] * L
    r = np.ones((1, 1))
    for i in range(L - 1, -1, -1):
        rights[i] = r
        r = np.einsum("axc,bxe,ce->ab", bra[i], ket[i], r, optimize=True)
        r = r / np.abs(r).max()
    out = np.empty(L)
    for i in range(L):
        num = np.einsum("ab,ayc,yx,bxe,ce->", lefts[i], bra[i], op, ket[i], rights[i], optimize=True)
        den = np.einsum("ab,axc,bxe,ce->", lefts[i], bra[i], ket[i], rights[i], optimize=True)
        out[i] = num / den
    return out


def mps_to_dense(mps):
    """The vector ``psi[sum_i x_i d^i]`` (site 0 least significant), shape ``(d^L,)``. Small L."""
    v = np.ones((1, 1))
    for a in mps:
        v = np.tensordot(v, a, axes=(-1, 0))
    v = v.reshape(v.shape[1:-1])  # axes x_0 .. x_{L-1}
    return v.reshape(-1, order="F")


def mpo_to_dense(mpo):
    """The matrix ``W[y_flat, x_flat]`` (site 0 least significant), ``(d^L, d^L)``. Small L."""
    L = len(mpo)
    t = np.ones((1,))
    for w in mpo:
        t = np.tensordot(t, w, axes=(-1, 0))  # (..., y_i, x_i, r) after moving r last
        t = np.moveaxis(t, -3, -1)
    t = t[..., 0]  # axes y_0, x_0, y_1, x_1, ...
    d = mpo[0].shape[2]
    t = t.reshape((d, d) * L)
    ys, xs = list(range(0, 2 * L, 2)), list(range(1, 2 * L, 2))
    t = t.transpose(ys[::-1] + xs[::-1])  # most significant first, C order
    return t.reshape(d ** L, d ** L)


def to_quimb_mps(mps):
    """A quimb ``MatrixProductState`` (site tags ``I{i}``, physical indices ``k{i}``)."""
    from quimb.tensor import MatrixProductState

    L = len(mps)
    if L == 1:
        raise ValueError("quimb needs at least 2 sites for a MatrixProductState")
    arrays = [mps[0][0].T] + [a.transpose(0, 2, 1) for a in mps[1:-1]] + [mps[-1][:, :, 0]]
    return MatrixProductState(arrays, shape="lrp")


def to_quimb_mpo(mpo):
    """A quimb ``MatrixProductOperator`` (upper indices ``k{i}`` = output ``y``)."""
    from quimb.tensor import MatrixProductOperator

    L = len(mpo)
    if L == 1:
        raise ValueError("quimb needs at least 2 sites for a MatrixProductOperator")
    arrays = [mpo[0][0]] + list(mpo[1:-1]) + [mpo[-1][:, 0]]
    return MatrixProductOperator(arrays, shape="lrud")


def sample_configurations(mps, n_samples, rng):
    """Draw configurations with probability ``psi(x) / sum_x psi(x)`` from a non-negative MPS.

    Parameters
    ----------
    mps : list of ndarray, shapes (Dl, d, Dr)
        Entries of the represented vector must be ``>= 0`` (an MPS with negative entries from
        truncation is handled: negative conditional weights are set to 0 and reported).
    n_samples : int
    rng : numpy.random.Generator

    Returns
    -------
    configurations : ndarray, shape (n_samples, L), int8
    log_proposal : ndarray, shape (n_samples,)
        ``log q(x)``: the log probability with which each configuration was drawn.
    n_negative : int
        How many conditional weights were negative (and set to 0); 0 for an exact MPS.

    Notes
    -----
    Right environments ``r_i = sum_{x_i..} A_i ... A_{L-1}`` once (``O(L d D^2)``); then each
    sample costs ``O(L d D^2)``: a left vector is carried and the conditional of ``x_i`` is
    ``l A_i[:, x_i, :] r_{i+1}``.
    """
    L = len(mps)
    rights = [None] * (L + 1)
    r = np.ones(1)
    rights[L] = r
    for i in range(L - 1, -1, -1):
        r = mps[i].sum(axis=1) @ r
        r = r / np.abs(r).max()
        rights[i] = r
    out = np.zeros((n_samples, L), dtype=np.int8)
    logq = np.zeros(n_samples)
    n_negative = 0
    left = np.ones((n_samples, 1))
    for i in range(L):
        cond = np.einsum("na,axb,b->nx", left, mps[i], rights[i + 1])
        neg = cond < 0
        if neg.any():
            n_negative += int(neg.sum())
            cond = np.where(neg, 0.0, cond)
        p = cond / cond.sum(axis=1, keepdims=True)
        u = rng.random(n_samples)[:, None]
        x = np.minimum((np.cumsum(p, axis=1) < u).sum(axis=1), p.shape[1] - 1)
        out[:, i] = x
        logq += np.log(p[np.arange(n_samples), x])
        left = np.einsum("na,anb->nb", left, mps[i][:, x, :])
        left = left / np.abs(left).max(axis=1, keepdims=True)
    return out, logq, n_negative
