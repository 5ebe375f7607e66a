"""Many-body stochastic processes on a chain of ``L`` sites as space-time tensor networks.

Importing this package does not import quimb; quimb objects are built on demand.
"""

from . import mps
from .models import east, fa, independent_spins, ssep, tasep, vicious_walkers
from .partition import DensityResult, PartitionResult, doob_densities, log_partition
from .process import LatticeProcess, LocalTerm
from .sampling import ConditionedSamples, sample
from .scgf import ScgfResult, scgf
from .control import LatticeMDP, policy_to_flat
from .control_evaluate import LatticeEvaluation, LatticeTrajectories, evaluate, marginals
from .control_evaluate import sample as sample_controlled
from .control_models import epidemic, heuristic_policies, sysadmin
from .control_solve import LatticeSolution, solve

__all__ = ["ConditionedSamples", "DensityResult", "LatticeProcess", "LocalTerm", "PartitionResult", "ScgfResult", "doob_densities",
           "log_partition", "sample", "scgf", "east", "fa", "independent_spins", "mps", "ssep", "tasep",
           "vicious_walkers",
           "LatticeEvaluation", "LatticeMDP", "LatticeSolution", "LatticeTrajectories", "epidemic",
           "evaluate", "heuristic_policies", "marginals", "policy_to_flat", "sample_controlled",
           "solve", "sysadmin"]
