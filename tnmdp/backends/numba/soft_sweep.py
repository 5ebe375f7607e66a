"""Soft (KL-regularised) backward induction on compiled kernels, for one MDP.

Per site both backups -- ``Q`` from the soft values and ``Qu`` from the plain values -- in one
pass over ``P``, the log-sum-exp over actions with ``log pi0`` (``-inf`` safe, dead states fall
back to ``pi0`` as :func:`tnmdp.kernels.soft_backup` does), ``V_t``, ``u_t = E[G_t | s_t]``,
and ``V_t`` written straight into the checkpoint rows (:mod:`tnmdp.environments`);
:class:`SoftBackup` recomputes one policy site or one soft-value step for
:class:`tnmdp.policy.SoftPolicy`. For banded operators (walks) the sweep forms only the rows
within the bandwidth of the states still live (finite values): the others have every successor
dead, and are written ``V = u = -inf``, ``pi = pi0`` as the full loops would (hard-constrained
walks: about 7 in 8 state-sites dead at ``T = 2000``).
"""

from __future__ import annotations

import numpy as np

from ...environments import MEMORY_BUDGET, Checkpoints
from ...kernels import site_probabilities
from ..numpy.operators import writable
from .argmax_sweep import packed, runs
from .soft_kernels import soft_backward_run

__all__ = ["BAND_FACTOR", "SOFT_VALUES_BUDGET", "SoftBackup", "backward_soft_sweep"]


#: Bytes the soft values of a compiled soft sweep may use before they are kept at ``sqrt(T)``
#: checkpoints: a sixteenth of the one budget (:data:`tnmdp.environments.MEMORY_BUDGET`), since
#: writing fresh pages costs more than recomputing a block in compiled code (hard excursion,
#: T = 2000: 23 ms CPU with checkpoints against 30 ms keeping all 64 MB of soft values).
SOFT_VALUES_BUDGET = MEMORY_BUDGET // 16

#: The soft sweep skips rows that cannot be live
#: (:func:`tnmdp.backends.numba.soft_kernels.soft_backward_run`) for operators whose bandwidth
#: times this is below the number of states; wider ones keep the full loops.
BAND_FACTOR = 4

class SoftBackup:
    """Compiled soft (KL-regularised) backups of one MDP, temperature and reference policy.

    Prepares each distinct operator, expected reward and log reference site once and runs runs
    of sites sharing them in one compiled loop
    (:func:`tnmdp.backends.numba.soft_kernels.soft_backward_run`).

    Parameters
    ----------
    mdp : FiniteMDP
    temperature : float
        ``tau > 0``.
    reference : Policy, optional
        ``pi0``; uniform when ``None``.
    band_factor : float
        Skip rows that cannot be live when the operator's bandwidth times this is below ``S``
        (``inf``: never skip; the results are the same bits either way).

    Notes
    -----
    Per site: two products with ``P_t`` (``O(nnz(P_t))`` each, for ``V`` and for the plain
    return ``u``) and ``O(S A)`` exponentials.
    """

    def __init__(self, mdp, temperature, reference=None, *, band_factor=BAND_FACTOR):
        self.mdp, self.temperature, self.reference = mdp, float(temperature), reference
        self.band_factor = band_factor
        S, A = mdp.n_states, mdp.n_actions
        self.arrival = mdp.reward_kind() == "arrival"
        self._time_rewards = mdp.rewards.shape[0] > 1
        log_uniform = np.full((1, A), -np.log(A))
        self._uniform = (log_uniform, np.exp(log_uniform))
        self._no_rbar = np.zeros((S, A))
        self._zeros = np.zeros(S)
        self._ops, self._rbars, self._rewards, self._log_refs = {}, {}, {}, {}
        self._ref_sites = None

    def _reference_site(self, t):
        if self.reference is None:
            return None
        if self._ref_sites is None:  # held, so that their ids identify them
            self._ref_sites = [self.reference.site(u) if hasattr(self.reference, "site")
                               else self.reference[u] for u in range(self.mdp.horizon)]
        return self._ref_sites[t]

    def key(self, t):
        """Sites with equal keys share every input of the kernel."""
        site = self._reference_site(t)
        return (id(self.mdp.transition_matrix(t)), t if self._time_rewards else -1,
                -1 if site is None else id(site))

    def arguments(self, t):
        """``(operator args and band, rbar, reward, (log_pi0, pi0))`` of site ``t`` for
        :func:`tnmdp.backends.numba.soft_kernels.soft_backward_run`."""
        mdp = self.mdp
        P = mdp.transition_matrix(t)
        if id(P) not in self._ops:
            op = packed(mdp, t)
            band = op.bandwidth if op.bandwidth * self.band_factor < mdp.n_states else -1
            self._ops[id(P)] = (P, op.args + (band,))
        r_key = t if self._time_rewards else -1
        if self.arrival:
            rbar = self._no_rbar
            if r_key not in self._rewards:
                self._rewards[r_key] = writable(mdp.reward_slice(t)[0, 0])
            reward = self._rewards[r_key]
        else:
            key = (id(P), r_key)
            if key not in self._rbars:
                self._rbars[key] = writable(mdp.expected_reward(t))
            rbar, reward = self._rbars[key], self._zeros
        site = self._reference_site(t)
        if site is None:
            log_pi0 = self._uniform
        else:
            if id(site) not in self._log_refs:
                if len(self._log_refs) > 64:
                    self._log_refs.clear()
                probs = writable(site_probabilities(site, mdp.n_actions))
                with np.errstate(divide="ignore"):
                    log_probs = writable(np.log(probs))
                self._log_refs[id(site)] = (log_probs, np.exp(log_probs))  # as soft_backup
            log_pi0 = self._log_refs[id(site)]
        return self._ops[id(P)][1], rbar, reward, log_pi0

    def run(self, start, stop, v, u, *, stride=1, kept=None, left=None, history=None,
            probs=None):
        """Sites ``stop - 1`` down to ``start`` (one run: equal keys); returns ``(V, u)`` at
        ``start``. See :func:`tnmdp.backends.numba.soft_kernels.soft_backward_run` for
        ``stride``, ``kept``, ``left = (dists,
        accs, powers)``, ``history`` and ``probs``."""
        (*args, band), rbar, reward, log_pi0 = self.arguments(start)
        S = self.mdp.n_states
        if left is None:
            left = (np.empty((0, S)), np.empty(0), np.ones(stop - start))
        if kept is None:  # nothing to keep: only row 0 (scratch) is ever written
            kept, stride = np.empty((1, S)), stop + 1
        return soft_backward_run(*args, rbar, reward, self.arrival, float(self.mdp.discount),
                              self.temperature, *log_pi0, v, u, start, stride, kept, *left,
                              np.empty(stop - start) if history is None else history,
                              np.empty((0, self.mdp.n_actions)) if probs is None else probs,
                              band)

    def step(self, t, v_next):
        """``V_{t+1} -> V_t`` (the recursion of the soft values, for :class:`Checkpoints`)."""
        # the plain values are not returned: pass V_{t+1} (dead where it is dead, so that the
        # band of live rows is V's own) rather than zeros
        return self.run(t, t + 1, v_next, v_next)[0]

    def site(self, t, v_next):
        """The policy site ``pi_t`` (shape ``(S, A)``) from ``V_{t+1}``."""
        probs = np.empty((self.mdp.n_states, self.mdp.n_actions))
        self.run(t, t + 1, v_next, v_next, probs=probs)
        return probs


def backward_soft_sweep(mdp, temperature, reference=None, *, left=None, budget=None,
                        band_factor=BAND_FACTOR):
    """One soft (KL-regularised) backward sweep -- soft backward induction -- compiled.

    Parameters
    ----------
    mdp : FiniteMDP
    temperature : float
        ``tau > 0``.
    reference : Policy, optional
        ``pi0``; uniform when ``None``.
    left : sequence, optional
        ``left[t] = (dist, acc)``, ``t = 0..T-1``: the left environments of the initial policy
        (:mod:`tnmdp.sweep`); given, the objective ``acc_t + gamma^t <dist_t, V_t>`` after each
        site update is returned (read in order ``t = T-1, ..., 0``).
    budget : int, optional
        Bytes for the soft values (default :data:`SOFT_VALUES_BUDGET`); beyond it they are kept
        at ``sqrt(T)`` checkpoints (:class:`tnmdp.environments.Checkpoints`).
    band_factor : float
        As for :class:`SoftBackup`.

    Returns
    -------
    values : Checkpoints
        ``values[t] = V_t`` (shape ``(S,)``), ``t = 0..T``; its blocks are recomputed with
        :meth:`SoftBackup.step`.
    plain : ndarray, shape (S,)
        ``E[G | s_0 = s]`` under the optimal soft policy.
    history : ndarray, shape (T,) or None
        The objective after each site update, in sweep order (site ``T-1`` first).

    Notes
    -----
    The same computation as the numpy closed-form backward sweep of :mod:`tnmdp.sweep` with
    ``temperature > 0``, to rounding (``1e-12`` relative). Cost ``O(sum_t nnz(P_t) + T S A)``
    (two products per site, one exponential per state-action pair and one logarithm per
    state); memory: the kept soft values, all ``T + 1`` or ``O(sqrt(T))`` of them.
    """
    T, S = mdp.horizon, mdp.n_states
    backups = SoftBackup(mdp, temperature, reference, band_factor=band_factor)
    store = Checkpoints(backups.step, T, S * 8, False,
                        SOFT_VALUES_BUDGET if budget is None else budget)
    stride = store.stride
    kept = np.empty((T // stride + 1, S))
    block = stride if left is not None else T
    history = np.empty(T) if left is not None else None
    dists = np.empty((min(block, T) if left is not None else 0, S))
    accs = np.empty(T)
    powers = (float(mdp.discount) ** np.arange(T, dtype=np.float64) if mdp.discount != 1.0
              else np.ones(T))
    v = writable(mdp.terminal_rewards)
    u = v
    site_runs = runs([backups.key(t) for t in range(T)], block)
    for b0 in reversed(range(0, T, block)):
        if left is not None:
            for t in range(b0, min(b0 + block, T)):
                dists[t - b0], accs[t] = left[t]
        for start, stop in reversed(site_runs[b0]):
            env = (dists[start - b0:stop - b0], accs[start:stop], powers[start:stop]) \
                if left is not None else None
            v, u = backups.run(start, stop, v, u, stride=stride, kept=kept, left=env,
                               history=None if history is None else history[start:stop])
    for t in range(0, T, stride):
        store.record(t, kept[t // stride])
    store.record(T, writable(mdp.terminal_rewards))
    return store, u, None if history is None else history[::-1].copy()
