"""Compiled (numba) kernels for the exact backward sweep: backward induction at memory speed.

A backward sweep with the closed-form argmax (``temperature = 0``) does two things per site
(:mod:`tnmdp.sweep`):

* the **left environment** of the *initial* policy, ``left_t = Pr(s_t = .)`` and the reward
  collected so far ``acc_t``, moved one site by ``left_{t+1} = P_t^T (left_t * pi_t)``;
* the **right environment** of the optimised policy: the backup ``Q_t = rbar_t + gamma P_t V_{t+1}``,
  the per-state argmax (ties to the lowest action) and ``V_t = max_a Q_t``,

and records the objective ``J_t = acc_t + gamma^t <left_t, V_t>`` after every site update. The
pure-numpy sweep pays Python and scipy dispatch on every site (about 100 us), which dominates
for sparse walks; this module runs whole runs of sites with the same operator in one compiled
loop: the CSR product, the argmax and the objective are fused, one pass over ``nnz(P_t)``.

Two further savings, both exact:

* when one policy site ``pi`` and one operator ``P`` serve many time steps (the uniform initial
  policy of a stationary MDP), the left environment moves with the ``(S, S)`` Markov operator
  ``M_pi[s, s'] = sum_a pi(a|s) P(s'|s, a)`` (``A`` times fewer rows; built once, in one pass
  over ``P``) and the reward rate ``rbar_pi[s] = sum_a pi(a|s) rbar(s, a)``;
* for long horizons the left environments are kept at ``sqrt(T)`` checkpoints and recomputed one
  block at a time (one extra forward pass), and the policy is written straight into a
  ``(T, S)`` small-int array, so a ``T = 10^4``, ``S = 20001`` walk stays well under 1 GB.

The soft (KL-regularised, ``tau > 0``) backward sweep is fused the same way
(:func:`backward_soft_sweep`): per site both backups -- ``Q`` from the soft values and ``Qu``
from the plain values -- in one pass over ``P``, the log-sum-exp over actions with
``log pi0`` (``-inf`` safe, dead states fall back to ``pi0`` as
:func:`tnmdp.kernels.soft_backup` does), ``V_t``, ``u_t = E[G_t | s_t]``, and ``V_t``
written straight into the checkpoint rows; :class:`SoftBackup` recomputes one policy site or
one soft-value step for :class:`tnmdp.policy.SoftPolicy`. For banded operators (walks) the soft
sweep forms only the rows within the bandwidth of the states still live (finite values): the
others have every successor dead, and are written ``V = u = -inf``, ``pi = pi0`` as the full
loops would (hard-constrained walks: about 7 in 8 state-sites dead at ``T = 2000``).

Exactness: the backup adds ``P`` entries in the order scipy's CSR product does and breaks ties
to the lowest action, so the policy equals :func:`tnmdp.reference.backward_induction`'s wherever
the reference's ties are exact; ``-inf`` rewards are safe (a CSR matrix stores no zeros, and the
dense kernel skips zero probabilities when an input holds ``-inf``).

Notes
-----
Cost per site: ``O(nnz(P_t))`` for the backup and ``O(nnz(M_pi))`` (or ``O(nnz(P_t))``) for the
left environment; the dense backup is one BLAS matrix-vector product. Importing this module
imports numba (about 0.5 s); :mod:`tnmdp` imports it lazily, on the first backward sweep.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.sparse as sp
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

from .kernels import site_probabilities
from .policy import _small_int_dtype

__all__ = ["Operator", "backup_argmax", "propagate_gain", "markov_operator", "worthwhile",
           "backward_argmax_sweep", "SoftBackup", "backward_soft_sweep"]

#: Bytes the cached left environments may use before switching to sqrt(T) checkpoints.
ENVIRONMENT_BUDGET = 128 * 2**20


#: Bytes the soft values of a compiled soft sweep may use before they are kept at ``sqrt(T)``
#: checkpoints: writing fresh pages costs about as much as the sweep itself (64 MB: ~20 ms,
#: the whole T = 2000 excursion sweep ~35 ms), and a compiled block recomputation is cheap.
SOFT_VALUES_BUDGET = 8 * 2**20

#: Below this many state-action-site updates (``T * S * A``) the numpy sweep is as fast and
#: needs no compilation: :func:`worthwhile` says no.
MIN_WORK = 2**17

#: Sparse operators with more stored entries per ``(s, a)`` row (on average) stay on numpy.
MAX_ROW_NNZ = 16

#: Operator formats: ELL (rows padded to a common length, stored column-major so that the
#: product is a vectorised gather), CSR, dense ``y = M x`` and dense transposed ``y = x M``.
ELL, CSR, DENSE, DENSE_T = 0, 1, 2, 3

#: ELL is used when padding the rows to the longest one stores at most this many times ``nnz``.
ELL_PADDING = 1.5

#: The soft sweep skips rows that cannot be live (:func:`_soft_backward`) for operators whose
#: bandwidth times this is below the number of states; wider ones keep the full loops.
BAND_FACTOR = 4


# ---------------------------------------------------------------------------------- kernels
@njit(cache=True, nogil=True)
def _product(kind, indptr, cols, vals, x, y):
    """``y = M x``; ``x`` carries a trailing ``0`` that ELL padding points at.

    Sparse formats add the stored entries of a row in column order, starting from the first
    (scipy's CSR product adds them to ``0.0`` in the same order: the same bits). The dense
    product skips zero entries when ``x`` holds ``-inf``.
    """
    n = y.shape[0]
    if kind == 0:
        c0, v0 = cols[0], vals[0]
        for i in range(n):
            y[i] = v0[i] * x[c0[i]]
        for j in range(1, cols.shape[0]):
            cj, vj = cols[j], vals[j]
            for i in range(n):
                y[i] += vj[i] * x[cj[i]]
    elif kind == 1:
        c, d = cols[0], vals[0]
        for i in range(n):
            acc = 0.0
            for p in range(indptr[i], indptr[i + 1]):
                acc += d[p] * x[c[p]]
            y[i] = acc
    elif kind == 2:
        m = vals.shape[1]
        finite = True
        for j in range(m):
            if x[j] == -np.inf:
                finite = False
                break
        if finite:
            y[:] = np.dot(vals, x[:m])
        else:
            for i in range(n):
                acc = 0.0
                for j in range(m):
                    p = vals[i, j]
                    if p != 0.0:
                        acc += p * x[j]
                y[i] = acc
    else:
        y[:] = np.dot(x[:vals.shape[0]], vals)


@njit(cache=True, nogil=True, fastmath={"reassoc", "nsz"})
def _masked_dot(weights, values):
    """``sum_{weights > 0} weights * values`` (so ``0 * -inf`` never enters), vectorised."""
    total = 0.0
    for i in range(weights.shape[0]):
        w = weights[i]
        total += w * values[i] if w > 0.0 else 0.0
    return total


@njit(cache=True, nogil=True)
def _argmax_rows(q, n_actions, best, arg):
    """Per-state max and argmax of ``q[s*A + a]`` (ties to the lowest action), vectorised over
    states."""
    n_states = best.shape[0]
    if n_actions == 2:  # the common case (walks), without the strided second pass
        for s in range(n_states):
            q0, q1 = q[2 * s], q[2 * s + 1]
            better = q1 > q0
            best[s] = q1 if better else q0
            arg[s] = 1 if better else 0
        return
    for s in range(n_states):
        best[s] = q[s * n_actions]
        arg[s] = 0
    for a in range(1, n_actions):
        for s in range(n_states):
            qa = q[s * n_actions + a]
            better = qa > best[s]
            best[s] = qa if better else best[s]
            arg[s] = a if better else arg[s]


@njit(cache=True, nogil=True)
def _backward(kind, indptr, cols, vals, rbar, reward, arrival, gamma, v, dists, accs, powers,
              actions, history):
    """Backward induction over ``len(powers)`` sites sharing one operator and reward, last first.

    ``Q = P (reward + gamma V)`` when ``arrival`` (as :func:`tnmdp.kernels.backup` folds an
    arrival reward), else ``Q = rbar + gamma P V``; ``actions[k]`` receives the argmax (lowest
    action on ties), and ``history[k] = accs[k] + powers[k] <dists[k], V_k>`` (zero-probability
    states skipped). Returns ``V`` at the first site of the run.
    """
    n_states, n_actions = rbar.shape
    flat = rbar.ravel()
    x = np.zeros(n_states + 1)
    q = np.empty(n_states * n_actions)
    v = v.copy()
    for k in range(powers.shape[0] - 1, -1, -1):
        if arrival:
            if gamma != 1.0:
                for s in range(n_states):
                    x[s] = reward[s] + gamma * v[s]
            else:
                for s in range(n_states):
                    x[s] = reward[s] + v[s]
        else:
            x[:n_states] = v
        _product(kind, indptr, cols, vals, x, q)
        if not arrival:
            if gamma != 1.0:
                for i in range(q.shape[0]):
                    q[i] = flat[i] + gamma * q[i]
            else:
                for i in range(q.shape[0]):
                    q[i] = flat[i] + q[i]
        _argmax_rows(q, n_actions, v, actions[k])
        if dists.shape[0] > 0:  # no left environments: no objective to record
            history[k] = accs[k] + powers[k] * _masked_dot(dists[k], v)
    return v


@njit(cache=True, nogil=True)
def _forward(kind, indptr, cols, vals, probs, rbar, dist, acc, powers, keep, dists, accs):
    """Move the left environment ``(dist, acc)`` over ``len(powers)`` sites sharing one
    (transposed) operator and policy site ``probs``.

    Row ``k`` of ``dists`` (when ``keep``) and ``accs[k]`` receive the environment entering the
    ``k``-th site; the gain ``sum dist pi rbar`` skips zero weights (so ``-inf`` rewards of
    unvisited pairs contribute nothing). Returns the environment leaving the last site.
    """
    n_states, n_actions = probs.shape
    w = np.zeros(n_states * n_actions + 1)
    flat = rbar.ravel()
    unit = n_actions == 1 and np.all(probs == 1.0)
    dist = dist.copy()
    for k in range(powers.shape[0]):
        if keep:
            dists[k, :] = dist
        accs[k] = acc
        if unit:
            w[:n_states] = dist
        else:
            for s in range(n_states):
                for a in range(n_actions):
                    w[s * n_actions + a] = dist[s] * probs[s, a]
        gain = _masked_dot(w[:flat.shape[0]], flat)
        acc = acc + powers[k] * gain
        _product(kind, indptr, cols, vals, w, dist)
    return dist, acc


@njit(cache=True, nogil=True)
def _dense_markov(P, probs):
    n_states, n_actions = probs.shape
    M = np.zeros((n_states, P.shape[1]))
    for s in range(n_states):
        for a in range(n_actions):
            p = probs[s, a]
            if p != 0.0:
                M[s, :] += p * P[s * n_actions + a, :]
    return M


# ---------------------------------------------------------------------------------- operators
_NO_PTR = np.zeros(1, dtype=np.int64)
_NO_COLS = np.zeros((1, 1), dtype=np.int32)


class Operator:
    """A matrix in the form the kernels take.

    Parameters
    ----------
    matrix : ndarray or scipy.sparse matrix, shape (n, m)
    transpose : bool
        Represent ``matrix.T`` (for moving left environments).

    Attributes
    ----------
    kind : int
        ``ELL``, ``CSR``, ``DENSE`` or ``DENSE_T``.
    args : tuple
        ``(kind, indptr, cols, vals)`` for the kernels.
    shape : tuple
        Shape of the represented matrix.
    bandwidth : int
        For a sparse ``(S A, S)`` transition matrix (not transposed, no stored zeros):
        ``max |s' - s|`` over its stored entries ``P[s A + a, s']``; else ``-1`` (unknown).

    Notes
    -----
    Sparse rows are padded to the longest row (ELL, stored column-major: ``cols[j, i]`` is the
    column of the ``j``-th entry of row ``i``) when that stores at most ``ELL_PADDING * nnz``
    entries; padding points at the trailing zero the kernels append to ``x``, with value 0.
    """

    def __init__(self, matrix, *, transpose=False):
        if sp.issparse(matrix):
            csr = sp.csr_matrix(matrix.T if transpose else matrix)
            csr.sort_indices()
            n, m = csr.shape
            lengths = np.diff(csr.indptr)
            width = int(lengths.max()) if n else 0
            if width * n <= ELL_PADDING * max(csr.nnz, 1):
                rows = np.repeat(np.arange(n), lengths)
                pos = np.arange(csr.nnz) - np.repeat(csr.indptr[:-1], lengths)
                cols = np.full((max(width, 1), n), m, dtype=np.int32)
                vals = np.zeros((max(width, 1), n))
                cols[pos, rows] = csr.indices
                vals[pos, rows] = csr.data
                self.kind, indptr = ELL, _NO_PTR
            else:
                self.kind, indptr = CSR, csr.indptr.astype(np.int64)
                cols, vals = csr.indices.astype(np.int32)[None, :], csr.data[None, :]
            self.shape = (n, m)
            self.bandwidth = -1
            if not transpose and m and n % m == 0 and csr.nnz and np.all(csr.data != 0.0):
                rows = np.repeat(np.arange(n) // (n // m), np.diff(csr.indptr))
                self.bandwidth = int(np.abs(csr.indices.astype(np.int64) - rows).max())
        else:
            vals = np.ascontiguousarray(matrix, dtype=np.float64)
            self.kind, indptr, cols = (DENSE_T if transpose else DENSE), _NO_PTR, _NO_COLS
            self.shape = vals.shape[::-1] if transpose else vals.shape
            self.bandwidth = -1
        self.args = (self.kind, indptr, cols, np.ascontiguousarray(vals, dtype=np.float64))


# ---------------------------------------------------------------------------------- public
def backup_argmax(P, rbar, v, gamma=1.0, *, arrival_reward=None):
    """One fused site update: ``Q = rbar + gamma P V``, its argmax and max.

    Parameters
    ----------
    P : ndarray or scipy.sparse matrix, shape (S*A, S)
        ``P[s*A + a, s'] = P(s'|s, a)``.
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
    actions : ndarray of int64, shape (S,)
        Per-state argmax of ``Q``, ties to the lowest action.
    values : ndarray, shape (S,)
        ``max_a Q``.
    """
    op = Operator(P)
    v = np.ascontiguousarray(v, dtype=np.float64)
    S = v.shape[0]
    A = op.shape[0] // S
    arrival = arrival_reward is not None
    reward = np.ascontiguousarray(arrival_reward if arrival else np.zeros(S), dtype=np.float64)
    rbar = np.zeros((S, A)) if arrival else np.ascontiguousarray(rbar, dtype=np.float64)
    actions = np.empty((1, S), dtype=np.int64)
    values = _backward(*op.args, rbar, reward, arrival, float(gamma), v, np.zeros((1, S)),
                       np.zeros(1), np.ones(1), actions, np.empty(1))
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
    probs = np.ascontiguousarray(probs, dtype=np.float64)
    rbar = np.ascontiguousarray(np.broadcast_to(rbar, probs.shape), dtype=np.float64)
    dist = np.ascontiguousarray(dist, dtype=np.float64)
    out, gain = _forward(*op.args, probs, rbar, dist, 0.0, np.ones(1), False,
                         np.empty((0, dist.shape[0])), np.empty(1))
    return out, gain


def markov_operator(P, probs, rbar):
    """The left-environment operator of a fixed policy site: ``(M_pi, rbar_pi)``.

    Parameters
    ----------
    P : ndarray or scipy.sparse matrix, shape (S*A, S)
    probs : ndarray, shape (S, A)
    rbar : ndarray, broadcasting to (S, A)

    Returns
    -------
    M : ndarray or CSR matrix, shape (S, S)
        ``M[s, s'] = sum_a pi(a|s) P(s'|s, a)``: a one-action MDP, so that
        ``propagate_gain(M, ones((S, 1)), rbar_pi[:, None], dist)`` moves ``dist`` as
        ``propagate_gain(P, probs, rbar, dist)`` does (to rounding).
    rbar_pi : ndarray, shape (S,)
        ``sum_{a: pi > 0} pi(a|s) rbar(s, a)``.

    Notes
    -----
    One pass over ``P``: ``O(nnz(P))``.
    """
    probs = np.ascontiguousarray(probs, dtype=np.float64)
    S, A = probs.shape
    support = probs > 0
    with np.errstate(invalid="ignore"):
        rbar_pi = np.where(support, probs * np.broadcast_to(rbar, probs.shape), 0.0).sum(axis=1)
    if sp.issparse(P):
        rows, cols = np.nonzero(support)
        weights = sp.csr_matrix((probs[rows, cols], (rows, rows * A + cols)), shape=(S, S * A))
        M = sp.csr_matrix(weights @ sp.csr_matrix(P))
        M.sum_duplicates()
        M.eliminate_zeros()
        M.sort_indices()
        return M, rbar_pi
    return _dense_markov(np.ascontiguousarray(P, dtype=np.float64), probs), rbar_pi


def worthwhile(mdp):
    """True when the compiled sweep pays for itself on this MDP.

    Needs ``T * S * A >= MIN_WORK`` (below, loading the kernels costs more than the numpy
    sweep) and, for sparse operators, at most ``MAX_ROW_NNZ`` stored entries per ``(s, a)`` row
    on average: with wide rows scipy's CSR product beats the gather kernels and the extra
    left-environment pass makes the compiled sweep slower than the numpy one
    (``benchmarks/results/strategies.json``, ``density_sparse``).
    """
    if mdp.horizon * mdp.n_states * mdp.n_actions < MIN_WORK:
        return False
    P = mdp.transition_matrix(0)
    return not sp.issparse(P) or P.nnz <= MAX_ROW_NNZ * P.shape[0]


def _runs(keys, block):
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
        Bytes for cached left environments (default ``ENVIRONMENT_BUDGET``); beyond it they are
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
    budget = ENVIRONMENT_BUDGET if budget is None else budget
    block = T if (T * S * 8 <= budget or not with_history) else math.isqrt(T) + 1
    keep_all = block >= T
    powers = gamma ** np.arange(T, dtype=np.float64) if gamma != 1.0 else np.ones(T)
    time_rewards = mdp.rewards.shape[0] > 1
    arrival = mdp.reward_kind() == "arrival"

    rbar_cache, reward_cache, back_ops = {}, {}, {}

    def rbar_of(t):
        key = (id(mdp.transition_matrix(t)), t if time_rewards else -1)
        if key not in rbar_cache:
            rbar_cache[key] = np.ascontiguousarray(mdp.expected_reward(t), dtype=np.float64)
        return rbar_cache[key]

    def reward_of(t):
        key = t if time_rewards else -1
        if key not in reward_cache:
            reward_cache[key] = (np.ascontiguousarray(mdp.reward_slice(t)[0, 0], dtype=np.float64)
                                 if arrival else np.zeros(S))
        return reward_cache[key]

    def backward_op(t):
        P = mdp.transition_matrix(t)
        if id(P) not in back_ops:
            back_ops[id(P)] = Operator(P)
        return back_ops[id(P)]

    # ---- forward pass: left environments of the initial policy
    fwd_keys = [(id(mdp.transition_matrix(t)), id(sites[t]), t if time_rewards else -1)
                for t in range(T)]
    counts = {}
    for key in fwd_keys:
        counts[key] = counts.get(key, 0) + 1
    prepared, transposed = {}, {}

    def forward_args(t):
        key = fwd_keys[t]
        if key not in prepared:
            P, probs, rbar = mdp.transition_matrix(t), np.ascontiguousarray(site_probabilities(sites[t], A), dtype=np.float64), rbar_of(t)
            if counts[key] > 2 and A > 1:  # shared along time: move with M_pi (A x fewer rows)
                M, rbar_pi = markov_operator(P, probs, rbar)
                args, probs, rbar = (Operator(M, transpose=True).args, np.ones((S, 1)),
                                     rbar_pi[:, None].copy())
            else:
                if id(P) not in transposed:
                    transposed[id(P)] = Operator(P, transpose=True).args
                args = transposed[id(P)]
            if counts[key] == 1 and len(prepared) > 64:
                prepared.clear()
            prepared[key] = (args, probs, rbar)
        return prepared[key]

    fwd_runs = _runs(fwd_keys, block)
    accs = np.empty(T)
    checkpoints = {}
    dists = np.empty((min(block, T) if with_history else 0, S))
    dist, acc = np.ascontiguousarray(mdp.initial, dtype=np.float64), 0.0
    for b0 in range(0, T, block) if with_history else ():
        checkpoints[b0] = dist
        for start, stop in fwd_runs[b0]:
            args, probs, rbar = forward_args(start)
            dist, acc = _forward(*args, probs, rbar, dist, acc, powers[start:stop], keep_all,
                                 dists[start:stop] if keep_all else dists[:0], accs[start:stop])

    # ---- backward pass, block by block from the end
    actions = np.empty((T, S), dtype=_small_int_dtype(A))
    history = np.empty(T)
    no_rbar = np.zeros((S, A))
    v = np.ascontiguousarray(mdp.terminal_rewards, dtype=np.float64)
    bwd_runs = _runs([(id(mdp.transition_matrix(t)), t if time_rewards else -1)
                      for t in range(T)], block)
    scratch = np.empty(0)
    for b0 in reversed(range(0, T, block)):
        if not keep_all:  # recompute this block's left environments from its checkpoint
            dist = checkpoints[b0]
            for start, stop in fwd_runs[b0]:
                args, probs, rbar = forward_args(start)
                if scratch.shape[0] < stop - start:
                    scratch = np.empty(stop - start)
                dist, _ = _forward(*args, probs, rbar, dist, 0.0, powers[start:stop], True,
                                   dists[start - b0:stop - b0], scratch)
        for start, stop in reversed(bwd_runs[b0]):
            v = _backward(*backward_op(start).args, no_rbar if arrival else rbar_of(start),
                          reward_of(start), arrival, gamma, v, dists[start - b0:stop - b0],
                          accs[start:stop], powers[start:stop], actions[start:stop],
                          history[start:stop])
    return actions, v, history[::-1].copy() if with_history else None


# ---------------------------------------------------------------------------------- soft sweep
@njit(cache=True, nogil=True)
def _soft_rows(q, qu, log_pi0, pi0, tau, v, u, probs, scratch, first, stop):
    """The soft maximum of :func:`tnmdp.kernels.soft_backup`, row by row, and the plain return.

    ``V[s] = tau logsumexp_a(log pi0(a|s) + Q(s,a)/tau)``, ``pi(a|s) = exp(z_a - max z) /
    sum_b exp(z_b - max z)`` with ``z = log pi0 + Q/tau`` (equal to the numpy kernel's
    ``exp(z - V/tau)`` to a few ulp times ``|z - V/tau|``) and
    ``u[s] = sum_{a: pi > 0} pi(a|s) Qu(s,a)``. A dead row (every ``z`` is ``-inf``) gets
    ``V = -inf`` and ``pi = pi0``. ``log_pi0`` and ``pi0`` have one row (shared by all states)
    or ``S``; ``probs`` receives ``pi`` unless it has no rows. Only states ``first <= s < stop``
    are touched. One exponential per action with ``z`` finite and below the maximum, one
    logarithm per state with two or more such actions.
    """
    n_actions = log_pi0.shape[1]
    shared = log_pi0.shape[0] == 1
    write = probs.shape[0] > 0
    unit = tau == 1.0  # q / 1.0 is q: skip the divisions
    if n_actions == 2:  # walks: scalars only, 5x faster on dead rows
        _soft_rows_2(q, qu, log_pi0, pi0, tau, unit, v, u, probs, scratch, first, stop)
        return
    e = np.empty(n_actions)
    for s in range(first, stop):
        row = 0 if shared else s
        base = s * n_actions
        zmax = -np.inf
        for a in range(n_actions):
            za = (q[base + a] if unit else q[base + a] / tau) + log_pi0[row, a]
            e[a] = za
            zmax = za if za > zmax else zmax
        acc = 0.0
        if zmax == -np.inf:
            v[s] = -np.inf
            for a in range(n_actions):
                pa = pi0[row, a]
                e[a] = pa
                acc += pa * qu[base + a] if pa > 0.0 else 0.0
        else:
            total = 0.0
            for a in range(n_actions):
                d = e[a] - zmax
                d = 1.0 if d == 0.0 else (0.0 if d == -np.inf else math.exp(d))
                e[a] = d
                total += d
            v[s] = tau * (zmax if total == 1.0 else zmax + math.log(total))
            for a in range(n_actions):
                pa = e[a] / total if total != 1.0 else e[a]
                e[a] = pa
                acc += pa * qu[base + a] if pa > 0.0 else 0.0
        u[s] = acc
        if write:
            for a in range(n_actions):
                probs[s, a] = e[a]


@intrinsic
def _pow2(typingctx, k):
    """``2.0 ** k`` for an int64 ``-1022 <= k <= 1023``, by building the bits (vectorisable)."""
    def codegen(context, builder, signature, args):
        i64 = ir.IntType(64)
        bits = builder.shl(builder.add(args[0], ir.Constant(i64, 1023)), ir.Constant(i64, 52))
        return builder.bitcast(bits, ir.DoubleType())
    return types.float64(types.int64), codegen


#: Below this ``d`` the branch-free :func:`_exp_log_rows` leaves ``exp(d)`` to libm (subnormal
#: results and underflow to 0).
_EXP_FLOOR = -700.0


@njit(cache=True, nogil=True, error_model="numpy")
def _exp_log_rows(d, e, log_total, inverse, n):
    """``e = exp(d)``, ``log_total = log(1 + e)``, ``inverse = 1 / (1 + e)`` for ``d[:n]`` in
    ``[_EXP_FLOOR, 0]``, branch-free so that the loop is vectorised (numba has no vector
    ``exp``/``log`` here: libm's scalar calls cost ~17 ns a state).

    fdlibm's ``exp`` and ``log`` (``e_exp.c``, ``e_log.c``; error < 1 ulp): ``exp`` by
    ``d = k ln2 + r``, ``|r| <= ln2 / 2``, and a rational approximation on ``r``; ``log`` of
    ``x = 1 + e`` in ``(1, 2]`` as ``k ln2 + log1p(f)``, ``k = [x > sqrt 2]``, with
    ``s = f / (2 + f)`` and a degree-14 polynomial in ``s``. Both return exactly ``1`` at
    ``d = 0`` and ``0`` at ``x = 1``.
    """
    for i in range(n):
        x = d[i]
        kf = math.floor(x * 1.44269504088896338700e+00 + 0.5)
        hi = x - kf * 6.93147180369123816490e-01
        lo = kf * 1.90821492927058770002e-10
        r = hi - lo
        t = r * r
        c = r - t * (1.66666666666666019037e-01 + t * (-2.77777777770155933842e-03 + t * (
            6.61375632143793436117e-05 + t * (-1.65339022054652515390e-06
                                              + t * 4.13813679705723846039e-08))))
        y = 1.0 - ((lo - (r * c) / (2.0 - c)) - hi)
        ex = y * _pow2(np.int64(kf))
        e[i] = ex
        total = 1.0 + ex
        inverse[i] = 1.0 / total
        big = total > 1.4142135623730951
        dk = 1.0 if big else 0.0
        f = (0.5 * total if big else total) - 1.0
        hfsq = 0.5 * f * f
        s = f / (2.0 + f)
        z = s * s
        w = z * z
        t1 = w * (3.999999999940941908e-01 + w * (2.222219843214978396e-01
                                                 + w * 1.531383769920937332e-01))
        t2 = z * (6.666666666666735130e-01 + w * (2.857142874366239149e-01 + w * (
            1.818357216161805012e-01 + w * 1.479819860511658591e-01)))
        rr = t2 + t1
        log_total[i] = dk * 6.93147180369123816490e-01 - (
            (hfsq - (s * (hfsq + rr) + dk * 1.90821492927058770002e-10)) - f)


@njit(cache=True, nogil=True)
def _soft_rows_2(q, qu, log_pi0, pi0, tau, unit, v, u, probs, scratch, first, stop):
    """:func:`_soft_rows` for two actions: with ``d = z_low - z_high <= 0`` and
    ``e = exp(d)``, ``V = tau (z_high + log(1 + e))``, ``pi_high = 1 / (1 + e)``,
    ``pi_low = e pi_high``. Dead states and ``d = -inf`` are settled in a first pass, which
    gathers the others (``scratch``, shape ``(5, S)``) for the vectorised
    :func:`_exp_log_rows`; a last pass writes ``V``, ``pi`` and ``u``.
    """
    shared = log_pi0.shape[0] == 1
    write = probs.shape[0] > 0
    l0, l1, r0, r1 = log_pi0[0, 0], log_pi0[0, 1], pi0[0, 0], pi0[0, 1]  # held in registers
    d, e, log_total, inverse, live = scratch[0], scratch[1], scratch[2], scratch[3], scratch[4]
    n = 0
    for s in range(first, stop):
        if not shared:
            l0, l1, r0, r1 = log_pi0[s, 0], log_pi0[s, 1], pi0[s, 0], pi0[s, 1]
        q0, q1 = q[2 * s], q[2 * s + 1]
        z0 = (q0 if unit else q0 / tau) + l0
        z1 = (q1 if unit else q1 / tau) + l1
        high = z1 > z0
        zmax, ds = (z1, z0 - z1) if high else (z0, z1 - z0)
        if zmax == -np.inf or ds == -np.inf:
            if zmax == -np.inf:  # dead
                v[s] = -np.inf
                p0, p1 = r0, r1
            else:
                v[s] = tau * zmax
                p0, p1 = (0.0, 1.0) if high else (1.0, 0.0)
            acc = p0 * qu[2 * s] if p0 > 0.0 else 0.0
            acc += p1 * qu[2 * s + 1] if p1 > 0.0 else 0.0
            u[s] = acc
            if write:
                probs[s, 0], probs[s, 1] = p0, p1
        else:
            d[n] = ds if ds >= _EXP_FLOOR else 0.0
            live[n] = s + 0.5 if high else -(s + 0.5)  # the state and its high action
            v[s] = zmax
            n += 1
    _exp_log_rows(d, e, log_total, inverse, n)
    for j in range(n):
        code = live[j]
        high = code > 0.0
        s = int(code) if high else int(-code)
        zmax = v[s]
        ej, lg, inv = e[j], log_total[j], inverse[j]
        if d[j] == 0.0:  # recompute d (it was clamped or is a tie)
            q0, q1 = q[2 * s], q[2 * s + 1]
            if not shared:
                l0, l1 = log_pi0[s, 0], log_pi0[s, 1]
            z0 = (q0 if unit else q0 / tau) + l0
            z1 = (q1 if unit else q1 / tau) + l1
            ds = z0 - z1 if high else z1 - z0
            if ds != 0.0:  # below _EXP_FLOOR: libm, for subnormals and underflow
                ej = math.exp(ds)
                total = 1.0 + ej
                lg = math.log(total)
                inv = 1.0 / total
        v[s] = tau * (zmax + lg)
        p_high, p_low = inv, ej * inv
        p0, p1 = (p_low, p_high) if high else (p_high, p_low)
        if not shared:
            r0, r1 = pi0[s, 0], pi0[s, 1]
        acc = p0 * qu[2 * s] if p0 > 0.0 else 0.0
        acc += p1 * qu[2 * s + 1] if p1 > 0.0 else 0.0
        u[s] = acc
        if write:
            probs[s, 0], probs[s, 1] = p0, p1


@njit(cache=True, nogil=True)
def _product_pair(kind, indptr, cols, vals, x, y, qx, qy, first, stop):
    """``qx = M x`` and ``qy = M y`` (as :func:`_product`), sparse rows read once; sparse
    formats form rows ``first <= i < stop`` only (dense ones all rows)."""
    if kind == 0:
        c0, v0 = cols[0], vals[0]
        for i in range(first, stop):
            c, w = c0[i], v0[i]
            qx[i] = w * x[c]
            qy[i] = w * y[c]
        for j in range(1, cols.shape[0]):
            cj, vj = cols[j], vals[j]
            for i in range(first, stop):
                c, w = cj[i], vj[i]
                qx[i] += w * x[c]
                qy[i] += w * y[c]
    elif kind == 1:
        c, d = cols[0], vals[0]
        for i in range(first, stop):
            ax = 0.0
            ay = 0.0
            for p in range(indptr[i], indptr[i + 1]):
                ax += d[p] * x[c[p]]
                ay += d[p] * y[c[p]]
            qx[i] = ax
            qy[i] = ay
    else:
        _product(kind, indptr, cols, vals, x, qx)
        _product(kind, indptr, cols, vals, y, qy)


@njit(cache=True, nogil=True)
def _soft_backward(kind, indptr, cols, vals, rbar, reward, arrival, gamma, tau, log_pi0, pi0,
                   v, u, first, stride, kept, dists, accs, powers, history, probs, band):
    """Soft backward induction over ``len(powers)`` sites ``first, first + 1, ...`` sharing one
    operator, reward and reference site, last first.

    Both backups -- ``Q`` from the soft values ``V`` and ``Qu`` from the plain values ``u`` --
    are formed as :func:`_backward` forms ``Q`` (``P (reward + gamma x)`` when ``arrival``, else
    ``rbar + gamma P x``), then :func:`_soft_rows` gives the new ``V`` and ``u``. ``V_t`` is
    written to ``kept[t // stride]`` when ``t % stride == 0``; with left environments
    (``dists`` has rows) ``history[k] = accs[k] + powers[k] <dists[k], V>``. ``probs`` (with
    rows: a one-site run) receives the policy site. Returns ``(V, u)`` at the first site.

    ``band >= 0`` is the operator's bandwidth (:attr:`Operator.bandwidth`): with ``[lo, hi)``
    the states whose backed-up soft or plain value (``x`` or ``y`` below) is finite, a state
    ``s`` outside ``[lo - band, hi + band)`` has every successor dead in both, so every action
    has ``Q = Qu = -inf`` (rewards are never ``+inf`` or ``nan``, stored probabilities are
    positive) and :func:`_soft_rows` would give ``V = u = -inf`` and ``pi = pi0``: those rows are
    written so without being formed. ``V``, ``u``, ``x`` and ``y`` stay ``-inf`` outside the
    window ``[low, high)`` of the last site formed, so only the window is read and cleared.
    """
    n_states, n_actions = rbar.shape
    flat = rbar.ravel()
    x = np.zeros(n_states + 1)
    y = np.zeros(n_states + 1)
    q = np.empty(n_states * n_actions)
    qu = np.empty(n_states * n_actions)
    scratch = np.empty((5 if n_actions == 2 else 0, n_states))
    shared = log_pi0.shape[0] == 1
    write = probs.shape[0] > 0
    v = v.copy()
    u = u.copy()
    low, high = 0, n_states  # outside [low, high): v, u, x and y are -inf
    for k in range(powers.shape[0] - 1, -1, -1):
        if arrival:
            for s in range(low, high):
                if gamma != 1.0:
                    x[s] = reward[s] + gamma * v[s]
                    y[s] = reward[s] + gamma * u[s]
                else:
                    x[s] = reward[s] + v[s]
                    y[s] = reward[s] + u[s]
        else:
            x[low:high] = v[low:high]
            y[low:high] = u[low:high]
        start, stop = low, high
        if band >= 0:
            while start < stop and x[start] == -np.inf and y[start] == -np.inf:
                start += 1
            while stop > start and x[stop - 1] == -np.inf and y[stop - 1] == -np.inf:
                stop -= 1
            if start < stop:
                start, stop = max(start - band, 0), min(stop + band, n_states)
        _product_pair(kind, indptr, cols, vals, x, y, q, qu, start * n_actions,
                      stop * n_actions)
        if not arrival:
            for i in range(start * n_actions, stop * n_actions):
                if gamma != 1.0:
                    q[i] = flat[i] + gamma * q[i]
                    qu[i] = flat[i] + gamma * qu[i]
                else:
                    q[i] = flat[i] + q[i]
                    qu[i] = flat[i] + qu[i]
        _soft_rows(q, qu, log_pi0, pi0, tau, v, u, probs, scratch, start, stop)
        if band >= 0:  # rows that cannot be live
            for s in range(low, start):
                v[s] = u[s] = x[s] = y[s] = -np.inf
            for s in range(max(stop, low), high):
                v[s] = u[s] = x[s] = y[s] = -np.inf
            if write:
                for s in range(n_states):
                    if s < start or s >= stop:
                        row = 0 if shared else s
                        for a in range(n_actions):
                            probs[s, a] = pi0[row, a]
            low, high = start, stop
        t = first + k
        if t % stride == 0:
            kept[t // stride, :] = v
        if dists.shape[0] > 0:
            history[k] = accs[k] + powers[k] * _masked_dot(dists[k], v)
    return v, u


class SoftBackup:
    """Compiled soft (KL-regularised) backups of one MDP, temperature and reference policy.

    Prepares each distinct operator, expected reward and log reference site once and runs runs
    of sites sharing them in one compiled loop (:func:`_soft_backward`).

    Parameters
    ----------
    mdp : FiniteMDP
    temperature : float
        ``tau > 0``.
    reference : Policy, optional
        ``pi0``; uniform when ``None``.

    Notes
    -----
    Per site: two products with ``P_t`` (``O(nnz(P_t))`` each, for ``V`` and for the plain
    return ``u``) and ``O(S A)`` exponentials.
    """

    def __init__(self, mdp, temperature, reference=None):
        self.mdp, self.temperature, self.reference = mdp, float(temperature), reference
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
        :func:`_soft_backward`."""
        mdp = self.mdp
        P = mdp.transition_matrix(t)
        if id(P) not in self._ops:
            op = Operator(P)
            band = op.bandwidth if op.bandwidth * BAND_FACTOR < mdp.n_states else -1
            self._ops[id(P)] = (P, op.args + (band,))
        r_key = t if self._time_rewards else -1
        if self.arrival:
            rbar = self._no_rbar
            if r_key not in self._rewards:
                self._rewards[r_key] = np.ascontiguousarray(mdp.reward_slice(t)[0, 0],
                                                            dtype=np.float64)
            reward = self._rewards[r_key]
        else:
            key = (id(P), r_key)
            if key not in self._rbars:
                self._rbars[key] = np.ascontiguousarray(mdp.expected_reward(t), dtype=np.float64)
            rbar, reward = self._rbars[key], self._zeros
        site = self._reference_site(t)
        if site is None:
            log_pi0 = self._uniform
        else:
            if id(site) not in self._log_refs:
                if len(self._log_refs) > 64:
                    self._log_refs.clear()
                probs = np.ascontiguousarray(site_probabilities(site, mdp.n_actions),
                                            dtype=np.float64)
                with np.errstate(divide="ignore"):
                    log_probs = np.ascontiguousarray(np.log(probs))
                self._log_refs[id(site)] = (log_probs, np.exp(log_probs))  # as soft_backup
            log_pi0 = self._log_refs[id(site)]
        return self._ops[id(P)][1], rbar, reward, log_pi0

    def run(self, start, stop, v, u, *, stride=1, kept=None, left=None, history=None,
            probs=None):
        """Sites ``stop - 1`` down to ``start`` (one run: equal keys); returns ``(V, u)`` at
        ``start``. See :func:`_soft_backward` for ``stride``, ``kept``, ``left = (dists,
        accs, powers)``, ``history`` and ``probs``."""
        (*args, band), rbar, reward, log_pi0 = self.arguments(start)
        S = self.mdp.n_states
        if left is None:
            left = (np.empty((0, S)), np.empty(0), np.ones(stop - start))
        if kept is None:  # nothing to keep: only row 0 (scratch) is ever written
            kept, stride = np.empty((1, S)), stop + 1
        return _soft_backward(*args, rbar, reward, self.arrival, float(self.mdp.discount),
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


def backward_soft_sweep(mdp, temperature, reference=None, *, left=None, budget=None):
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
        at ``sqrt(T)`` checkpoints (:class:`tnmdp.policy.Checkpoints`).

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
    from .policy import Checkpoints

    T, S = mdp.horizon, mdp.n_states
    backups = SoftBackup(mdp, temperature, reference)
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
    v = np.ascontiguousarray(mdp.terminal_rewards, dtype=np.float64)
    u = v
    runs = _runs([backups.key(t) for t in range(T)], block)
    for b0 in reversed(range(0, T, block)):
        if left is not None:
            for t in range(b0, min(b0 + block, T)):
                dists[t - b0], accs[t] = left[t]
        for start, stop in reversed(runs[b0]):
            env = (dists[start - b0:stop - b0], accs[start:stop], powers[start:stop]) \
                if left is not None else None
            v, u = backups.run(start, stop, v, u, stride=stride, kept=kept, left=env,
                               history=None if history is None else history[start:stop])
    for t in range(0, T, stride):
        store.record(t, kept[t // stride])
    store.record(T, np.ascontiguousarray(mdp.terminal_rewards, dtype=np.float64))
    return store, u, None if history is None else history[::-1].copy()
