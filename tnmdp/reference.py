"""Independent exact references: plain dynamic programming on dense raw arrays.

The oracle of the tests. It imports nothing from :mod:`tnmdp` -- no model, kernel, sweep or
network -- and works on arrays the caller built: transitions ``(T|1, S, A, S)`` (or
``(S, A, S)``), rewards in the DESIGN forms (by number of dimensions: ``(S, A)``,
``(S, A, S')``, ``(T, S, A, S')``, singleton axes broadcast), the initial distribution, the
terminal rewards and the discount. Backward induction is the textbook recursion
(Puterman, *Markov Decision Processes*, 1994, Sect. 4.5)::

    Q_t(s, a) = sum_s' P_t(s'|s, a) (R_t(s, a, s') + gamma V_{t+1}(s'))   (0 * -inf = 0)
    V_t(s)    = max_a Q_t(s, a),  pi_t(s) = lowest argmax

and its soft (KL-regularised) version replaces the max by
``tau logsumexp_a(log pi0(a|s) + Q/tau)`` in log space. Dense ``(S, A, S)`` per step: for small
and moderate problems (tests), not for speed.

:func:`backward_induction` and :func:`soft_backward_induction` keep the historical signatures
that take a model: they read it only through plain attributes (duck typing: ``n_states``,
``n_actions``, ``horizon``, ``discount``, ``initial``, ``terminal_rewards``, ``rewards`` and
``transition_matrix(t)``, see :func:`model_arrays`) and then run the raw-array functions.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

__all__ = ["backward_induction_arrays", "soft_backward_induction_arrays", "model_arrays",
           "backward_induction", "soft_backward_induction", "dense_model", "ReferencePolicy",
           "ReferenceSolution"]


# ---------------------------------------------------------------------------------- raw arrays
def _transitions(transitions):
    P = np.asarray(transitions, dtype=np.float64)
    if P.ndim == 3:
        P = P[None]
    if P.ndim != 4 or P.shape[1] != P.shape[3]:
        raise ValueError(f"transitions must have shape (S, A, S) or (T, S, A, S), got {P.shape}")
    return P


def _rewards(rewards):
    R = np.asarray(rewards, dtype=np.float64)
    if R.ndim == 2:
        return R[None, :, :, None]
    if R.ndim == 3:
        return R[None]
    if R.ndim == 4:
        return R
    raise ValueError(f"rewards must have 2, 3 or 4 dimensions, got shape {R.shape}")


def _horizon(P, R, horizon):
    T = max(P.shape[0], R.shape[0]) if horizon is None else int(horizon)
    for name, n in (("transitions", P.shape[0]), ("rewards", R.shape[0])):
        if n not in (1, T):
            raise ValueError(f"{name} has {n} time steps; horizon is {T}")
    return T


def _q(P, R, v, gamma):
    """``sum_s' P (R + gamma v)`` with ``0 * -inf = 0``; ``P`` (S, A, S), ``R`` broadcasting."""
    with np.errstate(invalid="ignore"):
        terms = np.where(P > 0, P * (R + gamma * v[None, None, :]), 0.0)
    return terms.sum(axis=2)


def _weighted(initial, v):
    with np.errstate(invalid="ignore"):
        return float(np.where(initial > 0, initial * v, 0.0).sum())


def backward_induction_arrays(transitions, rewards, initial, terminal=None, discount=1.0, *,
                              horizon=None):
    """Plain backward induction on raw arrays.

    Parameters
    ----------
    transitions : array_like, shape (S, A, S) or (T|1, S, A, S)
        ``P_t[s, a, s']``.
    rewards : array_like
        ``(S, A)``, ``(S, A, S')`` or ``(T|1, S|1, A|1, S'|1)``; ``-inf`` allowed.
    initial : array_like, shape (S,)
        Initial distribution.
    terminal : array_like, shape (S,), optional
        Terminal rewards (default 0).
    discount : float
    horizon : int, optional
        ``T``; default the longest time axis of ``transitions`` and ``rewards``.

    Returns
    -------
    actions : ndarray of int64, shape (T, S)
        The optimal deterministic policy, ties to the lowest action.
    values : ndarray, shape (S,)
        ``V_0``.
    expected_return : float
        ``sum_s initial[s] V_0[s]`` (zero-probability states skipped).

    Notes
    -----
    Cost ``O(T S^2 A)`` time, ``O(S^2 A)`` memory.
    """
    P, R = _transitions(transitions), _rewards(rewards)
    T, S = _horizon(P, R, horizon), P.shape[1]
    initial = np.asarray(initial, dtype=np.float64)
    v = np.zeros(S) if terminal is None else np.array(terminal, dtype=np.float64)
    actions = np.empty((T, S), dtype=np.int64)
    for t in range(T - 1, -1, -1):
        q = _q(P[t % P.shape[0]], R[t % R.shape[0]], v, discount)
        actions[t] = np.argmax(q, axis=1)
        v = q.max(axis=1)
    return actions, v, _weighted(initial, v)


def soft_backward_induction_arrays(transitions, rewards, initial, terminal=None, discount=1.0,
                                   *, temperature, reference_policy=None, horizon=None):
    """Soft (KL-regularised) dynamic programming in log space, on raw arrays.

    Parameters
    ----------
    transitions, rewards, initial, terminal, discount, horizon
        As for :func:`backward_induction_arrays`.
    temperature : float
        ``tau > 0``.
    reference_policy : array_like (T, S, A), optional
        ``pi0``; uniform by default.

    Returns
    -------
    soft_value : float
        ``max_pi J_tau`` from the initial distribution.
    values : ndarray, shape (S,)
        Soft values ``V_0``.
    policy : ndarray, shape (T, S, A)
        The optimal policy ``pi_t ∝ pi0 exp(Q_t / tau)`` (``pi0`` where every action is
        forbidden).
    """
    P, R = _transitions(transitions), _rewards(rewards)
    T, S, A = _horizon(P, R, horizon), P.shape[1], P.shape[2]
    pi0 = np.full((T, S, A), 1.0 / A) if reference_policy is None else np.asarray(
        reference_policy, dtype=np.float64)
    v = np.zeros(S) if terminal is None else np.array(terminal, dtype=np.float64)
    policy = np.empty((T, S, A))
    for t in range(T - 1, -1, -1):
        q = _q(P[t % P.shape[0]], R[t % R.shape[0]], v, discount)
        with np.errstate(divide="ignore"):
            z = np.log(pi0[t]) + q / temperature
        zmax = z.max(axis=1, keepdims=True)
        finite = np.isfinite(zmax)
        shift = np.where(finite, zmax, 0.0)
        with np.errstate(divide="ignore"):
            lse = shift + np.log(np.exp(z - shift).sum(axis=1, keepdims=True))
        policy[t] = np.where(finite, np.exp(z - np.where(finite, lse, 0.0)), pi0[t])
        v = temperature * np.where(finite, lse, -np.inf)[:, 0]
    return _weighted(np.asarray(initial, dtype=np.float64), v), v, policy


# ---------------------------------------------------------------------------------- models
def dense_model(mdp, t):
    """``(P, R)`` at step ``t`` as dense ``(S, A, S)`` arrays (``R`` broadcast in full), read
    from a model's plain attributes."""
    S, A = mdp.n_states, mdp.n_actions
    P = mdp.transition_matrix(t)
    P = (P.toarray() if sp.issparse(P) else np.asarray(P)).reshape(S, A, S)
    R = np.broadcast_to(mdp.rewards[t if mdp.rewards.shape[0] > 1 else 0], (S, A, S))
    return P, R


def model_arrays(mdp):
    """The raw arrays of a model, as keyword arguments of :func:`backward_induction_arrays`.

    Reads only plain attributes (duck typing, nothing imported): dense transitions
    ``(T|1, S, A, S)``, the rewards as stored ``(T|1, S|1, A|1, S|1)``, ``initial``,
    ``terminal``, ``discount`` and ``horizon``.
    """
    S, A, T = mdp.n_states, mdp.n_actions, mdp.horizon
    if T is None:
        raise ValueError("the reference oracles need a finite horizon; mdp is continuing "
                         "(horizon=None)")
    mats = {}
    for t in range(T):
        P = mdp.transition_matrix(t)
        if id(P) not in mats:
            mats[id(P)] = (P.toarray() if sp.issparse(P) else np.asarray(P)).reshape(S, A, S)
    P = np.stack([mats[id(mdp.transition_matrix(t))] for t in range(T)]) if len(mats) > 1 \
        else next(iter(mats.values()))[None]
    return dict(transitions=P, rewards=np.asarray(mdp.rewards), initial=np.asarray(mdp.initial),
                terminal=np.asarray(mdp.terminal_rewards), discount=float(mdp.discount),
                horizon=T)


class ReferencePolicy:
    """A deterministic policy as the oracle returns it: ``actions[t, s]``, array-like.

    ``np.asarray(policy)`` is the one-hot ``(T, S, A)`` array, so it is accepted wherever a
    ``(T, S, A)`` policy array is (e.g. :func:`tnmdp.evaluate`).
    """

    deterministic = True

    def __init__(self, actions, n_actions):
        self.actions = np.asarray(actions)
        self.actions.flags.writeable = False
        self.horizon, self.n_states = self.actions.shape
        self.n_actions = int(n_actions)
        self.shape = (self.horizon, self.n_states, self.n_actions)

    def __len__(self):
        return self.horizon

    def __getitem__(self, t):
        return np.asarray(self)[t]

    def __array__(self, dtype=None, copy=None):
        out = np.zeros(self.shape, dtype=dtype or np.float64)
        T, S = self.actions.shape
        out[np.arange(T)[:, None], np.arange(S)[None, :], self.actions] = 1.0
        return out


class ReferenceSolution:
    """What :func:`backward_induction` returns: the fields of :class:`tnmdp.Solution`."""

    def __init__(self, actions, values, expected_return, n_actions):
        values = np.array(values)
        values.flags.writeable = False
        self.policy = ReferencePolicy(actions, n_actions)
        self.values, self.expected_return = values, expected_return
        self.soft_value, self.n_sweeps, self.success, self.status = None, 1, True, 0
        self.history = np.array([expected_return])
        self.message = "backward induction"

    def __repr__(self):
        return f"ReferenceSolution(expected_return={self.expected_return:.12g})"


def backward_induction(mdp):
    """Plain backward induction of a model, the oracle (:func:`backward_induction_arrays` on
    :func:`model_arrays`).

    Returns
    -------
    ReferenceSolution
        ``policy`` (deterministic, ``.actions`` ``(T, S)``, ties to the lowest action),
        ``values`` ``(S,)``, ``expected_return``; ``history`` holds the final objective.
    """
    actions, values, expected = backward_induction_arrays(**model_arrays(mdp))
    return ReferenceSolution(actions, values, expected, mdp.n_actions)


def soft_backward_induction(mdp, temperature, reference_policy=None):
    """Soft dynamic programming of a model (:func:`soft_backward_induction_arrays` on
    :func:`model_arrays`); returns ``(soft_value, values, policy)``."""
    return soft_backward_induction_arrays(**model_arrays(mdp), temperature=temperature,
                                          reference_policy=reference_policy)
