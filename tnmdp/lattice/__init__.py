"""Many-body stochastic processes on a chain of ``L`` sites as space-time tensor networks.

The state of a lattice process is itself a chain of ``L`` sites, so distributions, Doob
``h``-functions and eigenvectors are MPS of bounded bond dimension and ``d^L`` is never formed;
time is the second dimension of the network (Causer, Bañuls & Garrahan, PRE 104, 014130 (2021)
and PRL 128, 090605 (2022); Gorissen & Vanderzande; Helms, Ray & Chan, PRE 100, 022101 (2019)).

Conventions
-----------
- ``L`` sites, local dimension ``d`` (``0`` = empty/down, ``1`` = occupied/up); flat index
  ``sum_i x_i d^i`` (site 0 least significant) in every flat output.
- Continuous time: ``W[y, x]`` = rate ``x -> y``, columns sum to 0; a counting observable ``K``
  adds ``k(x -> y)`` per jump; ``W_s[y, x] = W[y, x] exp(-s k(x -> y))`` off the diagonal,
  ``W_s[x, x] = W[x, x]``; ``theta(s) = lim (1/t) log E[exp(-s K_t)]`` is its largest real
  eigenvalue (``s > 0`` suppresses the counted events).
- Discrete time by uniformisation ``P_s = I + dt W_s`` (``dt`` defaults to ``1 / max exit
  rate``, bounded from the local terms); ``Z_n(s) = <1| P_s^n |p0>``. The same chain is the
  one-action :class:`tnmdp.FiniteMDP` ``process.to_flat(n, s)`` with reward ``-s k(x -> y)``, and
  ``tnmdp.log_partition(flat) == log_partition(process, s, n).value``.

Modules: :mod:`~tnmdp.lattice.process` (``LatticeProcess``, local terms -> MPO, generator,
``to_flat``), :mod:`~tnmdp.lattice.models` (factories), :mod:`~tnmdp.lattice.mps` (array MPS
primitives in log space), :mod:`~tnmdp.lattice.partition` (``log_partition``, Doob densities),
:mod:`~tnmdp.lattice.sampling` (exact conditioned trajectories), :mod:`~tnmdp.lattice.scgf`
(``theta(s)``); controlled lattices: :mod:`~tnmdp.lattice.control` (``LatticeMDP``, local
policies), :mod:`~tnmdp.lattice.control_models` (``epidemic``, ``sysadmin``),
:mod:`~tnmdp.lattice.control_network` (transfer MPO of a local policy, row environments),
:mod:`~tnmdp.lattice.control_evaluate` and :mod:`~tnmdp.lattice.control_solve` (boundary-MPS
evaluation, DMRG-style sweeps over ``(t, i)``). Importing this package does not import quimb;
quimb objects are built on demand.
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

__all__ = [
    # processes (uncontrolled)
    "ConditionedSamples", "DensityResult", "LatticeProcess", "LocalTerm", "PartitionResult",
    "ScgfResult", "doob_densities", "east", "fa", "independent_spins", "log_partition", "mps",
    "sample", "scgf", "ssep", "tasep", "vicious_walkers",
    # controlled lattices
    "LatticeEvaluation", "LatticeMDP", "LatticeSolution", "LatticeTrajectories", "epidemic",
    "evaluate", "heuristic_policies", "marginals", "policy_to_flat", "sample_controlled",
    "solve", "sysadmin",
]
