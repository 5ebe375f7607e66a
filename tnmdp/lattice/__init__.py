"""Many-body stochastic processes on a chain of ``L`` sites as space-time tensor networks.

Importing this package does not import quimb; quimb objects are built on demand.
"""

from . import mps

__all__ = ["mps"]
