"""Environments of the policy chain: left/right recursions kept whole or at checkpoints.

Contracting the network ``<-r| G M |pi>`` (Gillman, Rose & Garrahan 2020, Sect. 4) left of site
``t`` gives the *left environment* -- the state distribution ``Pr(s_t = .)`` and the reward
collected so far; contracting right of it gives the *right environment* -- the values
``V_{t+1}``. Each moves one site with one matrix-vector product, ``O(nnz(P_t))``, as quimb's
``MovingEnvironment`` does for DMRG (``quimb/tensor/tn1d/dmrg.py``).

A sweep needs the environments of the other direction at every site. They are kept whole when
``(T + 1)`` of them fit in :data:`MEMORY_BUDGET` bytes, else at every ``ceil(sqrt(T))``-th
site, and a block is recomputed from its checkpoint when read (Griewank's checkpointing with
one level: ``O(sqrt(T))`` memory for one extra pass). :data:`MEMORY_BUDGET` is the one budget
every cache of per-site vectors uses (numpy and compiled sweeps, soft policies).
"""

from __future__ import annotations

import math

import numpy as np

from .kernels import (backup, log_reference, propagate, row_objective, site_probabilities,
                      site_value, weighted_sum)

__all__ = ["MEMORY_BUDGET", "Checkpoints", "recursion", "SiteEnvironments", "right_values"]

#: Bytes a cache of per-site vectors (environments, soft values) may use before it switches to
#: ``sqrt(T)`` checkpoints.
MEMORY_BUDGET = 128 * 2**20


class Checkpoints:
    """A sequence ``x_0..x_n`` defined by a recursion, kept whole or at checkpoints.

    Parameters
    ----------
    step : callable
        ``step(t, x) -> x'``: for ``forward=True`` maps ``x_t`` to ``x_{t+1}``; otherwise maps
        ``x_{t+1}`` to ``x_t``.
    n : int
        Last index.
    nbytes : int
        Size of one element; with ``(n + 1) * nbytes <= MEMORY_BUDGET`` all elements are kept,
        otherwise every ``ceil(sqrt(n))``-th, and a block is recomputed from its checkpoint when
        an element inside it is read (one extra pass over the recursion in all).
    forward : bool

    Notes
    -----
    Fill it by calling :meth:`record` for every index in recursion order; read with ``[t]``.
    Sequential reads in either direction cost ``O(1)`` recursion steps per element.
    """

    def __init__(self, step, n, nbytes, forward, budget=None):
        self.step, self.n, self.forward = step, n, forward
        budget = MEMORY_BUDGET if budget is None else budget
        self.stride = 1 if (n + 1) * nbytes <= budget else max(1, math.isqrt(n) + 1)
        self._stored, self._block = {}, {}

    def record(self, t, x):
        """Offer ``x_t`` (in recursion order); it is kept if ``t`` is a checkpoint."""
        if self.stride == 1 or t % self.stride == 0 or t == self.n or t == 0:
            self._stored[t] = x

    def __getitem__(self, t):
        x = self._stored.get(t)
        if x is not None:
            return x
        x = self._block.get(t)
        if x is not None:
            return x
        k = self.stride
        if self.forward:
            start, stop = (t // k) * k, min(self.n, (t // k + 1) * k)
            x, block = self._stored[start], {}
            for u in range(start, stop - 1):
                x = self.step(u, x)
                block[u + 1] = x
        else:
            stop, start = min(self.n, (t // k + 1) * k), (t // k) * k
            x, block = self._stored[stop], {}
            for u in range(stop - 1, start, -1):
                x = self.step(u, x)
                block[u] = x
        self._block = block
        return block[t]

    @property
    def nbytes(self):
        """Bytes held by the stored checkpoints."""
        return sum(getattr(x, "nbytes", 0) for x in self._stored.values())


def recursion(step, first, n, nbytes, forward, budget=None):
    """Run a whole recursion ``x_0 .. x_n`` into a :class:`Checkpoints` store.

    Parameters
    ----------
    step : callable
        As for :class:`Checkpoints`.
    first : object
        ``x_0`` (``forward``) or ``x_n`` (backward).
    n, nbytes, forward, budget
        As for :class:`Checkpoints`.

    Returns
    -------
    Checkpoints

    Notes
    -----
    ``n`` calls of ``step``; memory ``min(n + 1, O(sqrt(n)))`` elements.
    """
    store = Checkpoints(step, n, nbytes, forward, budget)
    x = first
    order = range(n + 1) if forward else range(n, -1, -1)
    for t in order:
        if t != order[0]:
            x = step(t - 1, x) if forward else step(t, x)
        store.record(t, x)
    return store


class SiteEnvironments:
    """The environment moves of one MDP, temperature and reference policy.

    ``right_step(sites)`` maps ``V_{t+1}`` to ``V_t`` (one backup, ``O(nnz(P_t))``) and
    ``left_step(sites)`` maps the left environment ``(dist, acc)`` at ``t`` to ``t + 1`` (one
    transposed product): the recursions that :func:`recursion` and :class:`Checkpoints` keep.
    The objective includes the KL term ``-tau sum pi log(pi / pi0)`` when ``temperature > 0``.

    Parameters
    ----------
    mdp : FiniteMDP
    temperature : float
    reference : Policy or None
        ``pi0`` (uniform when ``None``).
    """

    def __init__(self, mdp, temperature, reference):
        self.mdp, self.temperature, self.reference = mdp, temperature, reference
        self.shape = (mdp.n_states, mdp.n_actions)
        self._time_rewards = not (mdp.stationary_transitions and mdp.rewards.shape[0] == 1)
        self._stage_cache = {}

    def log_pi0(self, t):
        return log_reference(self.reference, t, self.shape)

    def value(self, t, q, site):
        """``V_t[s] = sum_a pi (Q - tau log(pi/pi0))`` for a stored site."""
        return site_value(q, site, self.log_pi0(t), self.temperature)

    def stage_value(self, t, site):
        """Per-state expected stage objective ``sum_a pi (rbar - tau log(pi/pi0))``, shape (S,).

        Cached per site object (and time step when the reference varies with time), so a shared
        site -- the uniform initial policy -- is computed once.
        """
        key = (id(site), t if self.reference is not None else -1, t if self._time_rewards else -1)
        hit = self._stage_cache.get(key)
        if hit is not None and hit[0] is site:
            return hit[1]
        probs = site_probabilities(site, self.mdp.n_actions)
        rows = row_objective(self.mdp.expected_reward(t), probs, self.log_pi0(t), self.temperature)
        if len(self._stage_cache) > 8:
            self._stage_cache.clear()
        self._stage_cache[key] = (site, rows)
        return rows

    def advance(self, t, left, site):
        """Move the left environment ``(dist, acc)`` across site ``t``."""
        dist, acc = left
        gain = weighted_sum(dist, self.stage_value(t, site))
        weights = dist[:, None] * site_probabilities(site, self.mdp.n_actions)
        return propagate(self.mdp, t, weights), acc + self.mdp.discount ** t * gain

    def right_step(self, sites):
        """``V_{t+1} -> V_t`` for the policy ``sites``."""
        return lambda t, v: self.value(t, backup(self.mdp, t, v), sites[t])

    def left_step(self, sites):
        return lambda t, left: self.advance(t, left, sites[t])


def right_values(mdp, policy):
    """The right environments of a policy: values-to-go ``V_t`` for ``t = 0..T``.

    Parameters
    ----------
    mdp : FiniteMDP
    policy : Policy
        Validated (callers check it at their boundary).

    Returns
    -------
    ndarray, shape (T + 1, S)
        Row ``T`` is the terminal reward, row ``t`` ``E[r_t + gamma V_{t+1} | s_t]``.

    Notes
    -----
    One backward pass, ``O(sum_t nnz(P_t))``.
    """
    out = np.empty((mdp.horizon + 1, mdp.n_states))
    out[-1] = mdp.terminal_rewards
    for t in range(mdp.horizon - 1, -1, -1):
        out[t] = site_value(backup(mdp, t, out[t + 1]), policy.site(t), 0.0, 0.0)
    return out
