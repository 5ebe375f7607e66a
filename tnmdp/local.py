"""Local solvers: maximise the objective over one policy site with the rest of the network fixed.

With the environments of site ``t`` contracted, the objective is (Gillman, Rose & Garrahan
2020, Sect. 4, with the KL term of :mod:`tnmdp.sweep`)

    J = const + sum_s left_t[s] sum_a pi_t(a|s) (Q_t(s, a) - tau log(pi_t(a|s) / pi0_t(a|s)))

over a product of simplices, one per state. Without extra constraints the problem decomposes over
states, so every solver below maximises each state's row on its own (with unit weight): the
result is optimal from every state, including states of zero probability under the current
left environment. A solver given coupling constraints (``LinprogSolver(A_ub=...)``) weights the
rows by ``left_t`` and solves the coupled problem.

=========  ===========================================  ============================================
name       method                                       use
=========  ===========================================  ============================================
argmax     closed form: per-state argmax (ties to the   hard objective (``temperature = 0``); exact
           lowest action); with ``temperature > 0`` the
           Boltzmann policy ``pi0 exp(Q / tau)``
softmax    the closed-form KL-regularised optimum       ``temperature > 0``; exact
linprog    SciPy HiGHS over the product of simplices    linear objective, extra linear constraints
slsqp      SciPy SLSQP with simplex constraints         small problems, nonlinear local objectives
powell     the paper's: unconstrained reals, ``|x|``    tiny problems only (``O((S A)^2)`` function
           normalised per state, SciPy Powell           evaluations per site); shown for fidelity
=========  ===========================================  ============================================
"""

from __future__ import annotations

import numpy as np
import scipy.optimize as so
import scipy.sparse as sp

from .kernels import (greedy, row_objective, site_probabilities,  # noqa: F401
                      site_value, soft_backup)  # row_objective, site_value: re-exported

__all__ = ["LocalSolver", "ArgmaxSolver", "SoftmaxSolver", "LinprogSolver", "SlsqpSolver",
           "PowellSolver", "get_local_solver", "LOCAL_SOLVERS", "row_objective", "site_value"]


class LocalSolver:
    """Interface of a local solver.

    Subclasses implement :meth:`maximise`; :meth:`solve` adds the safeguard that no state's row
    gets worse than the current policy (so sweeps never decrease the objective even with an
    inexact numerical solver).
    """

    name = "base"
    #: the solver returns the exact local optimum (a backward sweep is then backward induction)
    optimal = False
    #: skip the no-worse-row safeguard (closed forms)
    exact = False
    def check(self, temperature):
        """Raise ``ValueError`` if this solver cannot handle ``temperature`` (called up front)."""

    def maximise(self, q, weights, log_pi0, temperature):  # pragma: no cover - interface
        """Return the new site: int actions ``(S,)`` or probabilities ``(S, A)``."""
        raise NotImplementedError

    def solve(self, q, weights, current, log_pi0, temperature):
        """Maximise the local objective; never return a row worse than ``current``'s.

        Parameters
        ----------
        q : ndarray, shape (S, A)
            ``Q_t``.
        weights : ndarray, shape (S,)
            ``left_t[s] = Pr(s_t = s)`` under the current policy.
        current : ndarray, shape (S,) int or (S, A)
            The site being replaced.
        log_pi0 : ndarray broadcasting to (S, A)
            Log reference policy (used when ``temperature > 0``).
        temperature : float

        Returns
        -------
        ndarray, shape (S,) of int or (S, A)
        """
        new = self.maximise(q, weights, log_pi0, temperature)
        if self.exact:
            return new
        n_actions = q.shape[1]
        new_p, cur_p = site_probabilities(new, n_actions), site_probabilities(current, n_actions)
        worse = row_objective(q, new_p, log_pi0, temperature) < row_objective(
            q, cur_p, log_pi0, temperature)
        if not worse.any():
            return new
        merged = new_p.copy()
        merged[worse] = cur_p[worse]
        return merged


    def solve_with_value(self, q, weights, current, log_pi0, temperature):
        """:meth:`solve`, and the new site's per-state objective ``V_t``, shape ``(S,)``."""
        site = self.solve(q, weights, current, log_pi0, temperature)
        return site, site_value(q, site, log_pi0, temperature)


class ArgmaxSolver(LocalSolver):
    """Closed form: per-state argmax of ``Q`` (Boltzmann policy when ``temperature > 0``)."""

    name = "argmax"
    optimal = True
    exact = True

    def maximise(self, q, weights, log_pi0, temperature):
        return self.solve_with_value(q, weights, None, log_pi0, temperature)[0]

    def solve_with_value(self, q, weights, current, log_pi0, temperature):
        if temperature > 0:
            log_pi, values = soft_backup(q, log_pi0, temperature)
            return np.exp(log_pi), values
        return greedy(q)


class SoftmaxSolver(ArgmaxSolver):
    """The KL-regularised closed form ``pi ∝ pi0 exp(Q / tau)`` (requires ``temperature > 0``)."""

    name = "softmax"

    def check(self, temperature):
        if not temperature > 0:
            raise ValueError("local_solver='softmax' needs temperature > 0; use 'argmax'")


def _finite_costs(q):
    """Replace ``-inf`` entries of ``q`` by 0 and return the mask of forbidden actions.

    A state whose actions are all forbidden keeps them allowed (its value is ``-inf`` whatever
    it does).
    """
    forbidden = np.isneginf(q)
    forbidden[forbidden.all(axis=1)] = False
    return np.where(np.isneginf(q), 0.0, q), forbidden


class LinprogSolver(LocalSolver):
    """SciPy HiGHS linear program over the product of simplices.

    Parameters
    ----------
    A_ub, b_ub, A_eq, b_eq : array_like, optional
        Extra linear constraints on the flattened site ``x[s*A + a] = pi_t(a|s)``, as in
        :func:`scipy.optimize.linprog`. With any of them, rows are weighted by ``left_t`` and the
        coupled problem is solved.
    """

    name = "linprog"
    optimal = True

    def __init__(self, A_ub=None, b_ub=None, A_eq=None, b_eq=None):
        self.A_ub, self.b_ub, self.A_eq, self.b_eq = A_ub, b_ub, A_eq, b_eq

    def check(self, temperature):
        if temperature > 0:
            raise ValueError("local_solver='linprog' solves linear local problems; with "
                             "temperature > 0 use 'argmax', 'softmax', 'slsqp' or 'powell'")

    def maximise(self, q, weights, log_pi0, temperature):
        S, A = q.shape
        costs, forbidden = _finite_costs(q)
        coupled = self.A_ub is not None or self.A_eq is not None
        w = weights if coupled else np.ones(S)
        simplex = sp.kron(sp.identity(S, format="csr"), np.ones((1, A)), format="csr")
        a_eq, b_eq = simplex, np.ones(S)
        if self.A_eq is not None:
            a_eq = sp.vstack([simplex, sp.csr_matrix(self.A_eq)], format="csr")
            b_eq = np.concatenate([b_eq, np.asarray(self.b_eq, dtype=float)])
        bounds = np.column_stack([np.zeros(S * A), np.where(forbidden.ravel(), 0.0, 1.0)])
        res = so.linprog(-(w[:, None] * costs).ravel(), A_ub=self.A_ub, b_ub=self.b_ub,
                         A_eq=a_eq, b_eq=b_eq, bounds=bounds, method="highs")
        if res.status != 0:
            raise RuntimeError(f"linprog local problem failed: {res.message}")
        x = np.maximum(res.x.reshape(S, A), 0.0)  # HiGHS may return -1e-17 for a zero
        return x / x.sum(axis=1, keepdims=True)


class SlsqpSolver(LocalSolver):
    """SciPy SLSQP per state: bounds ``[0, 1]`` and ``sum_a pi(a|s) = 1``.

    Handles the KL-regularised objective too. Cost: one small SLSQP problem per state.
    """

    name = "slsqp"

    def maximise(self, q, weights, log_pi0, temperature):
        S, A = q.shape
        costs, forbidden = _finite_costs(q)
        log_pi0 = np.broadcast_to(log_pi0, q.shape)
        out = np.empty((S, A))
        for s in range(S):
            allowed = ~forbidden[s]
            qs, lp = costs[s, allowed], log_pi0[s, allowed]

            def neg(x, qs=qs, lp=lp):
                value = x @ qs
                if temperature > 0:
                    xs = np.clip(x, 1e-300, None)
                    value -= temperature * (x * (np.log(xs) - lp)).sum()
                return -value

            k = int(allowed.sum())
            res = so.minimize(neg, np.full(k, 1.0 / k), method="SLSQP", bounds=[(0.0, 1.0)] * k,
                              constraints=[{"type": "eq", "fun": lambda x: x.sum() - 1.0}],
                              options={"ftol": 1e-12, "maxiter": 200})
            row = np.zeros(A)
            x = np.clip(res.x, 0.0, None)
            row[allowed] = x / x.sum()
            out[s] = row
        return out


class PowellSolver(LocalSolver):
    """The paper's local solver: ``S*A`` unconstrained reals ``x``, ``pi = |x| / sum_a |x|``.

    SciPy's derivative-free Powell method on the whole site at once, as in Gillman, Rose &
    Garrahan (2020). Practical only for tiny problems: each iteration costs ``O(S A)`` line
    searches over all ``S A`` parameters. Kept for fidelity to the paper and for tests.
    """

    name = "powell"

    def maximise(self, q, weights, log_pi0, temperature):
        S, A = q.shape
        costs, forbidden = _finite_costs(q)

        def probs(x):
            x = np.abs(x.reshape(S, A)) * ~forbidden + 1e-300
            return x / x.sum(axis=1, keepdims=True)

        def neg(x):
            return -row_objective(costs, probs(x), log_pi0, temperature).sum()

        x0 = np.ones(S * A)
        res = so.minimize(neg, x0, method="Powell", options={"xtol": 1e-10, "ftol": 1e-14,
                                                              "maxiter": 200 * S * A})
        return probs(res.x)


LOCAL_SOLVERS = {cls.name: cls for cls in
                 (ArgmaxSolver, SoftmaxSolver, LinprogSolver, SlsqpSolver, PowellSolver)}


def get_local_solver(local_solver):
    """Resolve a name or a :class:`LocalSolver` instance."""
    if isinstance(local_solver, LocalSolver):
        return local_solver
    if isinstance(local_solver, str) and local_solver in LOCAL_SOLVERS:
        return LOCAL_SOLVERS[local_solver]()
    raise ValueError(f"local_solver must be one of {sorted(LOCAL_SOLVERS)} or a LocalSolver "
                     f"instance, got {local_solver!r}")
