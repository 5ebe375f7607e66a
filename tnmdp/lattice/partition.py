"""Finite-time tilted partition functions and Doob-conditioned densities by MPO–MPS products.

For a lattice process with one-step tilted transfer operator ``P_s`` (an MPO, see
:mod:`tnmdp.lattice.process`) and initial distribution ``p0`` (an MPS)::

    Z_n(s) = <1| P_s^n |p0>

          <1|   1   1   1   1        (product state, bond 1)
                |   |   |   |
               P_s P_s P_s P_s       } n layers of the MPO, time runs upward
                |   |   |   |
          |p0>  p0  p0  p0  p0

(``<1|`` is :meth:`~tnmdp.lattice.LatticeProcess.final_vector`: the all-ones state, or the
indicator of a conserved sector) is contracted layer by layer (Causer, Bañuls & Garrahan, PRL 128, 090605 (2022)). Forward:
``psi_{t+1} = P_s psi_t``; backward: ``h_t = P_s^T h_{t+1}`` from ``h_n = 1`` (the Doob
``h``-functions). Each product is compressed to ``max_bond`` / ``cutoff``
(:func:`tnmdp.lattice.mps.apply_mpo`) and renormalised to 2-norm 1, its log norm accumulated, so
``n_steps = 10^4`` neither overflows nor underflows. ``truncation_error`` is the summed
discarded weight of all compressions: each bounds the squared relative 2-norm error that step
adds to the environment (an honest estimate, zero when nothing was truncated; convergence in
``max_bond`` is shown in the tests and the benchmark). The discarded weight bounds a squared
2-norm error, so the error of ``log Z_n`` behaves like its square root (measured on East
``L = 64, n = 1000``: weight 1e-9 at bond 16, ``log Z`` 1.6e-5 away from bond 32).

The conditioned (Doob) process at time ``t`` has law ``rho_t(x) = h_t(x) psi_t(x) / Z_n``; its
densities are ``<n_i(t)> = <h_t| n_i |psi_t> / <h_t|psi_t>`` (:func:`doob_densities`).

Cost per step ``O(L d^2 chi^3 Dw^3)`` for bond dimension ``chi`` and MPO bond ``Dw``.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np

from . import mps as _mps
from .process import LatticeProcess

__all__ = ["PartitionResult", "DensityResult", "log_partition", "doob_densities",
           "right_environments", "transfer_operators"]


@dataclass(frozen=True)
class PartitionResult:
    """``log Z_n(s)`` with its error estimate.

    Attributes
    ----------
    value : float
        ``log Z_n(s)``.
    truncation_error : float
        Summed discarded weight of every compression (0 when exact).
    max_bond_used : int
        Largest bond dimension of any environment.
    n_steps : int
    dt : float or None
        Uniformisation step (``None`` for a discrete-time process).
    """

    value: float
    truncation_error: float
    max_bond_used: int
    n_steps: int
    dt: float | None


@dataclass(frozen=True)
class DensityResult:
    """Densities ``<n_i(t)>`` of the Doob-conditioned process.

    Attributes
    ----------
    densities : ndarray, shape (len(times), L)
    times : ndarray of int
    log_partition : PartitionResult
    """

    densities: np.ndarray
    times: np.ndarray
    log_partition: PartitionResult


def _check_common(process, s, n_steps, max_bond, cutoff):
    if not isinstance(process, LatticeProcess):
        raise TypeError(f"process must be a LatticeProcess, got {type(process).__name__}")
    if not isinstance(s, numbers.Real) or not np.isfinite(s):
        raise ValueError(f"s must be a finite real number, got {s!r}")
    if not isinstance(n_steps, numbers.Integral) or isinstance(n_steps, bool) or n_steps < 0:
        raise ValueError(f"n_steps must be an int >= 0, got {n_steps!r}")
    if not isinstance(max_bond, numbers.Integral) or isinstance(max_bond, bool) or max_bond < 1:
        raise ValueError(f"max_bond must be an int >= 1, got {max_bond!r}")
    if not isinstance(cutoff, numbers.Real) or not 0 <= cutoff < 1:
        raise ValueError(f"cutoff must be a number in [0, 1), got {cutoff!r}")


def transfer_operators(process, s, dt):
    """``(P_s, P_s^T, dt)`` as MPO site arrays; ``dt`` validated (``None`` for discrete time)."""
    if process.time == "continuous":
        dt = process.check_dt(dt)
    elif dt is not None:
        raise ValueError(f"dt does not apply to the discrete-time process {process.name!r}")
    forward = process.mpo_arrays(float(s), kind="transfer", dt=dt)
    backward = [w.transpose(0, 1, 3, 2) for w in forward]
    return forward, backward, dt


def log_partition(process, s, n_steps, *, dt=None, max_bond=64, cutoff=1e-12,
                  direction="forward"):
    """``log Z_n(s) = log <1| P_s^n |p0>`` by compressed MPO–MPS products in log space.

    Parameters
    ----------
    process : LatticeProcess
    s : float
        Counting field (ignored by discrete-time processes).
    n_steps : int
        ``n >= 0``.
    dt : float, optional
        Uniformisation step; default ``process.default_dt()``.
    max_bond : int
        Largest bond dimension kept.
    cutoff : float
        Largest relative weight discarded at each bond.
    direction : {"forward", "backward"}
        Propagate ``p0`` forward or ``<1|`` backward.

    Returns
    -------
    PartitionResult

    Notes
    -----
    Cost ``O(n L d^2 chi^3 Dw^3)``; memory ``O(L d chi^2 Dw)``.
    """
    _check_common(process, s, n_steps, max_bond, cutoff)
    if direction not in ("forward", "backward"):
        raise ValueError(f"direction must be 'forward' or 'backward', got {direction!r}")
    forward, backward, dt = transfer_operators(process, s, dt)
    ones = process.final_vector()
    state = process.initial if direction == "forward" else ones
    other = ones if direction == "forward" else process.initial
    op = forward if direction == "forward" else backward
    log_scale, error, biggest = 0.0, 0.0, _mps.max_bond_of(state)
    for _ in range(n_steps):
        res = _mps.apply_mpo(op, state, max_bond=max_bond, cutoff=cutoff)
        if res.log_norm == -np.inf:
            return PartitionResult(-np.inf, error, biggest, n_steps, dt)
        state, log_scale = res.mps, log_scale + res.log_norm
        error += res.discarded_weight
        biggest = max(biggest, res.max_bond)
    logv, sign = _mps.log_inner(other, state)
    value = log_scale + logv if sign > 0 else -np.inf
    return PartitionResult(float(value), float(error), int(biggest), int(n_steps), dt)


def right_environments(process, s, n_steps, *, dt=None, max_bond=64, cutoff=1e-12, keep=None):
    """The Doob ``h``-functions ``h_t = (P_s^T)^{n-t} 1`` as normalised MPS.

    Parameters
    ----------
    keep : iterable of int or None
        Times ``t`` whose ``h_t`` is stored (default all ``0..n``).

    Returns
    -------
    envs : dict {t: list of ndarray}
        ``h_t / ||h_t||``.
    log_norms : ndarray, shape (n+1,)
        ``log ||h_t||`` (of the compressed environments).
    error : float
        Summed discarded weight.
    biggest : int
        Largest bond dimension.
    dt : float or None
    """
    _check_common(process, s, n_steps, max_bond, cutoff)
    _, backward, dt = transfer_operators(process, s, dt)
    keep = set(range(n_steps + 1)) if keep is None else {int(t) for t in keep}
    h = _mps.compress(process.final_vector())
    state, log_norms = h.mps, np.zeros(n_steps + 1)
    log_norms[n_steps] = h.log_norm
    envs = {n_steps: state} if n_steps in keep else {}
    error, biggest = 0.0, 1
    for t in range(n_steps - 1, -1, -1):
        res = _mps.apply_mpo(backward, state, max_bond=max_bond, cutoff=cutoff)
        if res.log_norm == -np.inf:
            raise ValueError(f"Z_n(s) = 0 for {process.name!r}: h_{t} vanishes (the conditioning "
                             "event is impossible)")
        state = res.mps
        log_norms[t] = log_norms[t + 1] + res.log_norm
        error += res.discarded_weight
        biggest = max(biggest, res.max_bond)
        if t in keep:
            envs[t] = state
    return envs, log_norms, error, biggest, dt


def doob_densities(process, s, n_steps, *, times=None, dt=None, max_bond=64, cutoff=1e-12):
    """Densities ``<n_i(t)>`` of the conditioned (Doob) process at the given times.

    Parameters
    ----------
    process, s, n_steps, dt, max_bond, cutoff :
        As :func:`log_partition`.
    times : sequence of int, optional
        Times in ``0..n_steps`` (default all); the ``h_t`` at these times are stored.

    Returns
    -------
    DensityResult
        ``densities[k, i] = <h_t| n_i |psi_t> / <h_t|psi_t>`` at ``t = times[k]``, with
        ``n_i = diag(0, 1, ..., d-1)`` on site ``i``; its ``log_partition`` combines both passes'
        truncation errors.

    Notes
    -----
    Two passes (backward for ``h``, forward for ``psi``): twice the cost of
    :func:`log_partition`; memory ``O(len(times) L d chi^2)``.
    """
    _check_common(process, s, n_steps, max_bond, cutoff)
    times = np.arange(n_steps + 1) if times is None else np.asarray(times, dtype=int)
    if times.ndim != 1 or ((times < 0) | (times > n_steps)).any():
        raise ValueError(f"times must be a 1-D sequence of ints in 0..{n_steps}, got {times!r}")
    envs, log_norms, error, biggest, dt = right_environments(
        process, s, n_steps, dt=dt, max_bond=max_bond, cutoff=cutoff, keep=set(times) | {0})
    logv, sign = _mps.log_inner(envs[0], process.initial)
    log_value = log_norms[0] + logv if sign > 0 else -np.inf
    forward, _, _ = transfer_operators(process, s, dt)
    number = np.diag(np.arange(process.local_dim, dtype=np.float64))
    out = np.empty((len(times), process.n_sites))
    state = process.initial
    for t in range(n_steps + 1):
        hits = np.flatnonzero(times == t)
        if hits.size:
            out[hits] = _mps.local_expectations(envs[t], state, number)
        if t < n_steps:
            res = _mps.apply_mpo(forward, state, max_bond=max_bond, cutoff=cutoff)
            state = res.mps
            error += res.discarded_weight
            biggest = max(biggest, res.max_bond)
    result = PartitionResult(float(log_value), float(error), int(biggest), int(n_steps), dt)
    return DensityResult(out, times, result)
