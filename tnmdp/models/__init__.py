"""Model factories: conditioned random walks, a finite pendulum, gridworlds and task families."""

from .walks import (admissible, bridge, conditioned_density, conditioned_walk, excursion,
                    log_path_count, meander, walk_positions, walk_reference)

__all__ = ["admissible", "bridge", "conditioned_density", "conditioned_walk", "excursion",
           "log_path_count", "meander", "walk_positions", "walk_reference"]
