"""Compiled (numba) loops for the exact backward sweep: products, argmax, backward and forward
moves of the environments.

These are the innermost loops of :mod:`tnmdp.backends.numba.argmax_sweep` and
:mod:`tnmdp.backends.numba.soft_sweep`; they take operators packed by
:class:`tnmdp.backends.numpy.operators.Operator` (``(kind, indptr, cols, vals)``) and trust
their inputs. Validation happens at the public boundary (:mod:`tnmdp._validate`).
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["product", "product_pair", "masked_dot", "argmax_rows", "next_input", "backward_run",
           "forward_run"]


@njit(cache=True, nogil=True)
def product(kind, indptr, cols, vals, x, y):
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
            dense_rows(vals, x, y)
        else:
            for i in range(n):
                acc = 0.0
                for j in range(m):
                    p = vals[i, j]
                    if p != 0.0:
                        acc += p * x[j]
                y[i] = acc
    else:
        dense_columns(vals, x, y)


@njit(cache=True, nogil=True, fastmath={"reassoc", "nsz"})
def dense_rows(vals, x, y):
    """``y = vals @ x[:m]`` for a C-ordered ``(n, m)`` ``vals``: one vectorised dot product
    per row, as fast as BLAS ``dgemv`` here (and without the ~2 s that compiling a BLAS call
    costs numba in every process with a cold cache)."""
    n, m = vals.shape
    for i in range(n):
        acc = 0.0
        for j in range(m):
            acc += vals[i, j] * x[j]
        y[i] = acc


@njit(cache=True, nogil=True)
def dense_columns(vals, x, y):
    """``y = x[:m] @ vals`` for a C-ordered ``(m, n)`` ``vals``: four rows of ``vals`` added
    into ``y`` per pass (within 10% of BLAS here, see :func:`dense_rows`)."""
    m = vals.shape[0]
    y[:] = 0.0
    j = 0
    while j + 4 <= m:
        x0, x1, x2, x3 = x[j], x[j + 1], x[j + 2], x[j + 3]
        v0, v1, v2, v3 = vals[j], vals[j + 1], vals[j + 2], vals[j + 3]
        for i in range(y.shape[0]):
            y[i] += x0 * v0[i] + x1 * v1[i] + x2 * v2[i] + x3 * v3[i]
        j += 4
    for k in range(j, m):
        xk, vk = x[k], vals[k]
        for i in range(y.shape[0]):
            y[i] += xk * vk[i]


@njit(cache=True, nogil=True)
def copy_into(dst, src, first, stop):
    """``dst[first:stop] = src[first:stop]`` as a loop: numba's array slice assignment
    compiles its shape-mismatch message (~2 s of string machinery per process, cold cache)."""
    for i in range(first, stop):
        dst[i] = src[i]


@njit(cache=True, nogil=True, fastmath={"reassoc", "nsz"})
def masked_dot(weights, values):
    """``sum_{weights > 0} weights * values`` (so ``0 * -inf`` never enters), vectorised."""
    total = 0.0
    for i in range(weights.shape[0]):
        w = weights[i]
        total += w * values[i] if w > 0.0 else 0.0
    return total


@njit(cache=True, nogil=True)
def argmax_rows(q, n_actions, best, arg):
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
def next_input(arrival, reward, gamma, v, x):
    """The input of a backup from ``V``: ``x = reward + gamma v`` when ``arrival`` (an arrival
    reward folded in, as :func:`tnmdp.kernels.backup` does), else ``x = v``."""
    if not arrival:
        copy_into(x, v, 0, v.shape[0])
    elif gamma != 1.0:
        for s in range(v.shape[0]):
            x[s] = reward[s] + gamma * v[s]
    else:
        for s in range(v.shape[0]):
            x[s] = reward[s] + v[s]


@njit(cache=True, nogil=True)
def backward_run(kind, indptr, cols, vals, rbar, reward, arrival, gamma, v, dists, accs, powers,
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
        next_input(arrival, reward, gamma, v, x[:n_states])
        product(kind, indptr, cols, vals, x, q)
        if not arrival:
            if gamma != 1.0:
                for i in range(q.shape[0]):
                    q[i] = flat[i] + gamma * q[i]
            else:
                for i in range(q.shape[0]):
                    q[i] = flat[i] + q[i]
        argmax_rows(q, n_actions, v, actions[k])
        if dists.shape[0] > 0:  # no left environments: no objective to record
            history[k] = accs[k] + powers[k] * masked_dot(dists[k], v)
    return v


@njit(cache=True, nogil=True)
def forward_run(kind, indptr, cols, vals, probs, rbar, dist, acc, powers, keep, dists, accs):
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
            copy_into(dists[k], dist, 0, n_states)
        accs[k] = acc
        if unit:
            copy_into(w, dist, 0, n_states)
        else:
            for s in range(n_states):
                for a in range(n_actions):
                    w[s * n_actions + a] = dist[s] * probs[s, a]
        gain = masked_dot(w[:flat.shape[0]], flat)
        acc = acc + powers[k] * gain
        product(kind, indptr, cols, vals, w, dist)
    return dist, acc




@njit(cache=True, nogil=True)
def product_pair(kind, indptr, cols, vals, x, y, qx, qy, first, stop):
    """``qx = M x`` and ``qy = M y`` (as :func:`product`), sparse rows read once; sparse
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
        product(kind, indptr, cols, vals, x, qx)
        product(kind, indptr, cols, vals, y, qy)


