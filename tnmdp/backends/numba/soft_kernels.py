"""Compiled (numba) loops of the soft (KL-regularised) backward sweep: the soft maximum over
actions row by row, and soft backward induction over a run of sites sharing one operator.

The soft maximum is ``V[s] = tau logsumexp_a(log pi0(a|s) + Q(s,a)/tau)`` with the Boltzmann
policy ``pi(a|s) ∝ pi0(a|s) exp(Q(s,a)/tau)``, computed in log space (``-inf`` safe; a dead state,
every action forbidden, gets ``V = -inf`` and ``pi = pi0``), as the numpy
:func:`tnmdp.kernels.soft_backup` does.
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

from .kernels import copy_into, masked_dot, product, product_pair

__all__ = ["soft_rows", "exp_log_rows", "soft_backward_run"]


@njit(cache=True, nogil=True)
def soft_rows(q, qu, log_pi0, pi0, tau, v, u, probs, scratch, first, stop):
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


#: Below this ``d`` the branch-free :func:`exp_log_rows` leaves ``exp(d)`` to libm (subnormal
#: results and underflow to 0).
_EXP_FLOOR = -700.0


@njit(cache=True, nogil=True, error_model="numpy")
def exp_log_rows(d, e, log_total, inverse, n):
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
    """:func:`soft_rows` for two actions: with ``d = z_low - z_high <= 0`` and
    ``e = exp(d)``, ``V = tau (z_high + log(1 + e))``, ``pi_high = 1 / (1 + e)``,
    ``pi_low = e pi_high``. Dead states and ``d = -inf`` are settled in a first pass, which
    gathers the others (``scratch``, shape ``(5, S)``) for the vectorised
    :func:`exp_log_rows`; a last pass writes ``V``, ``pi`` and ``u``.
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
    exp_log_rows(d, e, log_total, inverse, n)
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
def soft_backward_run(kind, indptr, cols, vals, rbar, reward, arrival, gamma, tau, log_pi0, pi0,
                   v, u, first, stride, kept, dists, accs, powers, history, probs, band):
    """Soft backward induction over ``len(powers)`` sites ``first, first + 1, ...`` sharing one
    operator, reward and reference site, last first.

    Both backups -- ``Q`` from the soft values ``V`` and ``Qu`` from the plain values ``u`` --
    are formed as :func:`backward_run` forms ``Q`` (``P (reward + gamma x)`` when ``arrival``, else
    ``rbar + gamma P x``), then :func:`soft_rows` gives the new ``V`` and ``u``. ``V_t`` is
    written to ``kept[t // stride]`` when ``t % stride == 0``; with left environments
    (``dists`` has rows) ``history[k] = accs[k] + powers[k] <dists[k], V>``. ``probs`` (with
    rows: a one-site run) receives the policy site. Returns ``(V, u)`` at the first site.

    ``band >= 0`` is the operator's bandwidth (:attr:`Operator.bandwidth`): with ``[lo, hi)``
    the states whose backed-up soft or plain value (``x`` or ``y`` below) is finite, a state
    ``s`` outside ``[lo - band, hi + band)`` has every successor dead in both, so every action
    has ``Q = Qu = -inf`` (rewards are never ``+inf`` or ``nan``, stored probabilities are
    positive) and :func:`soft_rows` would give ``V = u = -inf`` and ``pi = pi0``: those rows are
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
            copy_into(x, v, low, high)
            copy_into(y, u, low, high)
        start, stop = low, high
        if band >= 0:
            while start < stop and x[start] == -np.inf and y[start] == -np.inf:
                start += 1
            while stop > start and x[stop - 1] == -np.inf and y[stop - 1] == -np.inf:
                stop -= 1
            if start < stop:
                start, stop = max(start - band, 0), min(stop + band, n_states)
        product_pair(kind, indptr, cols, vals, x, y, q, qu, start * n_actions,
                      stop * n_actions)
        if not arrival:
            for i in range(start * n_actions, stop * n_actions):
                if gamma != 1.0:
                    q[i] = flat[i] + gamma * q[i]
                    qu[i] = flat[i] + gamma * qu[i]
                else:
                    q[i] = flat[i] + q[i]
                    qu[i] = flat[i] + qu[i]
        soft_rows(q, qu, log_pi0, pi0, tau, v, u, probs, scratch, start, stop)
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
            copy_into(kept[t // stride], v, 0, n_states)
        if dists.shape[0] > 0:
            history[k] = accs[k] + powers[k] * masked_dot(dists[k], v)
    return v, u


