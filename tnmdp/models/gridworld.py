"""A slippery gridworld with an absorbing goal, state factored as (row, col).

Actions ``0..3`` = up, down, left, right (up decreases the row). The intended move happens with
probability ``1 - slip``; each of the two perpendicular moves with probability ``slip / 2``. A move
off the grid leaves the agent in place. The goal is absorbing.

Rewards (given as an ``(S, A, S')`` array): ``step_reward`` for every decision taken outside the
goal, plus ``goal_reward`` on entering the goal; nothing once there. The state index is
``row * n_cols + col``, the C-order multi-index over the modes ``(n_rows, n_cols)``, so a
:class:`tnmdp.adapters.parafac.ParafacPolicy` with ``mode_sizes=(n_rows, n_cols)`` applies as is.
"""

from __future__ import annotations

import numbers

import numpy as np

from ..model import FiniteMDP

__all__ = ["gridworld", "ACTIONS"]

#: Action names in index order and their (row, col) displacements.
ACTIONS = (("up", (-1, 0)), ("down", (1, 0)), ("left", (0, -1)), ("right", (0, 1)))
_PERPENDICULAR = {0: (2, 3), 1: (2, 3), 2: (0, 1), 3: (0, 1)}


def _check_cell(name, cell, n_rows, n_cols):
    try:
        r, c = cell
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a (row, col) pair, got {cell!r}") from None
    if not (isinstance(r, numbers.Integral) and isinstance(c, numbers.Integral)):
        raise TypeError(f"{name} must hold ints, got {cell!r}")
    if not (0 <= r < n_rows and 0 <= c < n_cols):
        raise ValueError(f"{name}={cell!r} is outside the {n_rows}x{n_cols} grid")
    return int(r) * n_cols + int(c)


def gridworld(n_rows=4, n_cols=4, *, goal=(3, 3), slip=0.1, horizon=12, step_reward=-0.04,
              goal_reward=1.0, start=(0, 0), discount=1.0):
    """A slippery ``n_rows x n_cols`` gridworld as a finite MDP.

    Parameters
    ----------
    n_rows, n_cols : int
        Grid size (each ``>= 1``, at least 2 cells).
    goal, start : (int, int)
        Cells ``(row, col)``.
    slip : float
        Probability in ``[0, 1]`` of slipping to a perpendicular move.
    horizon : int
        Decisions ``T``.
    step_reward : float
        Reward per decision outside the goal (default -0.04, the classic Russell--Norvig cost).
    goal_reward : float
        Reward on entering the goal.
    discount : float

    Returns
    -------
    FiniteMDP
        ``S = n_rows * n_cols`` states (``row * n_cols + col``), 4 actions (:data:`ACTIONS`),
        dense ``(S, 4, S)`` transitions and rewards of shape ``(S, 1, S)`` (the same for every
        action).

    Examples
    --------
    >>> mdp = gridworld()
    >>> mdp.n_states, mdp.n_actions, mdp.horizon
    (16, 4, 12)
    """
    for name, value in (("n_rows", n_rows), ("n_cols", n_cols)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    n_states = n_rows * n_cols
    if n_states < 2:
        raise ValueError(f"the grid needs at least 2 cells, got {n_rows}x{n_cols}")
    goal_state = _check_cell("goal", goal, n_rows, n_cols)
    start_state = _check_cell("start", start, n_rows, n_cols)
    if not isinstance(slip, numbers.Real) or not 0.0 <= slip <= 1.0:
        raise ValueError(f"slip must be a probability in [0, 1], got {slip!r}")

    def target(s, a):
        r, c = divmod(s, n_cols)
        dr, dc = ACTIONS[a][1]
        r2, c2 = r + dr, c + dc
        return r2 * n_cols + c2 if (0 <= r2 < n_rows and 0 <= c2 < n_cols) else s

    transitions = np.zeros((n_states, 4, n_states))
    for s in range(n_states):
        for a in range(4):
            if s == goal_state:
                transitions[s, a, s] = 1.0
                continue
            transitions[s, a, target(s, a)] += 1.0 - slip
            for b in _PERPENDICULAR[a]:
                transitions[s, a, target(s, b)] += slip / 2
    rewards = np.full((n_states, 1, n_states), float(step_reward))
    rewards[:, :, goal_state] += goal_reward
    rewards[goal_state] = 0.0
    return FiniteMDP(transitions, rewards, horizon, start_state, discount=discount)
