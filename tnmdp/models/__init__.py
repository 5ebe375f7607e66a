"""Model factories: conditioned random walks, and more."""

from .walks import bridge, conditioned_walk, excursion, meander, walk_positions

__all__ = ["bridge", "conditioned_walk", "excursion", "meander", "walk_positions"]
