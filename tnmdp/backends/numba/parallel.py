"""Compiled backward induction over row blocks on all cores (numba ``prange``).

The serial :func:`tnmdp.backends.numba.kernels.backward_run` forms ``Q = P x`` for all
``S A`` rows, then takes the argmax in a second pass: once ``Q`` leaves the per-core cache the
second pass reads it back from memory, and one core cannot keep enough gathers ``x[col]`` in
flight to use the memory system. Here each site is one parallel loop over blocks of
:data:`BLOCK_ROWS` rows (whole states): a block's ``Q`` rows are formed, the reward added and the
per-state argmax taken while they are in cache, and the new ``V`` written to a second buffer
together with the next site's input ``x = r + gamma V`` (double buffering: blocks read the
site's ``x`` and write ``V_t`` and the next ``x``, so no block reads what another writes, and
each site is one parallel region).

Determinism: every row is summed by one thread over its stored entries in the serial kernel's
order (column order, starting from the first entry), the reward added by the same expression,
and the maximum taken over actions in order with the same strict comparison (ties to the lowest
action), so ``V`` and the policy are the same bits as the serial kernel's whatever the number
of threads. The objective ``<dist, V>`` (recorded only with left environments) is
:func:`~tnmdp.backends.numba.kernels.masked_dot`, the serial kernel's own reduction, called
once per site outside the parallel loop (``O(S)``, under 1% of a site's ``O(nnz)``).

Threads: numba's current count (``NUMBA_NUM_THREADS``, or ``numba.set_num_threads`` by the
caller); this module never changes it (nor the threading layer). :func:`pays` is the one
threshold: sparse operators with at least :data:`PARALLEL_MIN_ROWS` rows, when more than one
thread is available, called from the main thread and not in a ``fork`` child of a process
that has started the worker threads (the serial kernel runs there: same bits).

Notes
-----
Cost per site: ``O(nnz(P))`` work split over the threads and one barrier (measured 30-50 us
on the 2-core machine: hence :data:`PARALLEL_MIN_ENTRIES`). Memory: three ``O(S)`` buffers and
one ``BLOCK_ROWS`` scratch vector per block.
"""

from __future__ import annotations

import os
import threading

import numpy as np
from numba import get_num_threads, njit, prange

from ..numpy.operators import CSR, ELL
from .kernels import argmax_rows, masked_dot, next_input

__all__ = ["BLOCK_ROWS", "PARALLEL_MIN_ROWS", "pays", "product_rows", "block_argmax",
           "backward_run_parallel"]

#: ``(s, a)`` rows per block of the parallel loop (rounded down to whole states): the block's
#: ``Q`` (64 KiB) stays in the per-core L2 cache. Measured at S=200,000, A=4, 8 nnz/row on the
#: 2-core machine (wall, 2 threads, relative to 8,192): 4,096 and 16,384 rows 1.05-1.1, 1,024
#: rows 1.35, 256 rows 1.4, 32,768 rows 3.0 (``Q``, 256 KiB, probably leaves L2).
BLOCK_ROWS = 8192

#: Sparse operators with fewer ``(s, a)`` rows than this run on the serial kernel: below two
#: blocks there is nothing to share. Measured per site, 2 threads, load ~1 (parallel / serial):
#: random sparse A=4, 8 nnz/row: 8,192 rows 1.03 (one block), 16,384 rows 0.53, 65,536 rows
#: 0.51, 262,144 rows 0.38 (``Q`` no longer fits the serial kernel's cache); excursion walks
#: (A=2, one entry per row, arrival reward): 40,002 rows 0.7, 262,146 rows 0.58.
PARALLEL_MIN_ROWS = 2 * BLOCK_ROWS


#: The process that started numba's worker threads through :func:`pays` (a fork guard).
_STARTED_IN = []


def pays(op):
    """True when the backward sweep over the packed operator ``op`` (an
    :class:`~tnmdp.backends.numpy.operators.Operator` of a ``(S A, S)`` matrix) should run on
    :func:`backward_run_parallel` (which gives the serial kernel's bits, so this only decides
    speed).

    Needs: ELL or CSR, at least :data:`PARALLEL_MIN_ROWS` rows, more than one numba thread
    (``numba.get_num_threads``), the main thread (numba's fallback ``workqueue`` threading
    layer aborts on parallel launches from two threads at once), and not a ``fork`` child of a
    process that has started the worker threads (GNU OpenMP, numba's ``omp`` layer, terminates
    such a child when it launches parallel work). On a ``True`` answer the process is recorded
    as the one that started them.
    """
    if not (op.kind in (ELL, CSR) and op.shape[0] >= PARALLEL_MIN_ROWS
            and get_num_threads() > 1 and threading.current_thread() is threading.main_thread()):
        return False
    pid = os.getpid()
    if _STARTED_IN and _STARTED_IN[0] != pid:
        return False
    if not _STARTED_IN:
        _STARTED_IN.append(pid)
    return True


@njit(cache=True, nogil=True)
def product_rows(kind, indptr, cols, vals, x, q, r0, r1):
    """``q[:r1 - r0] = (M x)[r0:r1]`` for an ELL (``kind`` 0) or CSR operator, each row summed
    as :func:`tnmdp.backends.numba.kernels.product` sums it (same bits)."""
    n = r1 - r0
    if kind == 0:
        c0, v0 = cols[0][r0:r1], vals[0][r0:r1]
        for i in range(n):
            q[i] = v0[i] * x[c0[i]]
        for j in range(1, cols.shape[0]):
            cj, vj = cols[j][r0:r1], vals[j][r0:r1]
            for i in range(n):
                q[i] += vj[i] * x[cj[i]]
    else:
        c, d = cols[0], vals[0]
        for i in range(n):
            acc = 0.0
            for p in range(indptr[r0 + i], indptr[r0 + i + 1]):
                acc += d[p] * x[c[p]]
            q[i] = acc


@njit(cache=True, nogil=True)
def block_argmax(q, n_actions, best, arg):
    """Per-state max and argmax of one block's ``q[s*A + a]``, ties to the lowest action (the
    same values and actions as :func:`~tnmdp.backends.numba.kernels.argmax_rows`): its
    branch-free form for two actions, one pass per state (the maximum in a register) else."""
    if n_actions == 2:
        argmax_rows(q, n_actions, best, arg)
        return
    for s in range(best.shape[0]):
        base = s * n_actions
        top = q[base]
        choice = 0
        for a in range(1, n_actions):
            qa = q[base + a]
            if qa > top:  # strict: ties stay with the lowest action
                top = qa
                choice = a
        best[s] = top
        arg[s] = choice


@njit(cache=True, nogil=True, parallel=True)
def backward_run_parallel(kind, indptr, cols, vals, rbar, reward, arrival, gamma, v, dists,
                          accs, powers, actions, history):
    """:func:`tnmdp.backends.numba.kernels.backward_run` for sparse operators (``kind`` ELL or
    CSR only), parallel over blocks of states: same arguments, same bits."""
    n_states, n_actions = rbar.shape
    flat = rbar.ravel()
    # x = r + gamma V_{t+1} (arrival) or V_{t+1}, read by every block; the trailing 0 is where
    # ELL padding points. Each block writes its states of V_t and of the next site's x into
    # the other buffers: one parallel region (one barrier) per site.
    x = np.zeros(n_states + 1)
    x_next = np.zeros(n_states + 1)
    out = np.empty(n_states)
    for s in range(n_states):
        if arrival:
            x[s] = reward[s] + gamma * v[s] if gamma != 1.0 else reward[s] + v[s]
        else:
            x[s] = v[s]
        out[s] = v[s]
    per_block = max(1, BLOCK_ROWS // n_actions)
    n_blocks = (n_states + per_block - 1) // per_block
    for k in range(powers.shape[0] - 1, -1, -1):
        act = actions[k]
        for b in prange(n_blocks):
            s0 = b * per_block
            s1 = min(n_states, s0 + per_block)
            r0, r1 = s0 * n_actions, s1 * n_actions
            q = np.empty(r1 - r0)
            product_rows(kind, indptr, cols, vals, x, q, r0, r1)
            if not arrival:
                rows = flat[r0:r1]
                if gamma != 1.0:
                    for i in range(r1 - r0):
                        q[i] = rows[i] + gamma * q[i]
                else:
                    for i in range(r1 - r0):
                        q[i] = rows[i] + q[i]
            block_argmax(q, n_actions, out[s0:s1], act[s0:s1])
            next_input(arrival, reward[s0:s1], gamma, out[s0:s1], x_next[s0:s1])
        x, x_next = x_next, x
        if dists.shape[0] > 0:  # no left environments: no objective to record
            history[k] = accs[k] + powers[k] * masked_dot(dists[k], out)
    return out
