"""Random walks on ``{-T..T}`` conditioned on their path: excursions, bridges, meanders.

The walker starts at 0 and moves down (action 0) or up (action 1); state index ``x + T``.
Moves off the lattice (unreachable within ``T`` steps from 0) stay put. The condition is
expressed either as the paper's penalty rewards (Gillman, Rose & Garrahan 2020, Sect. 5.1) or as
hard constraints: reward ``-inf`` on forbidden moves and ends, ``0`` otherwise, so that
``log_partition`` at ``temperature = 1`` is the log probability of the event under the
uniform walk and the KL-regularised optimum is the Doob-conditioned walk.
"""

from __future__ import annotations

import numbers

import numpy as np
import scipy.sparse as sp

from ..model import FiniteMDP

__all__ = ["conditioned_walk", "excursion", "bridge", "meander", "walk_positions"]


def walk_positions(horizon):
    """Positions ``x = -T..T`` of the states, shape ``(2T+1,)``."""
    return np.arange(-horizon, horizon + 1)


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
    p_up : float, optional
        Reserved for a biased reference walk: use ``reference_policy`` in
        :func:`tnmdp.solve`/:func:`tnmdp.log_partition` (the walk's own dynamics are the
        actions); must be ``None``.
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
    if isinstance(horizon, bool) or not isinstance(horizon, numbers.Integral) or horizon < 1:
        raise ValueError(f"horizon must be an int >= 1, got {horizon!r}")
    if p_up is not None:
        raise ValueError("p_up is not a walk parameter: pass a biased reference_policy instead")
    if not 0.0 <= noise <= 0.5:
        raise ValueError(f"noise must be in [0, 0.5], got {noise!r}")
    T = int(horizon)
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
