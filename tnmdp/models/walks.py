"""Random walks on ``{-T..T}`` conditioned on their path: excursions, bridges, meanders.

The walker starts at 0 and moves down (action 0) or up (action 1); state index ``x + T``.
With environment noise a move goes the other way with probability ``noise``. Moves off the
lattice (unreachable within ``T`` steps from 0) stay put. The condition is expressed either as
the paper's penalty rewards (Gillman, Rose & Garrahan 2020, Sect. 5.1) or as hard constraints:
reward ``-inf`` on forbidden moves and ends, ``0`` otherwise, so that

* ``log_partition(mdp)`` is the log probability of the event under the unconditioned walk
  (``log(#admissible paths / 2^T)`` for the symmetric walk without noise);
* ``solve(mdp, temperature=1)`` is the KL-regularised optimum: without noise, the
  Doob-conditioned walk (uniform over admissible paths); with noise, the best a policy can do
  (``doob_transform`` gives the conditioned process, which a policy cannot reach).

The unconditioned walk is the reference policy: uniform by default, or biased with
``reference_policy=walk_reference(T, p_up)``.

Closed forms, for tests and plots: the numbers of admissible paths of the symmetric walk are the
Catalan numbers (excursions of ``T = 2n`` steps: ``C_n``), central binomials (bridges:
``binom(T, T/2)``), ``binom(T, floor(T/2))`` (meanders) and ballot numbers (ending at ``h``
above a floor ``m <= 0``: ``binom(T, (T+h)/2) - binom(T, (T+h)/2 - h + m - 1)``).
"""

from __future__ import annotations

import math
import numbers
from math import comb

import numpy as np
import scipy.sparse as sp

from ..model import FiniteMDP
from ..policy import Policy

__all__ = ["conditioned_walk", "excursion", "bridge", "meander", "walk_positions",
           "walk_reference", "admissible", "log_path_count", "conditioned_density"]


def walk_positions(horizon):
    """Positions ``x = -T..T`` of the states, shape ``(2T+1,)``."""
    return np.arange(-horizon, horizon + 1)


def _check_horizon(horizon):
    if isinstance(horizon, bool) or not isinstance(horizon, numbers.Integral) or horizon < 1:
        raise ValueError(f"horizon must be an int >= 1, got {horizon!r}")
    return int(horizon)


def walk_reference(horizon, p_up=0.5):
    """The unconditioned walk as a reference policy: up with probability ``p_up`` everywhere.

    Parameters
    ----------
    horizon : int
    p_up : float
        In ``(0, 1)`` (a reference must give every move positive probability for the KL term
        to stay finite).

    Returns
    -------
    Policy
        Shape ``(T, 2T+1, 2)``, stored as one shared ``(S, 2)`` site.

    Examples
    --------
    >>> import tnmdp
    >>> from tnmdp.models.walks import excursion, walk_reference
    >>> ref = walk_reference(10, 0.6)
    >>> logz = tnmdp.log_partition(excursion(10, hard=True), reference_policy=ref)
    >>> round(float(logz), 6)  # log(42 * 0.6^5 * 0.4^5): every excursion has 5 up moves
    -3.397912
    """
    T = _check_horizon(horizon)
    if not (isinstance(p_up, numbers.Real) and 0.0 < p_up < 1.0):
        raise ValueError(f"p_up must be a probability in (0, 1), got {p_up!r}")
    site = np.tile([1.0 - float(p_up), float(p_up)], (2 * T + 1, 1))
    return Policy([site] * T, 2 * T + 1, 2)


def admissible(states, horizon, *, floor=None, end=None):
    """Which sampled paths satisfy the walk's condition.

    Parameters
    ----------
    states : array_like of int, shape (n, T+1)
        State indices (``x + T``), e.g. ``tnmdp.sample(...).states``.
    horizon : int
    floor, end : int, optional
        As for :func:`conditioned_walk`.

    Returns
    -------
    ndarray of bool, shape (n,)
    """
    x = np.asarray(states) - horizon
    ok = np.ones(x.shape[0], dtype=bool)
    if floor is not None:
        ok &= (x[:, 1:] >= floor).all(axis=1)
    if end is not None:
        ok &= x[:, -1] == end
    return ok


def log_path_count(horizon, *, floor=None, end=None):
    """``log`` of the number of ``+-1`` paths of ``T`` steps from 0 that satisfy the condition.

    Exact integer combinatorics (reflection principle), then one ``log``: the closed forms
    against which the tensor-network results are tested.

    Parameters
    ----------
    horizon : int
    floor : int, optional
        Must be ``<= 0``: paths stay ``>= floor`` at times ``1..T``.
    end : int, optional
        Paths end at ``end``.

    Returns
    -------
    float
        ``-inf`` when no path qualifies.
    """
    T = _check_horizon(horizon)
    if floor is not None and floor > 0:
        raise ValueError(f"floor must be <= 0 (the walk starts at 0), got {floor}")
    ends = range(-T, T + 1) if end is None else [end]
    total = 0
    for h in ends:
        if (T + h) % 2 or abs(h) > T or (floor is not None and h < floor):
            continue
        ups = (T + h) // 2
        count = comb(T, ups)
        if floor is not None:  # reflect at floor - 1: paths that touch it end at 2(floor-1) - h
            reflected = (T + 2 * (floor - 1) - h) // 2
            count -= comb(T, reflected) if 0 <= reflected <= T else 0
        total += count
    return math.log(total) if total else -math.inf


def _walk_transitions(horizon, noise):
    """CSR ``(S*2, S)``: action 0 moves down, 1 up; with prob. ``noise`` the other way."""
    S = 2 * horizon + 1
    x = np.arange(S)
    down, up = np.maximum(x - 1, 0), np.minimum(x + 1, S - 1)
    rows = np.concatenate([2 * x, 2 * x, 2 * x + 1, 2 * x + 1])
    cols = np.concatenate([down, up, up, down])
    vals = np.concatenate([np.full(S, 1 - noise), np.full(S, noise),
                           np.full(S, 1 - noise), np.full(S, noise)])
    P = sp.csr_matrix((vals, (rows, cols)), shape=(2 * S, S))
    P.eliminate_zeros()
    return P


def _log_paths(length, start, stop, floor):
    """``log`` number of ``+-1`` paths of ``length`` steps from ``start`` to ``stop`` (arrays)
    that stay ``>= floor`` (reflection at ``floor - 1``); ``-inf`` where there is none."""
    from scipy.special import gammaln

    def log_binom(n, k):
        ok = (k >= 0) & (k <= n) & ((n + k) == np.round(n + k))
        kk = np.where(ok, k, 0)
        return np.where(ok, gammaln(n + 1) - gammaln(kk + 1) - gammaln(n - kk + 1), -np.inf)

    length, start, stop = np.broadcast_arrays(*(np.asarray(v, dtype=float)
                                                 for v in (length, start, stop)))
    parity = (length + stop - start) % 2 == 0
    direct = np.where(parity, log_binom(length, (length + stop - start) / 2), -np.inf)
    if floor is None:
        return direct
    mirror = 2 * (floor - 1) - start  # paths touching floor - 1 <-> paths from the mirror image
    reflected = np.where(parity, log_binom(length, (length + stop - mirror) / 2), -np.inf)
    with np.errstate(divide="ignore", invalid="ignore"):
        diff = direct + np.log1p(-np.exp(reflected - direct))
    inside = (start >= floor) & (stop >= floor)
    return np.where(inside & np.isfinite(direct), diff, -np.inf)


def _log_free_paths(horizon, floor):
    """``log`` number of ``+-1`` paths of ``n`` steps from ``x`` that stay ``>= floor``, any end.

    Returns an array of shape ``(T+1, 2T+1)``: row ``n``, column ``x + T``. By reflection, the
    paths from height ``h = x - floor >= 0`` that stay ``>= 0`` number
    ``sum_{y=-h}^{h+1} binom(n, (n+y)/2)``, accumulated over ``h`` in log space (each window is
    the previous one plus its two end terms): ``O(T^2)`` time and memory.
    """
    from scipy.special import gammaln

    n = np.arange(horizon + 1, dtype=float)[:, None]
    if floor is None:
        return np.broadcast_to(n * np.log(2.0), (horizon + 1, 2 * horizon + 1))

    def log_terms(y):  # log binom(n, (n + y) / 2), -inf off parity or out of range
        k = (n + y) / 2
        ok = (k >= 0) & (k <= n) & (k == np.round(k))
        kk = np.where(ok, k, 0)
        return np.where(ok, gammaln(n + 1) - gammaln(kk + 1) - gammaln(n - kk + 1), -np.inf)

    h = np.arange(2 * horizon + 1, dtype=float)[None, :]
    increments = np.logaddexp(log_terms(-h), log_terms(h + 1))
    by_height = np.logaddexp.accumulate(increments, axis=1)  # (T+1, 2T+1) over h
    height = walk_positions(horizon) - floor
    out = np.full((horizon + 1, 2 * horizon + 1), -np.inf)
    ok = height >= 0
    out[:, ok] = by_height[:, np.minimum(height[ok], 2 * horizon)]
    return out


def conditioned_density(horizon, *, floor=None, end=None):
    """Exact ``Pr(x_t = x | condition)`` of the symmetric walk without noise, shape ``(T+1, S)``.

    The Doob-conditioned walk is uniform over admissible paths, so the density is
    ``#(paths 0 -> x in t steps) * #(paths x -> end in T - t steps) / #(paths)`` with counts from
    the reflection principle (closed forms, independent of the tensor network): the reference
    against which ``tnmdp.marginals`` of a conditioned walk is plotted and tested.

    Parameters
    ----------
    horizon : int
    floor : int, optional
        ``<= 0``; the walk stays ``>= floor`` at times ``1..T``.
    end : int, optional

    Returns
    -------
    ndarray, shape (T+1, 2T+1)
        Row ``t`` over states ``x + T``.

    Notes
    -----
    ``O(T^2)`` floating-point work (log-gamma) and memory (the output), accurate to ~1e-12
    relative for ``T <= 10^4``.
    """
    T = _check_horizon(horizon)
    if floor is not None and floor > 0:
        raise ValueError(f"floor must be <= 0 (the walk starts at 0), got {floor}")
    t = np.arange(T + 1)[:, None]
    x = walk_positions(T)[None, :]
    log_prefix = _log_paths(t, 0, x, floor)
    log_prefix[1:] = np.where(x < (floor if floor is not None else -np.inf), -np.inf,
                              log_prefix[1:])
    if end is None:  # paths of T - t steps from x with a free end
        log_suffix = _log_free_paths(T, floor)[T - t[:, 0]]
    else:
        log_suffix = _log_paths(T - t, x, end, floor)
    log_joint = log_prefix + log_suffix
    total = log_path_count(T, floor=floor, end=end)
    if not np.isfinite(total):
        raise ValueError(f"no path of {T} steps satisfies floor={floor}, end={end}")
    return np.exp(log_joint - total)


def conditioned_walk(horizon, *, floor=None, end=None, p_up=None, noise=0.0, hard=False,
                     penalty=-1.0, end_reward=1.0, end_penalty=-10.0):
    """A random walk whose reward encodes a path condition.

    Parameters
    ----------
    horizon : int
        Number of steps ``T``.
    floor : int, optional
        The walk must stay at or above this height at every time ``1..T``.
    end : int, optional
        The walk must end at this height at ``T``.
    p_up : None
        Not a parameter of the MDP: a biased *unconditioned* walk is a reference policy, the
        same for every condition, so it is passed where the KL term or the tilted network
        needs it -- ``reference_policy=walk_reference(T, p_up)`` in :func:`tnmdp.solve`,
        :func:`tnmdp.log_partition` and :func:`tnmdp.doob_transform`. Any other value raises
        ``ValueError`` with that advice.
    noise : float
        Probability that a move goes the other way (environment noise), in ``[0, 1/2]``.
    hard : bool
        ``True``: reward ``-inf`` on forbidden moves and ends, 0 otherwise. ``False``: the
        paper's penalties: ``penalty`` per step below the floor, and at the end ``end_reward``
        at the right height, ``end_penalty`` elsewhere (replacing that step's floor reward).

    Returns
    -------
    FiniteMDP
        Sparse, stationary transitions; an arrival reward ``(1, 1, S)`` plus terminal rewards.
    """
    T = _check_horizon(horizon)
    if p_up is not None:
        raise ValueError(f"p_up={p_up!r}: the unconditioned walk is a reference policy, not part "
                         f"of the MDP; pass reference_policy=walk_reference({T}, {p_up!r}) to "
                         "solve, log_partition or doob_transform")
    if not (isinstance(noise, numbers.Real) and 0.0 <= noise <= 0.5):
        raise ValueError(f"noise must be a number in [0, 0.5], got {noise!r}")
    x = walk_positions(T)
    below = np.zeros(x.size) if floor is None else (x < floor).astype(float)
    off_end = np.zeros(x.size) if end is None else (x != end).astype(float)
    if hard:
        step = np.where(below > 0, -np.inf, 0.0)
        terminal = np.where(off_end > 0, -np.inf, 0.0)
    else:
        step = penalty * below
        # the paper replaces the last step's reward by the end reward: terminal = end - step
        final = end_reward * (1 - off_end) + end_penalty * off_end if end is not None else step
        terminal = final - step
    return FiniteMDP(_walk_transitions(T, noise), step[None, None, :], T, T,
                     terminal_rewards=terminal)


def excursion(horizon, **kwargs):
    """The paper's excursion: stay ``>= 0``, end at 0 (``T`` even for a non-empty event)."""
    return conditioned_walk(horizon, floor=0, end=0, **kwargs)


def bridge(horizon, **kwargs):
    """A bridge: end at 0, no floor."""
    return conditioned_walk(horizon, end=0, **kwargs)


def meander(horizon, **kwargs):
    """A meander: stay ``>= 0``, free end."""
    return conditioned_walk(horizon, floor=0, **kwargs)
