"""Compiled backward induction over row blocks on all cores (numba ``prange``).

The serial :func:`tnmdp.backends.numba.kernels.backward_run` forms ``Q = P x`` for all
``S A`` rows, then takes the argmax in a second pass: once ``Q`` leaves the per-core cache the
second pass reads it back from memory, and one core cannot keep enough gathers ``x[col]`` in
flight to use the memory system. Here each site is one parallel loop over blocks of
:data:`BLOCK_ROWS` rows (whole states): a block's ``Q`` rows are formed, the reward added and the
per-state argmax taken while they are in L1, and the new ``V`` written to a second buffer
(double buffering: blocks read ``V_{t+1}`` and write ``V_t``, so no block reads what another
writes, and no copy of ``V`` is made per site).

Determinism: every row is summed by one thread over its stored entries in the serial kernel's
order (column order, starting from the first entry), the reward added by the same expression,
and the maximum taken over actions in order with the same strict comparison (ties to the lowest
action), so ``V`` and the policy are the same bits as the serial kernel's whatever the number
of threads. The objective ``<dist, V>`` (recorded only with left environments) is
:func:`~tnmdp.backends.numba.kernels.masked_dot`, the serial kernel's own reduction, called
once per site outside the parallel loop (``O(S)``, under 1% of a site's ``O(nnz)``).

Threads: numba's current count (``NUMBA_NUM_THREADS``, or ``numba.set_num_threads`` by the
caller); this module never changes it. :func:`pays` is the one threshold: sparse operators
with at least :data:`PARALLEL_MIN_ROWS` rows, when more than one thread is available.

Notes
-----
Cost per site: ``O(nnz(P))`` work split over the threads, one barrier (two with an arrival
reward, whose ``x = r + gamma V`` is formed in a parallel pass first). Memory: two ``S + 1``
buffers and one ``BLOCK_ROWS`` scratch vector per block.
"""

from __future__ import annotations

import numpy as np
from numba import get_num_threads, njit, prange

from ..numpy.operators import CSR, ELL
from .kernels import masked_dot

__all__ = ["BLOCK_ROWS", "PARALLEL_MIN_ROWS", "pays", "product_rows",
           "backward_run_parallel"]

#: ``(s, a)`` rows per block of the parallel loop (rounded down to whole states): the block's
#: ``Q`` (64 KiB) stays in the per-core L2 cache. Measured at S=200,000, A=4, 8 nnz/row on the
#: 2-core machine: 1,024 to 16,384 rows per block are within noise of each other, 32,768 is 2.7x
#: slower (``Q`` leaves L2), 256 rows 1.3x slower (the gathers of a block are too few).
BLOCK_ROWS = 8192

#: Sparse operators with fewer ``(s, a)`` rows than this run on the serial kernel: a parallel
#: region costs microseconds per site (the walks' ``S A = 8000`` rows gain nothing from it).
PARALLEL_MIN_ROWS = 2**16


def pays(op):
    """True when the backward sweep over the packed operator ``op`` (an
    :class:`~tnmdp.backends.numpy.operators.Operator` of a ``(S A, S)`` matrix) should run on
    :func:`backward_run_parallel`: ELL or CSR, at least :data:`PARALLEL_MIN_ROWS` rows, and
    numba currently allows more than one thread."""
    return (op.kind in (ELL, CSR) and op.shape[0] >= PARALLEL_MIN_ROWS
            and get_num_threads() > 1)


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


@njit(cache=True, nogil=True, parallel=True)
def backward_run_parallel(kind, indptr, cols, vals, rbar, reward, arrival, gamma, v, dists,
                          accs, powers, actions, history):
    """:func:`tnmdp.backends.numba.kernels.backward_run` for sparse operators (``kind`` ELL or
    CSR only), parallel over blocks of states: same arguments, same bits."""
    n_states, n_actions = rbar.shape
    flat = rbar.ravel()
    cur = np.zeros(n_states + 1)  # V_{t+1}; the trailing 0 is where ELL padding points
    nxt = np.zeros(n_states + 1)
    cur[:n_states] = v
    per_block = max(1, BLOCK_ROWS // n_actions)
    n_blocks = (n_states + per_block - 1) // per_block
    for k in range(powers.shape[0] - 1, -1, -1):
        if arrival:  # x = r + gamma V_{t+1} into nxt; V_t overwrites cur
            for s in prange(n_states):
                nxt[s] = reward[s] + gamma * cur[s] if gamma != 1.0 else reward[s] + cur[s]
            x, out = nxt, cur
        else:
            x, out = cur, nxt
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
            for s in range(s0, s1):
                base = (s - s0) * n_actions
                best = q[base]
                arg = 0
                for a in range(1, n_actions):
                    qa = q[base + a]
                    if qa > best:  # strict: ties stay with the lowest action
                        best = qa
                        arg = a
                out[s] = best
                act[s] = arg
        if not arrival:
            cur, nxt = nxt, cur
        if dists.shape[0] > 0:  # no left environments: no objective to record
            history[k] = accs[k] + powers[k] * masked_dot(dists[k], cur[:n_states])
    return cur[:n_states].copy()
