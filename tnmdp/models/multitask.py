"""Families of related tasks for multi-task learning (S-TLR-Q, :mod:`tnmdp.adapters.qtensor_learn`).

* :func:`pendulum_tasks` -- the four pendulums of Rozada et al. (arXiv 2501.10529): gravity 10 and
  ``(mass, length)`` in ``{(0.01, 1), (0.1, 1), (0.5, 0.5), (1, 0.5)}``, swing-up from hanging
  down, reward ``-(theta^2 + 0.1 omega^2 + 0.1 u^2)``, 20 x 20 grid, 10 torques in ``[-2, 2]``,
  ``gamma = 0.99``, 100 steps. Dynamics and grid projection are those of
  :func:`tnmdp.models.pendulum.pendulum` (bilinear projection of the Euler step onto the grid);
  only the torque cost differs from Pendulum-v1 (``0.1 u^2`` as in the authors' multi-task code,
  not ``0.001 u^2``).
* :func:`gridworld_tasks` -- one small slippery grid with several goals and slip probabilities,
  for fast tests.

Every task of a family has the same states, actions and horizon, and the states are C-order flat
indices over modes: ``(n_theta, n_omega)`` for the pendulums,
``(n_rows, n_cols)`` for the grids.
"""

from __future__ import annotations

import itertools
import numbers

import numpy as np

from ..model import FiniteMDP
from .gridworld import gridworld
from .pendulum import pendulum, pendulum_grid

__all__ = ["pendulum_tasks", "gridworld_tasks", "PENDULUM_PARAMETERS"]

#: ``(mass, length)`` of the paper's four pendulums (gravity 10).
PENDULUM_PARAMETERS = ((0.01, 1.0), (0.1, 1.0), (0.5, 0.5), (1.0, 0.5))


def pendulum_tasks(n_theta=20, n_omega=20, n_torques=10, *, parameters=PENDULUM_PARAMETERS,
                   gravity=10.0, max_torque=2.0, horizon=100, discount=0.99, max_speed=8.0,
                   cost_weights=(1.0, 0.1, 0.1), initial="bottom"):
    """The paper's family of pendulum swing-up tasks as finite MDPs.

    Parameters
    ----------
    n_theta, n_omega : int
        Grid sizes (angle periodic over ``[-pi, pi)``, velocity over ``[-max_speed, max_speed]``).
    n_torques : int
        Torques ``linspace(-max_torque, max_torque, n_torques)`` (``>= 2``).
    parameters : sequence of (float, float)
        ``(mass, length)`` of each task. Default :data:`PENDULUM_PARAMETERS`.
    gravity, max_torque, max_speed : float
    horizon : int
        Steps per episode ``T``.
    discount : float
    cost_weights : (float, float, float)
        ``(w_theta, w_omega, w_u)``: reward ``-(w_theta theta^2 + w_omega omega^2 + w_u u^2)`` at
        the grid point and torque. Default ``(1, 0.1, 0.1)``, the paper's.
    initial : {"bottom", "uniform"} or int
        As for :func:`tnmdp.models.pendulum.pendulum`.

    Returns
    -------
    list of FiniteMDP
        One per ``(mass, length)``: ``S = n_theta n_omega`` states (``i_theta * n_omega +
        i_omega``, so ``state_shape = (n_theta, n_omega)``), ``A = n_torques`` actions, sparse
        transitions shared by every time step, rewards of shape ``(S, A)``.

    Notes
    -----
    The authors' grid spans velocities ``[-5, 5]`` (faster states are clipped onto its edge);
    here it spans ``[-max_speed, max_speed]`` so that the projected dynamics are not truncated.
    Construction costs ``O(M S A)``.
    """
    if isinstance(n_torques, bool) or not isinstance(n_torques, numbers.Integral) or n_torques < 2:
        raise ValueError(f"n_torques must be an int >= 2, got {n_torques!r}")
    if not isinstance(max_torque, numbers.Real) or not max_torque > 0:
        raise ValueError(f"max_torque must be a positive number, got {max_torque!r}")
    weights = np.asarray(cost_weights, dtype=float)
    if weights.shape != (3,) or not np.isfinite(weights).all():
        raise ValueError(f"cost_weights must be three finite numbers, got {cost_weights!r}")
    params = _pairs("parameters", parameters)
    torques = np.linspace(-max_torque, max_torque, int(n_torques))
    theta, omega = pendulum_grid(n_theta, n_omega, max_speed)
    th, om, u = np.meshgrid(theta, omega, torques, indexing="ij")
    rewards = -(weights[0] * th ** 2 + weights[1] * om ** 2 + weights[2] * u ** 2)
    rewards = rewards.reshape(th.shape[0] * th.shape[1], torques.size)
    tasks = []
    for mass, length in params:
        base = pendulum(n_theta, n_omega, torques, horizon=horizon, mass=mass, length=length,
                        gravity=gravity, max_speed=max_speed, discount=discount, initial=initial)
        tasks.append(FiniteMDP(base.transition_matrix(0), rewards, horizon, base.initial,
                               discount=discount))
    return tasks


def _pairs(name, values):
    try:
        pairs = [tuple(v) for v in values]
    except TypeError:
        raise TypeError(f"{name} must be a sequence of pairs, got {values!r}") from None
    if not pairs or any(len(p) != 2 for p in pairs):
        raise ValueError(f"{name} must be a non-empty sequence of pairs, got {values!r}")
    return pairs


def gridworld_tasks(n_rows=4, n_cols=4, *, goals=((3, 3), (3, 2)), slips=(0.1, 0.3), horizon=12,
                    discount=0.95, start=(0, 0), step_reward=-0.04, goal_reward=1.0):
    """A family of slippery gridworlds: one grid, every combination of goal and slip.

    Parameters
    ----------
    n_rows, n_cols : int
        Grid size.
    goals : sequence of (int, int)
        Goal cells ``(row, col)``.
    slips : sequence of float
        Slip probabilities.
    horizon, discount, start, step_reward, goal_reward
        As for :func:`tnmdp.models.gridworld.gridworld`. The discount defaults to 0.95 so that a
        stationary Q prefers short paths.

    Returns
    -------
    list of FiniteMDP
        ``len(goals) * len(slips)`` tasks, goal-major (``[(goals[0], slips[0]), (goals[0],
        slips[1]), ...]``); ``S = n_rows n_cols`` (``state_shape = (n_rows, n_cols)``), 4 actions.

    Examples
    --------
    >>> tasks = gridworld_tasks()
    >>> len(tasks), tasks[0].n_states, tasks[0].n_actions
    (4, 16, 4)
    """
    goals = _pairs("goals", goals)
    slips = list(np.atleast_1d(np.asarray(slips, dtype=float)))
    if not slips:
        raise ValueError("slips must not be empty")
    return [gridworld(n_rows, n_cols, goal=goal, slip=float(slip), horizon=horizon,
                      step_reward=step_reward, goal_reward=goal_reward, start=start,
                      discount=discount)
            for goal, slip in itertools.product(goals, slips)]
