"""Continuing MDPs under the average-reward criterion (``discount == 1``): gain and bias.

For a stationary policy with Markov matrix ``P`` and reward ``r`` (S,), the **gain**
``g = P* r`` (``P*`` the Cesaro limit of ``P^n``) is constant on each recurrent class and the
**bias** ``h = sum_n (P^n - P*) r`` is the solution of

    g = P g,     g + (I - P) h = r,     P* h = 0                        (Puterman 1994, 8.2)

i.e. the stationary-weighted mean of ``h`` is 0 on every recurrent class. :func:`average_reward`
solves it class by class: on a recurrent class ``C`` one sparse LU of ``I - P_C`` with one
column replaced by ones gives ``(g_C, h_C)`` with ``h_C(ref) = 0``, and the transposed solve with
the same factors gives the stationary law ``pi_C`` (so ``h_C`` is shifted to ``pi_C h_C = 0``);
transient states follow from ``(I - P_TT) g_T = P_TR g_R`` and
``(I - P_TT) h_T = r_T - g_T + P_TR h_R``. Classes come from :mod:`tnmdp.chains` (networkx).

:func:`average_policy_iteration` is Puterman's multichain policy iteration (Sect. 9.2.1): improve
the gain first (``max_a sum_j P(j|s,a) g(j)``), and only where no gain improvement exists, the
bias among the gain-maximising actions (``max_a r(s,a) + sum_j P(j|s,a) h(j)``), keeping the
current action whenever it attains the maximum (within round-off). For unichain models it is
the unichain policy iteration of Sect. 8.6.1 (the gain is constant, so the first step never
changes an action). It stops when the policy repeats; the result is gain-optimal (Thm 9.2.3).
"""

from __future__ import annotations

import numbers
from typing import NamedTuple

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from .chains import recurrent_classes
from .kernels import greedy, matvec, weighted_sum
from .solution import Solution
from .stationary import StationaryPolicy, as_stationary_policy, check_continuing, policy_matrix

__all__ = ["AverageReward", "average_reward", "average_policy_iteration"]

_EPS = np.finfo(float).eps


class AverageReward(NamedTuple):
    """Gain and bias of a stationary policy.

    Attributes
    ----------
    gain : ndarray, shape (S,)
        ``g(s) = lim_N E[sum_{t<N} r_t | s_0 = s] / N``.
    bias : ndarray, shape (S,)
        ``h(s)``, with stationary mean 0 on each recurrent class.
    recurrent_classes : tuple of ndarray of int
    transient_states : ndarray of int
    stationary : ndarray, shape (S,)
        ``sum_C pi_C``: the stationary law of each class (each sums to 1 on its class; 0 on
        transient states).
    """

    gain: np.ndarray
    bias: np.ndarray
    recurrent_classes: tuple
    transient_states: np.ndarray
    stationary: np.ndarray


def _submatrix(P, rows, cols):
    sub = P[rows][:, cols] if sp.issparse(P) else P[np.ix_(rows, cols)]
    return sp.csc_array(sub)


def _class_solve(P_C, r_C):
    """Gain, bias (stationary mean 0) and stationary law of an irreducible chain."""
    n = r_C.shape[0]
    M = (sp.eye_array(n, format="csc") - P_C).tolil()
    M[:, 0] = np.ones((n, 1))  # unknown 0 is the gain; h(0) = 0
    lu = spla.splu(sp.csc_array(M))
    x = lu.solve(r_C)
    e0 = np.zeros(n)
    e0[0] = 1.0
    pi = lu.solve(e0, trans="T")  # pi (I - P) = 0 off column 0, pi . 1 = 1
    gain = float(x[0])
    h = x.copy()
    h[0] = 0.0
    h -= pi @ h
    return gain, h, pi


def _evaluate(P, r):
    S = r.shape[0]
    classes, transient = recurrent_classes(P)
    gain, bias, stat = np.zeros(S), np.zeros(S), np.zeros(S)
    for C in classes:
        g, h, pi = _class_solve(_submatrix(P, C, C), r[C])
        gain[C], bias[C], stat[C] = g, h, pi
    if transient.size:
        rec = np.setdiff1d(np.arange(S), transient)
        A_TT = sp.eye_array(transient.size, format="csc") - _submatrix(P, transient, transient)
        P_TR = _submatrix(P, transient, rec)
        lu = spla.splu(sp.csc_array(A_TT))
        gain[transient] = lu.solve(P_TR @ gain[rec])
        bias[transient] = lu.solve(r[transient] - gain[transient] + P_TR @ bias[rec])
    return AverageReward(gain, bias, classes, transient, stat)


def _check(mdp, name):
    check_continuing(mdp, name)
    if mdp.discount != 1:
        raise ValueError(f"{name} needs discount == 1 (average reward); mdp.discount is "
                         f"{mdp.discount}: use tnmdp.solve for the discounted criterion")
    if mdp.has_neg_inf:
        raise ValueError(f"{name}: -inf rewards are not supported under the average-reward "
                         "criterion (the gain of a chain meeting one is -inf); remove the "
                         "forbidden actions from the model instead")


def average_reward(mdp, policy):
    """Gain and bias of a stationary policy of a continuing MDP with ``discount == 1``.

    Parameters
    ----------
    mdp : FiniteMDP
        Continuing, ``discount == 1``, finite rewards.
    policy : StationaryPolicy or array_like (S, A) or (S,) int actions

    Returns
    -------
    AverageReward

    Notes
    -----
    Cost: the classification ``O(S + nnz(P_pi))`` plus one sparse LU per recurrent class and
    one for the transient states (fill-in is the model's: banded chains are cheap).
    """
    _check(mdp, "average_reward")
    P, r = policy_matrix(mdp, as_stationary_policy(policy, mdp))
    return _evaluate(P, r)


def average_policy_iteration(mdp, *, max_iter=None, initial_policy=None):
    """Multichain policy iteration for the average-reward criterion (Puterman Sect. 9.2.1).

    Parameters
    ----------
    mdp : FiniteMDP
        Continuing, ``discount == 1``.
    max_iter : int, optional
        Default 1000 improvements.
    initial_policy : StationaryPolicy or array_like, optional
        Deterministic start; default: greedy in the one-step reward.

    Returns
    -------
    Solution
        ``policy`` (deterministic, stationary), ``values`` the bias ``h`` of the policy,
        ``expected_return`` the gain from ``mdp.initial`` (``initial @ g``), ``history`` the
        gain from the initial distribution after each evaluation. The gain vector itself:
        ``average_reward(mdp, solution.policy).gain``.

    Notes
    -----
    Each iteration: one :func:`average_reward` evaluation and two sweeps ``O(nnz(P))``.
    """

    _check(mdp, "average_policy_iteration")
    if max_iter is not None and (isinstance(max_iter, bool) or not isinstance(
            max_iter, numbers.Integral) or max_iter < 1):
        raise ValueError(f"max_iter must be None or an int >= 1, got {max_iter!r}")
    max_iter = 1000 if max_iter is None else int(max_iter)
    S, A = mdp.n_states, mdp.n_actions
    P, rbar = mdp.transition_matrix(0), mdp.expected_reward(0)
    rows = np.arange(S)
    if initial_policy is None:
        actions = greedy(rbar)[0]
    else:
        actions = as_stationary_policy(initial_policy, mdp, name="initial_policy").actions
    history = []
    for it in range(1, max_iter + 1):
        policy = StationaryPolicy.from_actions(actions, A)
        ev = _evaluate(*policy_matrix(mdp, policy))
        history.append(weighted_sum(mdp.initial, ev.gain))
        scale = max(1.0, float(np.abs(ev.bias).max()), float(np.abs(rbar).max()))
        margin = 1e3 * _EPS * scale * max(1.0, np.sqrt(S))
        # 1. gain improvement
        pg = matvec(P, ev.gain).reshape(S, A)
        best_g = pg.max(axis=1)
        keep = pg[rows, actions] >= best_g - margin
        new = np.where(keep, actions, np.argmax(pg, axis=1))
        if not keep.all():
            actions = new
            continue
        # 2. bias improvement among the gain-maximising actions
        q = rbar + matvec(P, ev.bias).reshape(S, A)
        q = np.where(pg >= best_g[:, None] - margin, q, -np.inf)
        best_q = q.max(axis=1)
        keep = q[rows, actions] >= best_q - margin
        if keep.all():
            break
        actions = np.where(keep, actions, np.argmax(q, axis=1))
    converged = bool(keep.all())
    if not converged:  # the last improvement was not evaluated yet
        ev = _evaluate(*policy_matrix(mdp, StationaryPolicy.from_actions(actions, A)))
    message = ("converged (average-reward policy iteration, Puterman Sect. 9.2.1): no gain or "
               "bias improvement beyond round-off; the policy is gain-optimal (Thm 9.2.3); "
               f"{len(ev.recurrent_classes)} recurrent class(es)") if converged else (
        f"not converged after max_iter={max_iter} improvements")
    return Solution(policy=StationaryPolicy.from_actions(actions, A),
                    expected_return=weighted_sum(mdp.initial, ev.gain), values=ev.bias,
                    soft_value=None, history=np.asarray(history), n_sweeps=it,
                    success=bool(converged), status=0 if converged else 1, message=message,
                    mdp=mdp)
