"""Sampling a finite MDP for the learners: one batched transition sampler, one environment.

The adapters' learners act online -- each action depends on the state just drawn -- so they
cannot use :func:`tnmdp.sample`, which draws whole episodes under a fixed tabular policy. They
share this module instead:

* :class:`TransitionSampler` draws initial states and one transition per episode of a batch,
  by inverse CDF from uniforms the caller supplies (so a learner controls its random streams,
  and a test can give exact uniforms). It is the draw of :func:`tnmdp.sample`, step by step:
  the same inverse-CDF table of each operator, built once and kept in the model's own cache
  (:meth:`tnmdp.FiniteMDP.cached`, shared with ``tnmdp.sample``). All rows of ``P_t`` (an
  ``(S*A, S)`` operator) are searched at once: with ``c`` the within-row cumulative sums of the
  stored entries, row ``r`` owns the keys ``r + c`` (increasing across rows, as each row sums
  to one), and the next state for row ``r`` and uniform ``u`` is the first entry whose key
  exceeds ``r + u * rowsum(r)`` -- one ``searchsorted`` for the whole batch,
  ``O(n log nnz)``, no padded (ELL) table. Zero entries are never drawn. Rewards are read from
  the model's compact reward array; a model with a finite reward alphabet
  (:meth:`tnmdp.FiniteMDP.from_joint`) draws the reward from its conditional law with a second
  uniform.
* :class:`MDPEnvironment` wraps it as a vectorised environment (``reset``/``step``) over
  multi-index states, the interface of the PARAFAC learners (and of
  :class:`tnmdp.adapters.parafac_learn.GymEnvironment`).
* :func:`rollout` runs a batch of episodes with any policy object that has
  ``sample(states, rng)``.

Tables are built once per distinct transition operator and kept by the model.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from ..evaluate import _draw_rows, _row_sampler
from ._compat import UNSET, deprecated_property, renamed_argument

__all__ = ["TransitionSampler", "MDPEnvironment", "Episodes", "rollout"]


def _check_mdp(mdp):
    from ..model import FiniteMDP

    if not isinstance(mdp, FiniteMDP):
        raise TypeError(f"mdp must be a tnmdp.FiniteMDP, not {type(mdp).__name__}")
    mdp.require_horizon()
    return mdp


def _check_uniforms(name, u, n=None):
    u = np.asarray(u, dtype=float)
    if u.ndim != 1 or (n is not None and u.shape != (n,)):
        want = "1-d" if n is None else f"shape ({n},)"
        raise ValueError(f"{name} must be {want}, got shape {u.shape}")
    bad = ~((u >= 0.0) & (u < 1.0))
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"{name}[{i}] = {u[i]} is outside [0, 1)")
    return u


class TransitionSampler:
    """Batched inverse-CDF draws from a finite MDP's initial law and transition kernels.

    Parameters
    ----------
    mdp : FiniteMDP
        Finite horizon ``T``; its operators are read through ``transition_matrix(t)``.

    Notes
    -----
    Building a table costs ``O(nnz(P_t))`` once per distinct operator; each draw of ``n``
    transitions costs ``O(n log nnz(P_t))``.

    Examples
    --------
    >>> import numpy as np, tnmdp
    >>> mdp = tnmdp.FiniteMDP(np.array([[[0.25, 0.75]], [[1.0, 0.0]]]), np.zeros((2, 1)), 3, 0)
    >>> TransitionSampler(mdp).step(0, np.array([0, 0]), np.array([0, 0]),
    ...                             np.array([0.2, 0.3]))[0].tolist()
    [0, 1]
    """

    def __init__(self, mdp):
        self.mdp = _check_mdp(mdp)
        self._initial = _row_sampler(sp.csr_matrix(np.asarray(mdp.initial)[None, :]))

    def _table(self, t):
        P = self.mdp.transition_matrix(t)
        return self.mdp.cached(("sampler", id(P)), lambda: _row_sampler(P))

    def initial_states(self, u):
        """Initial states ``s_0 ~ initial`` for uniforms ``u`` in ``[0, 1)``, shape (n,) ints."""
        u = _check_uniforms("u", u)
        return _draw_rows(self._initial, np.zeros(u.size, dtype=np.intp), u).astype(np.intp)

    def step(self, t, states, actions, u, u_reward=None):
        """Next states and rewards of a batch of transitions at time ``t``.

        Parameters
        ----------
        t : int
            Time step in ``0..T-1``.
        states, actions : ndarray of int, shape (n,)
        u : ndarray, shape (n,)
            Uniforms in ``[0, 1)`` for the next states.
        u_reward : ndarray, shape (n,), optional
            Uniforms for the rewards; required when the model has a reward alphabet
            (``FiniteMDP.from_joint``), ignored otherwise.

        Returns
        -------
        next_states : ndarray of int, shape (n,)
        rewards : ndarray, shape (n,)
            ``R_t(s, a, s')`` (``-inf`` only if a forbidden transition has positive
            probability).
        """
        mdp = self.mdp
        if isinstance(t, bool) or not isinstance(t, numbers.Integral) or not (
                0 <= t < mdp.horizon):
            raise ValueError(f"t must be an int in 0..{mdp.horizon - 1}, got {t!r}")
        s, a = np.asarray(states), np.asarray(actions)
        u = _check_uniforms("u", u, s.shape[0] if s.ndim == 1 else None)
        if s.shape != u.shape or a.shape != u.shape:
            raise ValueError(f"states, actions and u must have one shape (n,), got {s.shape}, "
                             f"{a.shape} and {u.shape}")
        for name, x, size in (("states", s, mdp.n_states), ("actions", a, mdp.n_actions)):
            if x.dtype == bool or not np.issubdtype(x.dtype, np.integer):
                raise TypeError(f"{name} must hold integers, got dtype {x.dtype}")
            bad = (x < 0) | (x >= size)
            if bad.any():
                i = int(np.argmax(bad))
                raise ValueError(f"{name}[{i}] = {x[i]} is outside 0..{size - 1}")
        if mdp.reward_power_law(t) is not None:
            if u_reward is None:
                raise ValueError("u_reward is required: this model draws its rewards from a "
                                 "finite alphabet")
            u_reward = _check_uniforms("u_reward", u_reward, s.shape[0])
        return self._draw(int(t), s, a, u, u_reward)

    def _draw(self, t, s, a, u, u_reward):
        """:meth:`step` without the argument checks (for the learners' inner loops)."""
        mdp = self.mdp
        rows = s.astype(np.intp) * mdp.n_actions + a
        nxt = _draw_rows(self._table(t), rows, u).astype(np.intp)
        law = mdp.reward_power_law(t)
        if law is None:
            r = mdp.reward_slice(t)
            idx = tuple(x if r.shape[i] > 1 else 0 for i, x in enumerate((s, a, nxt)))
            rewards = np.broadcast_to(r[idx], s.shape).astype(float)
        else:
            dist, values = law
            cdf = np.cumsum(dist[s, a, nxt], axis=1)
            j = (cdf < u_reward[:, None] * cdf[:, -1:]).sum(axis=1)
            rewards = np.asarray(values, dtype=float)[np.minimum(j, len(values) - 1)]
        return nxt, rewards


class MDPEnvironment:
    """A :class:`tnmdp.FiniteMDP` as a vectorised environment over multi-index states.

    Parameters
    ----------
    mdp : FiniteMDP
    state_shape : sequence of int, optional
        Factorisation ``(n_0, ..., n_{D-1})`` of the state index (C order); default ``(S,)``.
        Its product must be ``S``. ``mode_sizes=`` is a deprecated alias.

    Notes
    -----
    One :meth:`step` of ``n`` episodes costs ``O(n log nnz)`` (:class:`TransitionSampler`).
    The terminal reward is added to the last step's reward times ``gamma``, so the discounted
    sum of sampled rewards has expectation ``tnmdp.evaluate``.
    """

    def __init__(self, mdp, state_shape=None, *, mode_sizes=UNSET):
        state_shape = renamed_argument("MDPEnvironment", "mode_sizes", "state_shape", mode_sizes,
                                       UNSET if state_shape is None else state_shape, None)
        self.mdp = _check_mdp(mdp)
        shape = (mdp.n_states,) if state_shape is None else tuple(int(n) for n in state_shape)
        if int(np.prod(shape)) != mdp.n_states:
            raise ValueError(f"state_shape {shape} multiplies to {int(np.prod(shape))}, "
                             f"not n_states={mdp.n_states}")
        self.state_shape = shape
        self.max_steps = mdp.horizon
        self.discount = mdp.discount
        self.sampler = TransitionSampler(mdp)

    mode_sizes = deprecated_property("mode_sizes", "state_shape")

    def _multi(self, flat):
        return np.stack(np.unravel_index(flat, self.state_shape), axis=1)

    def reset(self, n, rng):
        """Draw ``n`` initial states; multi-indices of shape (n, D)."""
        self._t = 0
        self._states = self.sampler.initial_states(rng.random(n))
        return self._multi(self._states)

    def step(self, actions, rng):
        """Advance all episodes; returns ``(states (n, D), rewards (n,), done (n,) bool)``."""
        mdp, t, s = self.mdp, self._t, self._states
        law = mdp.reward_power_law(t) is not None
        actions = np.asarray(actions)
        if actions.shape != s.shape or not np.issubdtype(actions.dtype, np.integer) or (
                (actions < 0) | (actions >= mdp.n_actions)).any():
            raise ValueError(f"actions must be {s.size} ints in 0..{mdp.n_actions - 1}")
        nxt, r = self.sampler._draw(t, s, actions, rng.random(s.size),
                                    rng.random(s.size) if law else None)
        self._t += 1
        done = np.full(s.size, self._t >= mdp.horizon)
        if self._t >= mdp.horizon:
            r = r + mdp.discount * mdp.terminal_rewards[nxt]
        self._states = nxt
        return self._multi(nxt), r, done

    def exact_return(self, policy):
        """``tnmdp.evaluate`` of a policy's tabular form (``policy.to_policy(mdp)``).

        ``None`` for a policy without a tabular form (``to_policy`` missing or a Gaussian).
        """
        if getattr(policy, "kind", "softmax") != "softmax" or not hasattr(policy, "to_policy"):
            return None
        from ..evaluate import evaluate

        return float(evaluate(self.mdp, policy.to_policy(self.mdp)))


@dataclass
class Episodes:
    """A batch of sampled episodes (padded to the longest).

    Attributes
    ----------
    states : ndarray of int, shape (n, T, D)
        Multi-index state before each step.
    actions : ndarray, shape (n, T) or (n, T, A)
    rewards : ndarray, shape (n, T)
        Zero after the episode ended.
    alive : ndarray of bool, shape (n, T)
        Whether the episode was still running at each step.
    """

    states: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    alive: np.ndarray


def rollout(env, policy, n_episodes, rng):
    """Run ``n_episodes`` episodes of ``env`` with ``policy.sample(states, rng)``.

    Parameters
    ----------
    env : MDPEnvironment or an object with ``reset(n, rng)``, ``step(actions, rng)`` and
        ``max_steps``
    policy : object with ``sample(states, rng)``
    n_episodes : int
    rng : numpy.random.Generator

    Returns
    -------
    Episodes
        Stops early once every episode is done.
    """
    idx = env.reset(n_episodes, rng)
    states, actions, rewards, alive = [], [], [], []
    running = np.ones(n_episodes, dtype=bool)
    for _ in range(env.max_steps):
        act = policy.sample(idx, rng)
        states.append(idx)
        actions.append(act)
        alive.append(running.copy())
        idx, r, done = env.step(act, rng)
        rewards.append(np.where(running, r, 0.0))
        running &= ~done
        if not running.any():
            break
    return Episodes(np.stack(states, 1), np.stack(actions, 1), np.stack(rewards, 1),
                    np.stack(alive, 1))
