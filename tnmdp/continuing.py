"""Continuing discounted MDPs: policy, value and modified policy iteration with guarantees.

A continuing MDP (``FiniteMDP(..., horizon=None, discount=gamma)``, ``gamma < 1``) is the
episodic chain of DESIGN.md with one site repeated for ever. Its optimal value ``V*`` is the
fixed point of the Bellman operator of that single site,

    (L v)(s) = max_a Q_v(s, a),     Q_v(s, a) = rbar(s, a) + gamma sum_s' P(s'|s, a) v(s'),

and every method below is a sequence of sweeps of that one site (``kernels.backup``, cost
``O(nnz(P))``) plus the exact evaluation of stationary policies:

* ``policy_iteration`` (Howard; Puterman 1994, Sect. 6.4): evaluate the policy exactly, improve
  greedily (keeping the current action unless beaten beyond round-off); stop as soon as the
  certificate below is within ``tol``, or when the policy repeats.
* ``value_iteration`` (Puterman Sect. 6.3) with the span stopping rule of Sect. 6.6.3:
  stop when ``gamma / (1 - gamma) sp(L v - v) <= tol``.
* ``modified_policy_iteration`` (Puterman Sect. 6.5, Puterman & Shin 1978): one improvement,
  then up to ``k`` sweeps of the policy's own operator ``L_pi`` (adaptively fewer).

Policy evaluation (:func:`discounted_values`) solves ``(I - gamma P_pi) v = r_pi``: by
iteration of ``L_pi`` with MacQueen's extrapolation when the chain mixes fast (accepted only
with relative accuracy in every state), else by dense LAPACK (``scipy.linalg.solve``), LAPACK's
banded LU (``solve_banded``) or a sparse LU (``splu``) when ``P_pi`` is banded, or GMRES
warm-started from the previous value when it is not (the fill-in of a sparse LU of a random
sparse matrix is prohibitive). The result is certified: ``|v - V^pi| <= max|L_pi v - v| /
(1 - gamma)``, at round-off level (``eps |V| / (1 - gamma)``).

Guarantees. For any ``v`` and any policy, Puterman's Theorem 6.6.6 (MacQueen 1966) gives

    L v + c min(L v - v) <= V* <= L v + c max(L v - v),       c = gamma / (1 - gamma),

and the same with ``L_pi`` for ``V^pi``. Hence, from the ``Q_v`` of the last sweep,

    max_s (V*(s) - V^pi(s)) <= max(L v - L_pi v) + c (max(L v - v) - min(L_pi v - v)),

the certificate stated in ``Solution.message``; ``success`` means it is ``<= tol``. Every solver
returns its policy's own values (the evaluation above). States from which every policy meets a
``-inf`` reward with positive probability have ``V* = V^pi = -inf`` (found combinatorially
first); the others are solved on the finite sub-problem.
"""

from __future__ import annotations

import numbers

import numpy as np
import scipy.linalg as la
import scipy.sparse as sp
import scipy.sparse.csgraph as csgraph
import scipy.sparse.linalg as spla

from .average import average_policy_iteration, average_reward
from .kernels import backup, greedy, matvec, row_max, weighted_sum
from .solution import Solution
from .stationary import StationaryPolicy, as_stationary_policy, check_continuing, policy_matrix

__all__ = ["policy_iteration", "value_iteration", "modified_policy_iteration",
           "discounted_values", "solve_continuing", "evaluate_continuing", "METHODS"]

METHODS = ("policy_iteration", "value_iteration", "modified_policy_iteration")
_EPS = np.finfo(float).eps


# --------------------------------------------------------------------------- evaluation
def _bandwidth(P):
    """``(max |i - j|, i)`` over the non-zeros ``(i, j)`` of a square CSR matrix."""
    rows = np.repeat(np.arange(P.shape[0], dtype=P.indices.dtype), np.diff(P.indptr))
    return (int(np.abs(P.indices - rows).max()) if P.nnz else 0), rows


#: Sparse chains of at most this bandwidth are solved by LAPACK's banded LU.
_BANDED = 64

#: Wider sparse chains are factorised (sparse LU, natural order: fill-in bounded by the band)
#: while ``bandwidth * S`` is at most this; beyond, GMRES warm-started from the last values.
_SPARSE_LU_FILL = 4 * 10**7


def _band_storage(P, rows, gamma, width):
    """``I - gamma P`` in LAPACK band storage ``ab[width + i - j, j]``, shape (2w+1, n)
    (``P`` canonical CSR: no duplicate entries)."""
    ab = np.zeros((2 * width + 1, P.shape[0]))
    ab[width + rows - P.indices, P.indices] = -gamma * P.data
    ab[width] += 1.0
    return ab


def _macqueen(P, r, gamma, v):
    """One ``L_pi`` step from ``v`` and MacQueen's bounds: (midpoint, half-width, span)."""
    w = r + gamma * (P @ v)
    d = w - v
    lo, hi = float(d.min()), float(d.max())
    c = gamma / (1.0 - gamma)
    return w + 0.5 * c * (lo + hi), 0.5 * c * (hi - lo), hi - lo


def _solve_finite(P, r, gamma, v0, target, method):
    """``v`` with ``max|v - V^pi| <= err`` for finite ``r``; returns ``(v, err, how)``."""
    n = r.shape[0]
    if n == 0:
        return np.zeros(0), 0.0, "none"
    sparse = sp.issparse(P)
    scale = float(np.abs(r).max(initial=0.0)) / (1.0 - gamma)
    # round-off floor of the certified bound: eps |V| times the condition number 1/(1-gamma);
    # a bound that stops halving within 64 floors has reached round-off ("stalled")
    floor = 8 * _EPS * scale / (1.0 - gamma)
    target = max(target, floor)

    def done(err, previous):
        return err <= target or (previous is not None and err > 0.5 * previous
                                 and err <= 64 * floor)

    v = r / (1.0 - gamma) if v0 is None else v0
    if method in ("auto", "iterative"):
        if sparse:
            budget = 60
        else:
            budget = max(8, n // 12)  # an LU costs about n/12 dense matvecs (BLAS-3 vs 2)
        if method == "iterative":
            budget = 10**9
        last = previous = None
        for k in range(budget):
            mid, err, span = _macqueen(P, r, gamma, v)
            if done(err, previous) and (method == "iterative"
                                        or err <= 1e-6 * float(np.abs(mid).min())):
                # "auto" also asks for relative accuracy in every state: values spanning many
                # orders of magnitude (slow-mixing chains) go to a direct solve, which keeps
                # the tiny ones that policy improvement compares
                return mid, err, "iterative"
            previous = err
            if last is not None and k >= 3 and method == "auto":
                ratio = span / last if last > 0 else 0.0
                need = np.log(target / err) / np.log(ratio) if 0 < ratio < 1 else np.inf
                if need > budget - k:
                    break
            last, v = span, mid
        method = "auto"
    if not sparse:
        A = np.eye(n) - gamma * P
        v = la.solve(A, r, overwrite_a=True, check_finite=False)
        how = "dense LU"
    else:
        width, rows = _bandwidth(P)
        if width <= _BANDED:  # LAPACK gbsv: O(n width^2)
            v = la.solve_banded((width, width), _band_storage(P, rows, gamma, width), r,
                                overwrite_ab=True, check_finite=False)
            how = "banded LU"
        elif method == "direct" or width * n <= _SPARSE_LU_FILL:
            A = (sp.eye_array(n, format="csr") - gamma * P).tocsc()
            v = spla.splu(A, permc_spec="NATURAL" if width * n <= _SPARSE_LU_FILL
                          else "COLAMD").solve(r)
            how = "sparse LU"
        else:
            A = (sp.eye_array(n, format="csr") - gamma * P).tocsc()
            v, _ = spla.gmres(A, r, x0=v, rtol=min(1e-13, target / max(scale, 1e-300)),
                              atol=0.0, restart=20, maxiter=400)
            how = "GMRES"
    # certify the solve itself (no MacQueen shift: a constant offset would swamp the tiny
    # values of slow-mixing chains): |v - V^pi| <= max|L_pi v - v| / (1 - gamma)
    resid = r + gamma * (P @ v) - v
    err = float(np.abs(resid).max()) / (1.0 - gamma)
    if err <= target or how != "GMRES":
        return v, err, how
    mid, err, _ = _macqueen(P, r, gamma, v)
    previous = None
    for _ in range(50):  # polish Krylov residuals until the certified bound meets the target
        if done(err, previous):
            break
        previous = err
        mid, err, _ = _macqueen(P, r, gamma, mid)
    return mid, err, how


def _reaches(P, start):
    """Boolean mask of states from which a state in ``start`` is reachable under ``P``."""
    n = P.shape[0]
    G = sp.csr_array(P) if not sp.issparse(P) else P
    rows = np.repeat(np.arange(n), np.diff(G.indptr))
    src = np.concatenate([G.indices, np.full(int(start.sum()), n)])  # reversed edges s' -> s
    dst = np.concatenate([rows, np.flatnonzero(start)])
    rev = sp.csr_array((np.ones(src.size), (src, dst)), shape=(n + 1, n + 1))
    order = csgraph.breadth_first_order(rev, n, directed=True, return_predecessors=False)
    mask = np.zeros(n + 1, dtype=bool)
    mask[order] = True
    return mask[:n]


def _policy_values(P_pi, r_pi, gamma, v0=None, target=0.0, method="auto"):
    """Exact values of a policy with ``-inf`` support: ``(v, err, how)``."""
    bad = np.isneginf(r_pi)
    if not bad.any():
        return _solve_finite(P_pi, r_pi, gamma, v0, target, method)
    dead = _reaches(P_pi, bad)
    alive = np.flatnonzero(~dead)
    v = np.full(r_pi.shape[0], -np.inf)
    if alive.size:
        sub = P_pi[alive][:, alive]
        v[alive], err, how = _solve_finite(sub, r_pi[alive], gamma,
                                           None if v0 is None else v0[alive], target, method)
        return v, err, how
    return v, 0.0, "none"


def discounted_values(mdp, policy, *, method="auto", return_error=False):
    """Exact values ``V^pi(s) = E[sum_t gamma^t r_t | s_0 = s]`` of a stationary policy.

    Parameters
    ----------
    mdp : FiniteMDP
        Continuing, ``discount < 1``.
    policy : StationaryPolicy or array_like, shape (S, A) or (S,) int actions
    method : {"auto", "direct", "iterative"}
        ``"direct"``: dense LU, or sparse LU of ``I - gamma P_pi``; ``"iterative"``: ``L_pi``
        sweeps with MacQueen's extrapolation to round-off; ``"auto"`` starts iterating and
        switches to a direct (or, for a non-banded sparse chain, GMRES) solve when the observed
        contraction predicts more work than the solve.
    return_error : bool
        Also return the certified bound on ``max|v - V^pi|`` (Puterman Thm 6.6.6 applied to
        ``L_pi``).

    Returns
    -------
    values : ndarray, shape (S,)
        ``-inf`` where a ``-inf`` reward is reached with positive probability.
    error : float
        Only with ``return_error=True``.

    Notes
    -----
    Cost ``O(nnz(P))`` per sweep; a dense LU ``O(S^3)``; a banded sparse LU ``O(S b^2)``.
    """
    check_continuing(mdp, "discounted_values")
    if mdp.discount >= 1:
        raise ValueError("discounted_values needs discount < 1; for discount == 1 use "
                         "tnmdp.average.average_reward")
    if method not in ("auto", "direct", "iterative"):
        raise ValueError(f"method must be 'auto', 'direct' or 'iterative', got {method!r}")
    policy = as_stationary_policy(policy, mdp)
    P_pi, r_pi = policy_matrix(mdp, policy)
    v, err, _ = _policy_values(P_pi, r_pi, mdp.discount, method=method)
    return (v, err) if return_error else v


# --------------------------------------------------------------------------- the solvers
def _dead_states(mdp):
    """States with ``V* = -inf``: every action meets ``-inf`` with positive probability.

    The complement is the greatest set ``F`` in which every state has an action with a finite
    expected reward whose successors all lie in ``F`` (a greatest fixed point, by peeling).
    """
    if not mdp.has_neg_inf:
        return None
    S, A = mdp.n_states, mdp.n_actions
    P = mdp.transition_matrix(0)
    finite = np.isfinite(mdp.expected_reward(0))
    safe = np.ones(S, dtype=bool)
    while True:
        leaks = (P @ (~safe).astype(np.float64)).reshape(S, A) > 0
        new = safe & (finite & ~leaks).any(axis=1)
        if (new == safe).all():
            break
        safe = new
    return ~safe if (~safe).any() else None


class _Problem:
    """The repeated site of a continuing discounted MDP, restricted to its finite states."""

    def __init__(self, mdp, tol, evaluation):
        self.mdp, self.tol, self.evaluation = mdp, tol, evaluation
        self.gamma = mdp.discount
        self.c = self.gamma / (1.0 - self.gamma)
        self.dead = _dead_states(mdp)
        self.alive = None if self.dead is None else np.flatnonzero(~self.dead)
        self._operator = None

    def initial_value(self):
        v = np.zeros(self.mdp.n_states)
        if self.dead is not None:
            v[self.dead] = -np.inf
        return v

    def q(self, v):
        """``Q_v`` (S, A): :func:`tnmdp.kernels.backup` computed in place (one ``(S*A,)``
        temporary instead of three: the sparse benchmark's peak memory)."""
        mdp = self.mdp
        if mdp.reward_kind() == "arrival" or mdp.has_neg_inf:
            return backup(mdp, 0, v)
        q = matvec(mdp.transition_matrix(0), v).reshape(mdp.n_states, mdp.n_actions)
        q *= self.gamma
        q += mdp.expected_reward(0)
        return q

    def diff(self, w, v):
        """``w - v`` on the finite states."""
        return (w - v) if self.alive is None else (w[self.alive] - v[self.alive])

    def operator(self, actions):
        """``(P_pi, r_pi)`` on the finite states; the last one is kept (only one: memory)."""
        key = actions.tobytes()
        if self._operator is not None and self._operator[0] == key:
            return self._operator[1:]
        self._operator = None  # free the previous one before building
        P_pi, r_pi = policy_matrix(self.mdp, StationaryPolicy.from_actions(actions,
                                                                          self.mdp.n_actions))
        if self.alive is not None:
            P_pi, r_pi = P_pi[self.alive][:, self.alive], r_pi[self.alive]
        self._operator = (key, P_pi, r_pi)
        return P_pi, r_pi

    def evaluate(self, actions, v0, target):
        P_pi, r_pi = self.operator(actions)
        if self.alive is None:
            return _solve_finite(P_pi, r_pi, self.gamma, v0, target, self.evaluation)
        v = np.full(self.mdp.n_states, -np.inf)
        v[self.alive], err, how = _solve_finite(P_pi, r_pi, self.gamma,
                                                None if v0 is None else v0[self.alive], target,
                                                self.evaluation)
        return v, err, how

    def certify(self, v, q, actions):
        """Certified bound on ``max_s (V*(s) - V^pi(s))`` from any ``v`` and ``q = Q_v``.

        Puterman's Thm 6.6.6 (MacQueen's bounds) for the MDP and for the policy alone:
        ``V* <= L v + c max(L v - v)`` and ``V^pi >= L_pi v + c min(L_pi v - v)``, so
        ``V* - V^pi <= max(L v - L_pi v) + c (max(L v - v) - min(L_pi v - v))``.
        """
        best = row_max(q)
        mine = q[np.arange(q.shape[0]), actions]
        if self.alive is not None:
            best, mine, v = best[self.alive], mine[self.alive], v[self.alive]
        if not best.size:
            return 0.0
        with np.errstate(invalid="ignore"):
            bound = float((best - mine).max()) + self.c * float((best - v).max()
                                                                 - (mine - v).min())
        return bound if bound == bound else np.inf

    def finish(self, actions, v, err, how, bound, history, n_iter, name, max_iter):
        """The Solution for ``actions`` with values ``v`` (within ``err``) and ``bound``."""

        success = bound <= self.tol
        if success:
            message = (f"converged ({name}): max|V^pi - V*| <= {bound:.3g} <= tol={self.tol:g} "
                       f"(Puterman 1994, Thm 6.6.6 bounds); V^pi by {how}, certified to "
                       f"{err:.2g}")
        else:
            message = (f"not converged ({name}) after {n_iter} iterations (max_iter="
                       f"{max_iter}): certified max|V^pi - V*| <= {bound:.3g} > tol={self.tol:g}")
        policy = StationaryPolicy.from_actions(actions, self.mdp.n_actions)
        return Solution(policy=policy, expected_return=weighted_sum(self.mdp.initial, v),
                        values=v, soft_value=None, history=np.asarray(history, dtype=float),
                        n_sweeps=n_iter, success=success, status=0 if success else 1,
                        message=message, mdp=self.mdp)


def _check_args(mdp, tol, max_iter, evaluation, name):
    check_continuing(mdp, name)
    if mdp.discount >= 1:
        raise ValueError(f"{name} needs discount < 1 (discounted criterion); discount == 1 is "
                         "the average-reward criterion: tnmdp.solve(mdp)")
    if isinstance(tol, bool) or not isinstance(tol, numbers.Real) or not tol > 0:
        raise ValueError(f"tol must be a number > 0, got {tol!r}")
    if max_iter is not None and (isinstance(max_iter, bool) or not isinstance(
            max_iter, numbers.Integral) or max_iter < 1):
        raise ValueError(f"max_iter must be None or an int >= 1, got {max_iter!r}")
    if evaluation not in ("auto", "direct", "iterative"):
        raise ValueError(f"evaluation must be 'auto', 'direct' or 'iterative', got {evaluation!r}")
    return _Problem(mdp, float(tol), evaluation)


def _improve(q, actions, relative=0.0):
    """Greedy actions of ``q``, keeping ``actions`` unless beaten by more than
    ``relative * (|Q(s, current)| + |Q(s, best)|)`` (a round-off margin, state by state: the
    values of a slow-mixing chain span hundreds of orders of magnitude)."""
    best, qmax = greedy(q)
    if actions is None:
        return best
    current = q[np.arange(q.shape[0]), actions]
    with np.errstate(invalid="ignore"):
        margin = relative * (np.abs(current) + np.abs(qmax)) if relative else 0.0
        keep = current >= qmax - margin
    keep |= np.isneginf(qmax)
    return np.where(keep, actions, best)


def _start_actions(prob, initial_policy):
    if initial_policy is None:
        return None
    return as_stationary_policy(initial_policy, prob.mdp, name="initial_policy").actions


def policy_iteration(mdp, *, tol=1e-8, max_iter=None, initial_policy=None, evaluation="auto"):
    """Howard's policy iteration for a continuing discounted MDP (Puterman 1994, Sect. 6.4).

    Parameters
    ----------
    mdp : FiniteMDP
        Continuing (``horizon=None``) with ``discount < 1``.
    tol : float
        Required certified bound on ``max|V^pi - V*|``.
    max_iter : int, optional
        Default 1000 policy improvements.
    initial_policy : StationaryPolicy or array_like (S, A) or (S,), optional
        A deterministic start; default: greedy in the one-step reward.
    evaluation : {"auto", "direct", "iterative"}
        How policies are evaluated (:func:`discounted_values`).

    Returns
    -------
    Solution
        ``policy`` a deterministic :class:`StationaryPolicy`; ``values`` (S,) its exact values;
        ``history`` the expected return after each improvement; ``n_sweeps`` the number of
        evaluations.

    Notes
    -----
    Stops as soon as the certificate (module docstring, from the sweep it needs anyway) is
    within ``tol``, else when the policy is stable: finitely many iterations (Puterman
    Thm 6.4.2), each one evaluation and one sweep ``O(nnz(P))``. Actions change only when
    beaten by more than a relative round-off margin, and a repeated policy (a cycle only
    round-off can cause) stops the iteration.
    """
    prob = _check_args(mdp, tol, max_iter, evaluation, "policy_iteration")
    max_iter = 1000 if max_iter is None else int(max_iter)
    actions = _start_actions(prob, initial_policy)
    if actions is None:  # greedy in Q_0 (= rbar unless some states are doomed to -inf)
        actions = greedy(mdp.expected_reward(0) if prob.alive is None
                         else prob.q(prob.initial_value()))[0]
    target = 0.0  # exact evaluation (to round-off, see _solve_finite)
    v, history, how, err, bound = None, [], "", 0.0, np.inf
    seen = set()
    for it in range(1, max_iter + 1):
        v, err, how = prob.evaluate(actions, v, target)
        history.append(weighted_sum(mdp.initial, v))
        q = prob.q(v)
        bound = prob.certify(v, q, actions)
        if bound <= prob.tol:  # tol-optimal already: further gains are below the tolerance
            break
        new = _improve(q, actions, 16 * _EPS)
        seen.add(hash(actions.tobytes()))
        if np.array_equal(new, actions) or hash(new.tobytes()) in seen:
            break  # stable, or a cycle that only round-off can cause: the certificate decides
        actions = new
    else:
        bound = prob.certify(v, q, actions)
    return prob.finish(actions, v, err, how, bound, history, it, "policy iteration", max_iter)


def _iterate(prob, k, max_iter, name, initial_policy):
    """Value iteration (``k = 0``) or modified policy iteration (``k`` sweeps of ``L_pi``)."""
    mdp = prob.mdp
    v = prob.initial_value()
    actions = _start_actions(prob, initial_policy)
    if actions is not None:
        v, _, _ = prob.evaluate(actions, None, prob.tol)
    history, n = [], 0
    while True:
        n += 1
        q = prob.q(v)
        previous, actions = actions, _improve(q, actions, 0.0)
        settled = previous is not None and np.array_equal(previous, actions)
        w = row_max(q)
        history.append(weighted_sum(mdp.initial, w))
        # with pi greedy in q the bound is c sp(L v - v): Puterman's span rule (Sect. 6.6.3)
        bound = prob.certify(v, q, actions)  # = c sp(L v - v) here
        if bound <= prob.tol or n >= max_iter:
            ev, err, how = prob.evaluate(actions, w, 0.0)  # exact: to round-off
            return prob.finish(actions, ev, err, how, bound, history, n, name, max_iter)
        if k:
            P_pi, r_pi = prob.operator(actions)
            u = w if prob.alive is None else w[prob.alive]
            # partial evaluation (Puterman's MPI allows any m_n >= 0): while the policy still
            # changes, stop once the span has shrunk 20-fold below the improvement step's; once
            # it repeats, evaluate it to the tolerance (L_pi sweeps cost 1/A of a Bellman sweep)
            quiet = prob.tol / (4 * prob.c)
            if not settled:
                quiet = max(quiet, bound / (20 * prob.c))
            for _ in range(k):
                u_next = r_pi + prob.gamma * (P_pi @ u)
                d = u_next - u
                u = u_next
                if d.size == 0 or float(d.max() - d.min()) <= quiet:
                    break
            del d, u_next, P_pi, r_pi
            if not settled:  # keep P_pi only for a policy that may be final (peak memory)
                prob._operator = None
            if prob.alive is not None:
                w = w.copy()
                w[prob.alive] = u
            else:
                w = u
        v = w


def value_iteration(mdp, *, tol=1e-8, max_iter=None, initial_policy=None, evaluation="auto"):
    """Value iteration with the span stopping rule (Puterman 1994, Sects. 6.3 and 6.6.3).

    Iterates ``v <- L v`` from ``v = 0`` until ``sp(L v - v) <= tol (1 - gamma) / gamma``: then
    the greedy policy ``pi`` of ``v`` has ``V* - V^pi <= gamma/(1-gamma) sp(L v - v) <= tol``
    (both MacQueen bounds of Thm 6.6.6, as ``L_pi v = L v``); ``pi`` is then evaluated exactly.

    Parameters and returns as for :func:`policy_iteration` (``max_iter`` default 100,000 sweeps;
    ``initial_policy``, if given, is evaluated to give the starting ``v``).

    Notes
    -----
    Each sweep costs ``O(nnz(P))``; the span contracts at least by ``gamma`` per sweep
    (Puterman Thm 6.6.2), faster when the chain mixes.
    """
    prob = _check_args(mdp, tol, max_iter, evaluation, "value_iteration")
    max_iter = 100_000 if max_iter is None else int(max_iter)
    return _iterate(prob, 0, max_iter, "value iteration", initial_policy)


def modified_policy_iteration(mdp, *, k=20, tol=1e-8, max_iter=None, initial_policy=None,
                              evaluation="auto"):
    """Modified policy iteration (Puterman & Shin 1978; Puterman 1994, Sect. 6.5).

    Each iteration is one improvement sweep ``v <- L v`` (greedy policy ``pi``) followed by up
    to ``k`` sweeps of ``L_pi`` (fewer once ``sp(L_pi u - u)`` is below a quarter of the span
    rule's threshold, or, while the policy still changes, 20-fold below the improvement step's
    ``sp(L v - v)``: any number of sweeps per iteration keeps MPI convergent, Puterman 6.5); it stops by the span rule of :func:`value_iteration` and certifies
    the exactly evaluated policy in the same way.

    Parameters
    ----------
    k : int
        Partial-evaluation sweeps per iteration (``k = 0`` is value iteration; ``k -> inf``
        policy iteration). Default 20 (as QuantEcon's ``DiscreteDP``).
    mdp, tol, max_iter, initial_policy, evaluation
        As for :func:`value_iteration`.

    Returns
    -------
    Solution

    Notes
    -----
    Cost per iteration ``O(nnz(P) + k nnz(P_pi))``; converges for any start (Puterman
    Thm 6.5.5).
    """
    prob = _check_args(mdp, tol, max_iter, evaluation, "modified_policy_iteration")
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 0:
        raise ValueError(f"k must be an int >= 0, got {k!r}")
    max_iter = 100_000 if max_iter is None else int(max_iter)
    return _iterate(prob, int(k), max_iter, "modified policy iteration", initial_policy)


# --------------------------------------------------------------------------- front door
_SOLVERS = {"policy_iteration": policy_iteration, "value_iteration": value_iteration,
            "modified_policy_iteration": modified_policy_iteration}


_SWEEP_DEFAULTS = dict(direction="backward", local_solver="argmax", temperature=0.0,
                      reference_policy=None, initial_policy="uniform", callback=None,
                      progress=False, rng=None, backend="auto")


def solve_continuing(mdp, method=None, tol=None, max_iter=None, **sweep_options):
    """What :func:`tnmdp.solve` runs for a continuing MDP (``horizon=None``).

    ``discount < 1``: :func:`policy_iteration` (default), :func:`value_iteration` or
    :func:`modified_policy_iteration`; ``discount == 1``: average-reward policy iteration
    (:func:`tnmdp.average.average_policy_iteration`). The finite-horizon sweep options
    (``sweep_options``) must keep their defaults: a ``ValueError`` names the first that does not.
    """
    for name, value in sweep_options.items():
        default = _SWEEP_DEFAULTS[name]
        if not (value is default or (isinstance(value, (str, float, bool)) and value == default
                                     and type(value) is type(default))):
            raise ValueError(f"{name}={value!r} is a finite-horizon sweep option; a continuing "
                             f"MDP (horizon=None) is solved by method= (one of {METHODS})")
    if mdp.discount >= 1:
        if method not in (None, "policy_iteration"):
            raise ValueError(f"method {method!r}: the average-reward criterion (discount == 1) "
                             "is solved by 'policy_iteration' only")
        return average_policy_iteration(mdp, max_iter=max_iter)
    method = "policy_iteration" if method is None else method
    if method not in _SOLVERS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    return _SOLVERS[method](mdp, tol=1e-8 if tol is None else tol, max_iter=max_iter)


def evaluate_continuing(mdp, policy, per_state=False):
    """What :func:`tnmdp.evaluate` returns for a continuing MDP: ``initial @ V^pi``
    (discounted) or the gain from the initial distribution (average reward); with
    ``per_state=True`` the vector ``V^pi`` or the gain of every state, shape ``(S,)``."""
    if mdp.discount >= 1:
        values = average_reward(mdp, policy).gain
    else:
        values = discounted_values(mdp, policy)
    return values if per_state else weighted_sum(mdp.initial, values)
