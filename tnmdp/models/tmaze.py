"""A T-maze whose cue must be remembered: a partially observed finite MDP with an exact teacher.

The agent starts at the foot of a corridor of length ``L`` (positions ``0..L``, the junction at
``L``) and sees a cue (up or down) only there. Actions: 0 = forward, 1 = up, 2 = down. In the
corridor, forward advances one cell with probability ``1 - slip`` (else stays); up and down do
nothing. At the junction, up or down ends the episode with reward ``+1`` when it matches the cue
and ``-1`` otherwise; forward stays. Every other decision costs ``step_cost``. The full state
is ``(position, cue)`` (index ``2 position + cue``) plus an absorbing terminal state
(index ``2 (L + 1)``), so ``tnmdp.solve`` gives the optimal policy over the full state; an
agent that sees only :func:`tmaze_observations` must carry the cue in memory for at least
``L`` steps (Bakker, "Reinforcement Learning with Long Short-Term Memory", NIPS 2001).

The observation does not depend on ``L`` or ``slip``, so a recurrent policy trained on one maze
runs unchanged in a longer or more slippery one (a shift of the dynamics).
"""

from __future__ import annotations

import numbers

import numpy as np

from ..model import FiniteMDP, _check_int

__all__ = ["tmaze", "tmaze_observations", "TMAZE_OBSERVATIONS"]

#: Names of the observation features, in order.
TMAZE_OBSERVATIONS = ("start, cue up", "start, cue down", "corridor", "junction", "terminal")


def tmaze(length=4, *, slip=0.1, horizon=None, step_cost=0.05):
    """The T-maze as a finite MDP over the full state.

    Parameters
    ----------
    length : int >= 1
        Corridor length ``L``: the junction is ``L`` forward moves from the start.
    slip : float in [0, 1)
        Probability that a forward move in the corridor fails (the agent stays).
    horizon : int, optional
        Decisions ``T``; default ``2 L + 6``.
    step_cost : float >= 0
        Cost of every decision other than the final choice.

    Returns
    -------
    FiniteMDP
        ``S = 2 (L + 1) + 1`` states, 3 actions, ``(S, 3, S)`` transitions, ``(S, 3)`` rewards,
        initial state uniform over the two cues at position 0.

    Examples
    --------
    >>> import tnmdp
    >>> sol = tnmdp.solve(tmaze(3, slip=0.0))
    >>> round(sol.expected_return, 10)  # 3 forward moves at cost 0.05, then the right arm
    0.85
    """
    L = _check_int("length", length, 1)
    if isinstance(slip, bool) or not isinstance(slip, numbers.Real) or not 0.0 <= slip < 1.0:
        raise ValueError(f"slip must be a real number in [0, 1), got {slip!r}")
    if isinstance(step_cost, bool) or not isinstance(step_cost, numbers.Real) or step_cost < 0:
        raise ValueError(f"step_cost must be a real number >= 0, got {step_cost!r}")
    T = 2 * L + 6 if horizon is None else _check_int("horizon", horizon, 1)
    S = 2 * (L + 1) + 1
    end = S - 1
    P = np.zeros((S, 3, S))
    R = np.full((S, 3), -float(step_cost))
    P[end, :, end] = 1.0
    R[end] = 0.0
    for pos in range(L + 1):
        for cue in (0, 1):
            s = 2 * pos + cue
            if pos < L:
                P[s, 0, s + 2] += 1.0 - slip
                P[s, 0, s] += slip
                P[s, 1:, s] = 1.0
            else:
                P[s, 0, s] = 1.0
                P[s, 1:, end] = 1.0
                R[s, 1] = 1.0 if cue == 0 else -1.0
                R[s, 2] = 1.0 if cue == 1 else -1.0
    initial = np.zeros(S)
    initial[:2] = 0.5
    return FiniteMDP(P, R, T, initial)


def tmaze_observations(length=4):
    """Observation of each full state, shape ``(S, 5)`` (one-hot over :data:`TMAZE_OBSERVATIONS`).

    Only the start cells reveal the cue; corridor, junction and terminal cells look the same
    for both cues.
    """
    L = _check_int("length", length, 1)
    S = 2 * (L + 1) + 1
    obs = np.zeros((S, len(TMAZE_OBSERVATIONS)))
    obs[0, 0] = obs[1, 1] = 1.0
    obs[2: 2 * L, 2] = 1.0
    obs[2 * L: 2 * L + 2, 3] = 1.0
    obs[S - 1, 4] = 1.0
    return obs
