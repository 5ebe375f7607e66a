"""Exact backward sweep (backward induction) on compiled kernels, for one MDP.

A backward sweep with the closed-form argmax (``temperature = 0``) does two things per site
(:mod:`tnmdp.sweep`):

* the **left environment** of the *initial* policy, ``left_t = Pr(s_t = .)`` and the reward
  collected so far ``acc_t``, moved one site by ``left_{t+1} = P_t^T (left_t * pi_t)``;
* the **right environment** of the optimised policy: the backup ``Q_t = rbar_t + gamma P_t V_{t+1}``,
  the per-state argmax (ties to the lowest action) and ``V_t = max_a Q_t``,

and records the objective ``J_t = acc_t + gamma^t <left_t, V_t>`` after every site update. The
pure-numpy sweep pays Python and scipy dispatch on every site (about 100 us), which dominates
for sparse walks; here whole runs of sites with the same operator go through one compiled loop
(:func:`tnmdp.backends.numba.kernels.backward_run`): the product, the argmax and the objective
are fused, one pass over ``nnz(P_t)``. Large sparse operators run on both cores
(:func:`tnmdp.backends.numba.parallel.backward_run_parallel`, row blocks, the same bits).

Two further savings, both exact:

* when one policy site ``pi`` and one operator ``P`` serve many time steps (the uniform initial
  policy of a stationary MDP), the left environment moves with the ``(S, S)`` Markov operator
  ``M_pi[s, s'] = sum_a pi(a|s) P(s'|s, a)`` (``A`` times fewer rows; built once, in one pass
  over ``P``) and the reward rate ``rbar_pi[s] = sum_a pi(a|s) rbar(s, a)``;
* for long horizons the left environments are kept at ``sqrt(T)`` checkpoints and recomputed one
  block at a time (one extra forward pass; :mod:`tnmdp.environments`), and the policy is written
  straight into a ``(T, S)`` small-int array, so a ``T = 10^4``, ``S = 20001`` walk stays well
  under 1 GB.

Exactness: the backup adds ``P`` entries in the order scipy's CSR product does and breaks ties
to the lowest action, so the policy equals plain backward induction's wherever its ties are
exact; ``-inf`` rewards are safe (a CSR matrix stores no zeros, and the dense kernel skips zero
probabilities when an input holds ``-inf``).

Notes
-----
Cost per site: ``O(nnz(P_t))`` for the backup and ``O(nnz(M_pi))`` (or ``O(nnz(P_t))``) for the
left environment; the dense backup is one BLAS matrix-vector product.
"""

from __future__ import annotations

import math

import numpy as np

from ...environments import MEMORY_BUDGET
from ...kernels import site_probabilities, small_int_dtype
from ..numpy.operators import Operator, markov_operator, writable
from .kernels import backward_run, forward_run
from .parallel import backward_run_parallel, pays

__all__ = ["backup_argmax", "propagate_gain", "backward_argmax_sweep", "runs", "packed",
           "backward_kernel"]


def packed(mdp, t, *, transpose=False):
    """``P_t`` (or its transpose) packed for the kernels, built once per model and kept in the
    model's cache (:meth:`tnmdp.FiniteMDP.cached`): ``O(nnz)`` the first time, free after."""
    P = mdp.transition_matrix(t)
    return mdp.cached(("operator", id(P), transpose), lambda: Operator(P, transpose=transpose))


def backward_kernel(op):
    """The backward-run kernel for the packed operator ``op``: the row-block parallel
    :func:`~tnmdp.backends.numba.parallel.backward_run_parallel` when
    :func:`~tnmdp.backends.numba.parallel.pays` (large sparse operators, more than one numba
    thread, the main thread, not a ``fork`` child of a process that ran it), else the serial :func:`~tnmdp.backends.numba.kernels.backward_run`. Both give the
    same bits."""
    return backward_run_parallel if pays(op) else backward_run


def backup_argmax(P, rbar, v, gamma=1.0, *, arrival_reward=None):
    """One fused site update: ``Q = rbar + gamma P V``, its argmax and max.

    Parameters
    ----------
    P : ndarray, scipy.sparse matrix or Operator, shape (S*A, S)
        ``P[s*A + a, s'] = P(s'|s, a)`` (an :class:`Operator` is used as packed).
    rbar : ndarray, shape (S, A)
        Expected reward ``rbar[s, a]`` (ignored when ``arrival_reward`` is given).
    v : ndarray, shape (S,)
        ``V_{t+1}``; ``-inf`` allowed.
    gamma : float
    arrival_reward : ndarray, shape (S,), optional
        A reward on arrival ``r(s')``: then ``Q = P (r + gamma V)``, as
        :func:`tnmdp.kernels.backup` computes it.

    Returns
    -------
    actions : ndarray of small ints, shape (S,)
        Per-state argmax of ``Q``, ties to the lowest action.
    values : ndarray, shape (S,)
        ``max_a Q``.
    """
    op = P if isinstance(P, Operator) else Operator(P)
    v = writable(v)
    S = v.shape[0]
    A = op.shape[0] // S
    arrival = arrival_reward is not None
    reward = writable(arrival_reward if arrival else np.zeros(S))
    rbar = np.zeros((S, A)) if arrival else writable(rbar)
    actions = np.empty((1, S), dtype=small_int_dtype(A))  # the sweeps' dtype: one compiled variant
    values = backward_kernel(op)(*op.args, rbar, reward, arrival, float(gamma), v,
                                 np.zeros((1, S)), np.zeros(1), np.ones(1), actions, np.empty(1))
    return actions[0], values


def propagate_gain(P, probs, rbar, dist):
    """Move a left environment one site under the policy site ``probs``.

    Parameters
    ----------
    P : ndarray or scipy.sparse matrix, shape (S*A, S)
    probs : ndarray, shape (S, A)
        ``pi_t(a|s)``.
    rbar : ndarray, broadcasting to (S, A)
        Expected reward; ``-inf`` allowed where ``dist * probs`` is 0.
    dist : ndarray, shape (S,)
        ``Pr(s_t = s)``.

    Returns
    -------
    next_dist : ndarray, shape (S,)
        ``Pr(s_{t+1} = s')``.
    gain : float
        ``E[rbar_t(s_t, a_t)]``, zero-weight terms dropped.
    """
    op = Operator(P, transpose=True)
    probs = writable(probs)
    rbar = writable(np.broadcast_to(rbar, probs.shape))
    dist = writable(dist)
    out, gain = forward_run(*op.args, probs, rbar, dist, 0.0, np.ones(1), False,
                         np.empty((0, dist.shape[0])), np.empty(1))
    return out, gain



def runs(keys, block):
    """Split ``0..T-1`` into maximal runs of equal ``keys`` inside blocks of ``block`` sites,
    grouped by block start."""
    runs, start = {}, 0
    for t in range(1, len(keys) + 1):
        if t == len(keys) or keys[t] != keys[start] or t % block == 0:
            runs.setdefault(start - start % block, []).append((start, t))
            start = t
    return runs


def backward_argmax_sweep(mdp, sites, *, budget=None, with_history=True):
    """One exact backward sweep (backward induction) with compiled kernels.

    Parameters
    ----------
    mdp : FiniteMDP
    sites : sequence of ndarray, length T
        The initial policy sites (``(S,)`` int actions or ``(S, A)`` probabilities); they fix the
        left environments and so the recorded objectives, not the result.
    budget : int, optional
        Bytes for cached left environments (default
        :data:`tnmdp.environments.MEMORY_BUDGET`); beyond it they are
        kept at ``sqrt(T)`` checkpoints and recomputed one block at a time.
    with_history : bool, optional
        ``False`` skips the left environments (the forward pass) and returns ``history=None``:
        plain backward induction, one pass.

    Returns
    -------
    actions : ndarray of small ints, shape (T, S)
        The optimal deterministic policy (ties to the lowest action).
    values : ndarray, shape (S,)
        ``V_0 = E[G | s_0 = s]`` under it.
    history : ndarray, shape (T,) or None
        The objective after each site update, in sweep order (site ``T-1`` first).

    Notes
    -----
    The same computation as :func:`tnmdp.sweep.sweep` with ``direction="backward"``, the argmax
    solver, ``temperature = 0`` and no callback. Cost ``O(sum_t nnz(P_t))`` for the backups plus
    one forward pass (two with checkpoints) of ``O(nnz(M_pi))`` per site for a policy site
    shared along time, ``O(nnz(P_t))`` otherwise. Memory: the ``(T, S)`` small-int policy plus
    ``min(T, sqrt(T) + 1)`` left environments (and ``sqrt(T)`` checkpoints).
    """
    T, S, A = mdp.horizon, mdp.n_states, mdp.n_actions
    gamma = float(mdp.discount)
    budget = MEMORY_BUDGET if budget is None else budget
    block = T if (T * S * 8 <= budget or not with_history) else math.isqrt(T) + 1
    keep_all = block >= T
    powers = gamma ** np.arange(T, dtype=np.float64) if gamma != 1.0 else np.ones(T)
    time_rewards = mdp.rewards.shape[0] > 1
    arrival = mdp.reward_kind() == "arrival"

    rbar_cache, reward_cache = {}, {}

    def rbar_of(t):
        key = (id(mdp.transition_matrix(t)), t if time_rewards else -1)
        if key not in rbar_cache:
            rbar_cache[key] = writable(mdp.expected_reward(t))
        return rbar_cache[key]

    def reward_of(t):
        key = t if time_rewards else -1
        if key not in reward_cache:
            reward_cache[key] = (writable(mdp.reward_slice(t)[0, 0])
                                 if arrival else np.zeros(S))
        return reward_cache[key]

    def backward_op(t):
        return packed(mdp, t)

    # ---- forward pass: left environments of the initial policy
    fwd_keys = [(id(mdp.transition_matrix(t)), id(sites[t]), t if time_rewards else -1)
                for t in range(T)]
    counts = {}
    for key in fwd_keys:
        counts[key] = counts.get(key, 0) + 1
    prepared = {}

    def forward_args(t):
        key = fwd_keys[t]
        if key not in prepared:
            P, probs, rbar = (mdp.transition_matrix(t), writable(site_probabilities(sites[t], A)),
                              rbar_of(t))
            if counts[key] > 2 and A > 1:  # shared along time: move with M_pi (A x fewer rows)
                M, rbar_pi = markov_operator(P, probs, rbar)
                args, probs, rbar = (Operator(M, transpose=True).args, np.ones((S, 1)),
                                     rbar_pi[:, None].copy())
            else:
                args = packed(mdp, t, transpose=True).args
            if counts[key] == 1 and len(prepared) > 64:
                prepared.clear()
            prepared[key] = (args, probs, rbar)
        return prepared[key]

    fwd_runs = runs(fwd_keys, block)
    accs = np.empty(T)
    checkpoints = {}
    dists = np.empty((min(block, T) if with_history else 0, S))
    dist, acc = writable(mdp.initial), 0.0
    for b0 in range(0, T, block) if with_history else ():
        checkpoints[b0] = dist
        for start, stop in fwd_runs[b0]:
            args, probs, rbar = forward_args(start)
            dist, acc = forward_run(*args, probs, rbar, dist, acc, powers[start:stop], keep_all,
                                 dists[start:stop] if keep_all else dists[:0], accs[start:stop])

    # ---- backward pass, block by block from the end
    actions = np.empty((T, S), dtype=small_int_dtype(A))
    history = np.empty(T)
    no_rbar = np.zeros((S, A))
    v = writable(mdp.terminal_rewards)
    bwd_runs = runs([(id(mdp.transition_matrix(t)), t if time_rewards else -1)
                      for t in range(T)], block)
    scratch = np.empty(0)
    for b0 in reversed(range(0, T, block)):
        if not keep_all:  # recompute this block's left environments from its checkpoint
            dist = checkpoints[b0]
            for start, stop in fwd_runs[b0]:
                args, probs, rbar = forward_args(start)
                if scratch.shape[0] < stop - start:
                    scratch = np.empty(stop - start)
                dist, _ = forward_run(*args, probs, rbar, dist, 0.0, powers[start:stop], True,
                                   dists[start - b0:stop - b0], scratch)
        for start, stop in reversed(bwd_runs[b0]):
            op = backward_op(start)
            v = backward_kernel(op)(*op.args, no_rbar if arrival else rbar_of(start),
                                    reward_of(start), arrival, gamma, v,
                                    dists[start - b0:stop - b0], accs[start:stop],
                                    powers[start:stop], actions[start:stop], history[start:stop])
    return actions, v, history[::-1].copy() if with_history else None


