"""Exact references for the learners, computed with tnmdp's own backup and evaluation.

The adapters measure learned models against exact quantities of a :class:`tnmdp.FiniteMDP`;
these functions compute them with tnmdp's public evaluation and solve (:func:`tnmdp.solve` and
:meth:`tnmdp.Solution.q_values`, :func:`tnmdp.policy_values`, :func:`tnmdp.marginals`) and the
core's Bellman backup, which are ``-inf`` safe: a forbidden (``-inf``) reward on a transition of
probability zero, or in a state the policy never reaches, contributes nothing and never
produces ``nan``.

* :func:`action_values` -- the action values ``Q_t(s, a)`` of a tabular policy, or of the
  optimum (the exact backward sweep of :func:`tnmdp.solve`).
* :func:`logit_gradient` -- the exact expected return of a softmax policy and its gradient by
  the logits (the policy-gradient theorem, exact: no sampling)::

      dJ / dlogits_t[s, a] = gamma^t d_t(s) pi_t(a|s) (Q_t(s, a) - V_t(s))

  with ``d_t`` the state marginals (left environments) and ``Q_t``, ``V_t`` the policy's
  action and state values (right environments). A parametrised policy pulls it back to its
  parameters by its own vector-Jacobian product (e.g. the PARAFAC factors in
  :func:`tnmdp.adapters.parafac_learn.exact_gradient`).

Costs are those of one backward sweep, ``O(sum_t nnz(P_t))``, plus ``O(T S A)`` for the tables.
"""

from __future__ import annotations

import numbers

import numpy as np

from ..kernels import backup, row_sum

__all__ = ["action_values", "logit_gradient"]


def _check_mdp(mdp):
    from ..model import FiniteMDP

    if not isinstance(mdp, FiniteMDP):
        raise TypeError(f"mdp must be a tnmdp.FiniteMDP, not {type(mdp).__name__}")
    mdp.require_horizon()
    return mdp


def _policy_table(mdp, policy):
    """The validated :class:`tnmdp.Policy` (any form :func:`tnmdp.evaluate` accepts)."""
    from ..policy import as_policy

    return as_policy(policy, mdp)


def _expectation(probs, values):
    """``sum_a probs[s, a] values[s, a]`` with ``0 * -inf = 0``, shape (S,)."""
    if not np.isneginf(values).any():
        return row_sum(probs * values)
    taken = probs > 0
    return row_sum(np.where(taken, probs * np.where(taken, values, 0.0), 0.0))


def action_values(mdp, policy=None, *, time=None):
    """Action values ``Q_t(s, a) = rbar_t(s, a) + gamma sum_s' P_t(s'|s, a) V_{t+1}(s')``.

    Parameters
    ----------
    mdp : FiniteMDP
        Finite horizon ``T``; ``-inf`` rewards allowed.
    policy : Policy or array_like, shape (T, S, A), optional
        ``V_{t+1}`` is this policy's value; default the optimal value (``max_a Q``).
    time : int, optional
        Return only ``Q_time`` (one backup from the values-to-go).

    Returns
    -------
    ndarray, shape (T, S, A), or (S, A) with ``time``
        ``-inf`` where a forbidden transition has positive probability from ``(s, a)`` on.

    Notes
    -----
    The optimum's are :meth:`tnmdp.Solution.q_values` of ``tnmdp.solve(mdp)``;
    ``max_a Q_0(s, a)`` is ``tnmdp.solve(mdp).values``. A policy's come from
    :func:`tnmdp.policy_values`, one backup per step. Cost ``O(sum_t nnz(P_t))`` (one solve or
    one evaluation, then the backups) plus ``O(T S A)`` for the table.
    """
    from ..evaluate import policy_values

    mdp = _check_mdp(mdp)
    T = mdp.horizon
    if time is not None and (isinstance(time, bool) or not isinstance(time, numbers.Integral)
                             or not 0 <= time < T):
        raise ValueError(f"time must be an int in 0..{T - 1}, got {time!r}")
    if policy is None:
        from ..solve import solve

        q_at = solve(mdp).q_values
    else:
        values = policy_values(mdp, _policy_table(mdp, policy))

        def q_at(t):
            return backup(mdp, t, values[t + 1])

    if time is not None:
        return np.array(q_at(int(time)), dtype=float)
    return np.stack([q_at(t) for t in range(T)]).astype(float)


def logit_gradient(mdp, policy):
    """Exact return of a tabular policy and its gradient by softmax logits, per time step.

    With ``pi_t(.|s) = softmax(logits_t[s, :])``, the gradient of ``J = E[G]`` by
    ``logits_t[s, a]`` is ``gamma^t d_t(s) pi_t(a|s) (Q_t(s, a) - V_t(s))``.

    Parameters
    ----------
    mdp : FiniteMDP
    policy : Policy or array_like, shape (T, S, A)
        The softmax probabilities (every entry ``> 0`` for a softmax; zeros are allowed and
        get gradient 0).

    Returns
    -------
    value : float
        ``J = tnmdp.evaluate(mdp, policy)``.
    gradient : ndarray, shape (T, S, A)
        ``dJ / dlogits_t[s, a]``; a stationary parametrisation sums it over ``t``.

    Raises
    ------
    ValueError
        If ``J = -inf`` (a forbidden move has positive probability): the gradient is not
        defined.

    Notes
    -----
    One backward sweep (tnmdp's backup) and one forward sweep (:func:`tnmdp.marginals`):
    ``O(sum_t nnz(P_t) + T S A)``.
    """
    from ..evaluate import marginals

    mdp = _check_mdp(mdp)
    pol = _policy_table(mdp, policy)
    dist = np.asarray(marginals(mdp, pol))
    T, gamma = mdp.horizon, mdp.discount
    # one backward pass keeps Q_t and V_t (tnmdp.policy_values would discard Q_t)
    values = np.empty((T + 1, mdp.n_states))
    values[T] = mdp.terminal_rewards
    q = np.empty((T, mdp.n_states, mdp.n_actions))
    pi = np.asarray(pol, dtype=float)
    for t in range(T - 1, -1, -1):
        q[t] = backup(mdp, t, values[t + 1])
        values[t] = _expectation(pi[t], q[t])
    weight = (gamma ** np.arange(T))[:, None] * dist[:T]  # gamma^t d_t(s), (T, S)
    live = (weight[:, :, None] > 0) & (pi > 0)
    forbidden = live & np.isneginf(q)
    if forbidden.any():
        t, s, a = np.argwhere(forbidden)[0]
        raise ValueError(f"the policy's expected return is -inf (from state {s}, action {a} at "
                         f"t={t} a forbidden move has positive probability); its gradient is "
                         "not defined")
    v = np.where(np.isneginf(values[:T]), 0.0, values[:T])[:, :, None]
    grad = np.where(live, weight[:, :, None] * pi * (np.where(live, q, 0.0) - v), 0.0)
    init = np.asarray(mdp.initial, dtype=float)
    value = float(np.where(init > 0, init * np.where(init > 0, values[0], 0.0), 0.0).sum())
    return value, grad
