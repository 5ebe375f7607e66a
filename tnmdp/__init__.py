"""tnmdp: finite Markov decision processes solved with tensor networks.

Gillman, Rose & Garrahan, "A Tensor Network Approach to Finite Markov Decision Processes" (2020).
quimb is imported only where networks are built (:mod:`tnmdp.network`, :mod:`tnmdp.lattice`);
gymnasium, QuantEcon, pymdptoolbox, Dask and jax only by the functions that use them.
:mod:`tnmdp.lattice` (many-body processes and controlled lattices) loads on first use.
"""

from . import continuing, models, reference
from .chains import classify
from .distributed import solve_many
from .evaluate import Trajectories, evaluate, marginals, moments, policy_values, sample
from .interop import (from_gymnasium, from_mdptoolbox, from_quantecon, to_gymnasium,
                      to_mdptoolbox, to_quantecon)
from .local import LocalSolver
from .model import FiniteMDP
from .policy import Policy
from .solution import Solution
from .solve import solve
from .stationary import StationaryPolicy
from .sweep import SweepState
from .tilted import doob_transform, event_probability, log_partition
from .transfer import scgf

__all__ = ["FiniteMDP", "LocalSolver", "Policy", "Solution", "StationaryPolicy", "SweepState",
           "Trajectories", "classify", "continuing", "doob_transform", "evaluate",
           "event_probability", "from_gymnasium", "from_mdptoolbox", "from_quantecon",
           "log_partition", "marginals", "models", "moments", "policy_values", "reference",
           "sample", "scgf", "solve", "solve_many", "to_gymnasium", "to_mdptoolbox",
           "to_quantecon"]

__version__ = "0.1.0"


def __getattr__(name):
    """``tnmdp.lattice`` (many-body processes, a layer on top of the core) loads on first use."""
    if name == "lattice":
        import importlib

        return importlib.import_module(".lattice", __name__)
    raise AttributeError(f"module 'tnmdp' has no attribute {name!r}")
