"""The front door: :func:`solve` and its result, :class:`Solution`."""

from __future__ import annotations

import numbers

import numpy as np

from . import backends
from .continuing import solve_continuing
from .evaluate import finite_or_raise, start_values
from .kernels import weighted_sum
from .local import get_local_solver
from ._validate import check_mdp, check_reference, check_temperature
from .model import FiniteMDP, as_rng
from .policy import Policy, SoftPolicy, as_policy
from .solution import Solution
from .sweep import STATUS_MESSAGES, soft_site, sweep

__all__ = ["solve"]

DIRECTIONS = ("backward", "forward", "both")


def _initial_sites(initial_policy, mdp, rng):
    T, S, A = mdp.horizon, mdp.n_states, mdp.n_actions
    if isinstance(initial_policy, str):
        if initial_policy == "uniform":
            return [np.full((S, A), 1.0 / A)] * T
        if initial_policy == "random":
            # the paper's initialisation: T*S*A uniform reals, normalised per state
            raw = as_rng(rng).random((T, S, A))
            return list(raw / raw.sum(axis=2, keepdims=True))
        raise ValueError(f"initial_policy must be 'uniform', 'random' or a (T, S, A) array, "
                         f"got {initial_policy!r}")
    policy = as_policy(initial_policy, mdp, name="initial_policy")
    return [policy.site(t) for t in range(T)]


def solve(mdp, *, direction="backward", local_solver="argmax", temperature=0.0,
          reference_policy=None, initial_policy="uniform", max_sweeps=None, tol=None,
          rng=None, callback=None, progress=False, backend="auto", method=None):
    """Optimise the policy of a finite MDP by DMRG-style sweeps over the policy MPS.

    Parameters
    ----------
    mdp : FiniteMDP
    direction : {"backward", "forward", "both"}
        Sweep order. ``"backward"`` (right to left) is backward induction: exact in one sweep.
        ``"forward"`` optimises each site against the initial future policy and can stall.
        ``"both"`` alternates forward and backward sweeps until the objective improves by no
        more than ``tol`` (relative) or ``max_sweeps`` is reached.
    local_solver : str or LocalSolver
        ``"argmax"`` (closed form; the Boltzmann policy when ``temperature > 0``), ``"softmax"``,
        ``"linprog"``, ``"slsqp"``, ``"powell"`` or a :class:`tnmdp.local.LocalSolver`
        (e.g. ``LinprogSolver(A_ub=..., b_ub=...)`` for extra constraints).
    temperature : float
        ``tau >= 0``. With ``tau > 0`` the objective is
        ``J_tau = E[sum_t gamma^t (r_t - tau KL(pi_t(.|s_t) || pi0_t(.|s_t)))] + gamma^T E[terminal]``.
    reference_policy : Policy or array_like (T, S, A), optional
        ``pi0`` for the KL term; default uniform. Only with ``temperature > 0``.
    initial_policy : {"uniform", "random"} or Policy or array_like (T, S, A)
    max_sweeps : int, optional
        Default 1 for ``"backward"``/``"forward"``, 20 for ``"both"``.
    tol : float, optional
        Relative improvement below which alternating sweeps stop (default 1e-12).
    rng : None, int or numpy.random.Generator
        For ``initial_policy="random"``.
    callback : callable, optional
        ``callback(state: SweepState)`` after each site update; returning ``True`` stops.
    progress : bool
        Show a tqdm bar over sites.
    method : str, optional
        Continuing MDPs (``horizon=None``) only: ``"policy_iteration"`` (default),
        ``"value_iteration"`` or ``"modified_policy_iteration"`` (:mod:`tnmdp.continuing`);
        there ``tol`` (default 1e-8) is the certified bound on ``max|V^pi - V*|``,
        ``max_sweeps`` the iteration limit, and the sweep options must keep their defaults.
    backend : {"auto", "numpy", "numba"}
        Kernels of the closed-form backward sweeps (:mod:`tnmdp.backends`): ``"auto"`` uses
        the compiled ones when numba is installed and the problem repays loading them. The
        result does not depend on it (to rounding; ties to the lowest action either way).

    Returns
    -------
    Solution

    Notes
    -----
    A sweep costs ``O(sum_t nnz(P_t))`` plus the local solver; the environments of the other
    direction are computed once per sweep in the same cost and cached (at ``sqrt(T)``
    checkpoints when ``T * S`` floats exceed 128 MiB).

    Examples
    --------
    >>> import tnmdp
    >>> sol = tnmdp.solve(tnmdp.models.excursion(10))
    >>> round(sol.expected_return, 12)
    1.0
    """
    if isinstance(mdp, FiniteMDP) and mdp.continuing:  # stationary policies
        return solve_continuing(mdp, method, tol, max_sweeps,
                                direction=direction, local_solver=local_solver,
                                temperature=temperature, reference_policy=reference_policy,
                                initial_policy=initial_policy, callback=callback,
                                progress=progress, rng=rng, backend=backend)
    if method is not None:
        raise ValueError(f"method={method!r} applies to continuing MDPs (horizon=None) only; "
                         "a finite horizon is solved by sweeps (direction=)")
    check_mdp(mdp)
    tol = 1e-12 if tol is None else tol
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    local = get_local_solver(local_solver)
    backends.select(mdp, backend)  # validates backend
    temperature = check_temperature(temperature)
    local.check(temperature)
    if temperature == 0 and reference_policy is not None:
        raise ValueError("reference_policy is used only with temperature > 0")
    reference = check_reference(reference_policy, mdp)
    if max_sweeps is not None and (isinstance(max_sweeps, bool) or not isinstance(
            max_sweeps, numbers.Integral) or max_sweeps < 1):
        raise ValueError(f"max_sweeps must be None or an int >= 1, got {max_sweeps!r}")
    if not isinstance(tol, numbers.Real) or not tol >= 0:
        raise ValueError(f"tol must be a number >= 0, got {tol!r}")
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be callable, got {type(callback).__name__}")
    sites = _initial_sites(initial_policy, mdp, rng)

    with np.errstate(over="ignore", invalid="ignore"):  # overflow is checked below
        result = sweep(mdp, sites, local, direction=direction, temperature=temperature,
                       reference=reference, max_sweeps=max_sweeps, tol=tol, callback=callback,
                       progress=progress, backend=backend)
        compact_soft = (temperature > 0 and result.right is not None and result.status == 0
                        and local.optimal and local.exact)
        if compact_soft:
            policy = SoftPolicy(mdp, result.right, temperature, reference,
                                site=soft_site(mdp, temperature, reference, backend))
        else:
            policy = Policy._from_sites(result.sites, mdp.n_states, mdp.n_actions)
        values = result.plain_values if result.plain_values is not None and result.status != 2 \
            else start_values(mdp, policy)
        expected = weighted_sum(mdp.initial, values)
    finite_or_raise(values, mdp, "the return")  # nan or +inf: float overflow, never returned
    soft_value = float(result.objective) if temperature > 0 else None
    message = STATUS_MESSAGES[result.status]
    if result.status == 0 and direction == "backward" and local.optimal:
        message = "converged: a backward sweep with an optimal local solver is exact"
    if result.objective == -np.inf:
        message += ("; the objective is -inf: every policy takes a forbidden (-inf) transition "
                    "with positive probability (with noisy dynamics, use penalties, or "
                    "log_partition/doob_transform for the conditioned process)")
    return Solution(policy=policy, expected_return=expected, values=values,
                    soft_value=soft_value, history=result.history, n_sweeps=result.n_sweeps,
                    success=result.status == 0, status=result.status, message=message, mdp=mdp)
