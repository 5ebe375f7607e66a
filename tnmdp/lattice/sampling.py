"""Exact sampling of the Doob-conditioned (tilted) process from MPS right environments.

The tilted path law of ``n`` uniformised steps is::

    p_s(x_0, ..., x_n) = p0(x_0) prod_t P_s[x_{t+1}, x_t] / Z_n(s),

a Markov chain with the time-dependent Doob kernels (Chetrite & Touchette, Ann. Henri Poincaré
16, 2005 (2015))::

    P^h_t(y | x) = P_s[y, x] h_{t+1}(y) / h_t(x),      h_t = (P_s^T)^{n-t} 1,

and ``x_0`` drawn from ``p0(x) h_0(x) / Z``. Following Causer, Bañuls & Garrahan (PRE 104,
014130 (2021)), the ``h_t`` are stored as MPS (:func:`tnmdp.lattice.partition.right_environments`)
and each ``y`` is drawn *site by site*: for a given ``x`` the column ``P_s[:, x]`` is an MPS of
the MPO's bond dimension, its element-wise product with ``h_{t+1}`` is a non-negative MPS, and
it is sampled linearly (not ``|psi|^2``) with right environments. All samples advance together
(arrays batched over samples).

When the environments are truncated they are approximate, so the draws come from a proposal
``q`` close to ``p_s``; every trajectory carries its exact log importance weight::

    log w = log p0(x_0) + sum_t log P_s[x_{t+1}, x_t] - log q(path) - log Z_est,

with ``Z_est = <h_0|p0>`` from the same environments: ``w = 1`` to rounding when nothing was
truncated, and self-normalised weights correct any truncation. Negative environment entries
(possible after truncation) are set to 0 in the proposal and counted in ``n_negative``.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np

from . import mps as _mps
from .partition import _check_common, right_environments, transfer_operators

__all__ = ["ConditionedSamples", "sample"]


@dataclass(frozen=True)
class ConditionedSamples:
    """Trajectories of the conditioned process.

    Attributes
    ----------
    trajectories : ndarray, shape (n_samples, n_steps + 1, L), int8
        ``trajectories[k, t, i] = x_i(t)``.
    log_weights : ndarray, shape (n_samples,)
        Log importance weights (0 to rounding when the environments are exact).
    log_partition : float
        ``log Z_est`` from the environments.
    truncation_error : float
        Summed discarded weight of the environments.
    max_bond_used : int
    n_negative : int
        Negative proposal weights set to 0 (truncation artefacts; 0 when exact).
    dt : float or None
    """

    trajectories: np.ndarray
    log_weights: np.ndarray
    log_partition: float
    truncation_error: float
    max_bond_used: int
    n_negative: int
    dt: float | None


def _log_chain(factors):
    """``log`` of ``1^T M_0[k] M_1[k] ... 1`` per sample ``k`` (``-inf`` where ``<= 0``).

    ``factors``: per site an array ``(n, Dl, Dr)``; the running row vector is rescaled at every
    site so long chains neither under- nor overflow.
    """
    vec, log_scale = None, None
    for m in factors:
        if vec is None:
            vec, log_scale = np.ones((m.shape[0], 1)), np.zeros(m.shape[0])
        vec = np.einsum("na,nab->nb", vec, m)
        scale = np.abs(vec).max(axis=1)
        scale[scale == 0] = 1.0
        vec = vec / scale[:, None]
        log_scale += np.log(scale)
    value = vec[:, 0]
    with np.errstate(divide="ignore"):
        return np.where(value > 0, log_scale + np.log(np.where(value > 0, value, 1.0)), -np.inf)


def _log_mps_values(mps, configs):
    """``log psi(x)`` for each row of ``configs`` (``-inf`` where ``psi(x) <= 0``)."""
    return _log_chain(a[:, configs[:, i], :].transpose(1, 0, 2) for i, a in enumerate(mps))


def _log_transfer_elements(mpo, y, x):
    """``log P[y_k, x_k]`` for each sample ``k`` (``-inf`` for 0)."""
    return _log_chain(w[:, :, y[:, i], x[:, i]].transpose(2, 0, 1) for i, w in enumerate(mpo))


def _draw(probs, rng):
    """One index per row of ``probs`` (rows sum to 1)."""
    u = rng.random(probs.shape[0])[:, None]
    return np.minimum((np.cumsum(probs, axis=1) < u).sum(axis=1), probs.shape[1] - 1)


def _with_environment(h, r):
    """``u[k, y, c, a] = sum_d h[a, y, d] r[k, c, d]``, shape ``(n, Y, C, A)``: one BLAS
    product with the shared environment site ``h`` (``(A, Y, D)``) for all samples."""
    n, C, D = r.shape
    A, Y, _ = h.shape
    u = r.reshape(n * C, D) @ h.transpose(2, 1, 0).reshape(D, Y * A)
    return u.reshape(n, C, Y, A).transpose(0, 2, 1, 3)


def _step(mpo, h, x, rng):
    """Draw ``y ~ P_s[y, x] h(y)`` site by site for every sample; return ``y, log q, n_neg``.

    Per site and sample the contractions are a product with the shared environment site
    (:func:`_with_environment`, one BLAS call for all samples) and batched products with the
    sample's MPO column (``np.matmul``): ``O(n d Dw chi^2)`` per site.
    """
    n, L = x.shape
    rows = np.arange(n)
    # column MPS of P_s at x, per sample: C_i[k, b, y, b'] = W_i[b, b', y, x_i[k]]
    cols = [w[:, :, :, x[:, i]].transpose(3, 0, 2, 1) for i, w in enumerate(mpo)]
    rights = [None] * (L + 1)
    r = np.ones((n, 1, 1))
    rights[L] = r
    for i in range(L - 1, 0, -1):  # r[k, b, a] = sum_{y, c} C_i[k, b, y, c] u[k, y, c, a]
        u = _with_environment(h[i], r)
        B, Y, C = cols[i].shape[1:]
        r = np.matmul(cols[i].reshape(n, B, Y * C), u.reshape(n, Y * C, -1))
        r = r / np.abs(r).max(axis=(1, 2), keepdims=True)
        rights[i] = r
    y = np.zeros((n, L), dtype=np.int8)
    logq = np.zeros(n)
    n_negative = 0
    left = np.ones((n, 1, 1))
    for i in range(L):
        # cond[k, y] = sum_{a, b, c} left[k, b, a] C_i[k, b, y, c] u[k, y, c, a]
        B, Y, C = cols[i].shape[1:]
        u = _with_environment(h[i], rights[i + 1])
        v = np.matmul(left.transpose(0, 2, 1), cols[i].reshape(n, B, Y * C))  # (n, A, Y C)
        cond = np.einsum("kayc,kyca->ky", v.reshape(n, -1, Y, C), u)
        neg = cond < 0
        if neg.any():
            n_negative += int(neg.sum())
            cond = np.where(neg, 0.0, cond)
        p = cond / cond.sum(axis=1, keepdims=True)
        yi = _draw(p, rng)
        y[:, i] = yi
        logq += np.log(p[rows, yi])
        # left[k, c, d] = sum_{b, a} left[k, b, a] C_i[k, b, y_k, c] h_i[a, y_k, d]
        picked = cols[i][rows, :, yi, :]  # (n, B, C)
        left = np.matmul(np.matmul(picked.transpose(0, 2, 1), left),
                         h[i][:, yi, :].transpose(1, 0, 2))
        left = left / np.abs(left).max(axis=(1, 2), keepdims=True)
    return y, logq, n_negative


def sample(process, s, n_steps, n_samples, *, rng=None, max_bond=64, cutoff=1e-12, dt=None):
    """Trajectories of the process conditioned by (tilted with) ``exp(-s K)``, drawn exactly.

    Parameters
    ----------
    process : LatticeProcess
    s : float
        Counting field (ignored by discrete-time processes).
    n_steps : int
        Number of uniformised (or discrete) steps ``n``.
    n_samples : int
    rng : numpy.random.Generator or int or None
    max_bond, cutoff, dt :
        As :func:`tnmdp.lattice.log_partition`.

    Returns
    -------
    ConditionedSamples

    Notes
    -----
    Memory: all ``n + 1`` environments, ``O(n L d chi^2)``. Time: the backward pass of
    :func:`tnmdp.lattice.log_partition` plus ``O(n L n_samples d Dw^2 chi^2)`` for the draws.
    """
    _check_common(process, s, n_steps, max_bond, cutoff)
    if not isinstance(n_samples, numbers.Integral) or isinstance(n_samples, bool) or n_samples < 1:
        raise ValueError(f"n_samples must be an int >= 1, got {n_samples!r}")
    rng = np.random.default_rng(rng)
    envs, log_norms, error, biggest, dt = right_environments(
        process, s, n_steps, dt=dt, max_bond=max_bond, cutoff=cutoff)
    forward, _, _ = transfer_operators(process, s, dt)
    logz, sign = _mps.log_inner(envs[0], process.initial)
    log_z = log_norms[0] + logz if sign > 0 else -np.inf
    first = _mps.hadamard(process.initial, envs[0])
    x, logq, n_negative = _mps.sample_configurations(first, n_samples, rng)
    log_p = _log_mps_values(process.initial, x)
    out = np.empty((n_samples, n_steps + 1, process.n_sites), dtype=np.int8)
    out[:, 0] = x
    for t in range(n_steps):
        y, lq, neg = _step(forward, envs[t + 1], x, rng)
        log_p += _log_transfer_elements(forward, y, x)
        logq += lq
        n_negative += neg
        out[:, t + 1] = y
        x = y
    return ConditionedSamples(out, log_p - logq - log_z, float(log_z), float(error), int(biggest),
                              int(n_negative), dt)
