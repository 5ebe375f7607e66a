"""Model factories: conditioned random walks, a finite pendulum, gridworlds and task families."""

from .gridworld import gridworld
from .multitask import PENDULUM_PARAMETERS, gridworld_tasks, pendulum_tasks
from .pendulum import pendulum, pendulum_grid, pendulum_step
from .tmaze import tmaze, tmaze_observations
from .value_domains import four_rooms, reset_chain
from .walks import (admissible, bridge, conditioned_density, conditioned_walk, excursion,
                    log_path_count, meander, walk_positions, walk_reference)

__all__ = ["PENDULUM_PARAMETERS", "admissible", "bridge", "conditioned_density",
           "conditioned_walk", "excursion", "gridworld", "gridworld_tasks", "log_path_count",
           "meander", "pendulum", "pendulum_grid", "pendulum_step", "pendulum_tasks",
           "walk_positions", "walk_reference", "four_rooms", "reset_chain", "tmaze",
           "tmaze_observations"]
