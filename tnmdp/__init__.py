"""tnmdp: finite Markov decision processes solved with tensor networks.

Gillman, Rose & Garrahan, "A Tensor Network Approach to Finite Markov Decision Processes" (2020).
quimb is imported only where networks are built (:mod:`tnmdp.network`).
"""

from . import models, reference
from . import continuing
from .chains import classify
from .stationary import StationaryPolicy
from .transfer import scgf
from .distributed import solve_many  # dask is imported only when a cluster is used
from .evaluate import Trajectories, evaluate, marginals, moments, policy_values, sample
from .interop import (from_gymnasium, from_mdptoolbox, from_quantecon, to_gymnasium,
                      to_mdptoolbox, to_quantecon)
from .local import LocalSolver
from .model import FiniteMDP
from .policy import Policy
from .solution import Solution
from .solve import solve
from .sweep import SweepState
from .tilted import doob_transform, event_probability, log_partition

__all__ = ["FiniteMDP", "LocalSolver", "Policy", "Solution", "SweepState", "Trajectories",
           "doob_transform", "evaluate", "event_probability", "log_partition", "marginals", "models", "moments",
           "reference", "sample", "solve", "solve_many",
           "policy_values", "from_gymnasium", "from_mdptoolbox", "from_quantecon", "to_gymnasium",
           "to_mdptoolbox", "to_quantecon", "classify", "StationaryPolicy",
           "scgf", "continuing"]

__version__ = "0.1.0"


def __getattr__(name):
    """``tnmdp.lattice`` (many-body processes, a layer on top of the core) loads on first use."""
    if name == "lattice":
        import importlib

        return importlib.import_module(".lattice", __name__)
    raise AttributeError(f"module 'tnmdp' has no attribute {name!r}")
