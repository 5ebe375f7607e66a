"""Array kernels for controlled lattices: transfer operators on MPS, compression, row environments.

An MPS here is a list of ``L`` arrays ``A[i]`` of shape ``(D_l, d, D_r)`` (``D = 1`` at both ends).
The distribution ``p_t(x)`` of the configuration at time ``t`` and the value-to-go ``V_t(x)`` are
such MPS. One time step of a controlled lattice is the transfer operator::

    T_t(x' | x) = prod_i M_{t,i}(x_{i-1}, x_i, x_{i+1}; x'_i),
    M_{t,i}(ctx; x') = sum_a pi[t, i, ctx, a] kernel[t, i, ctx, a, x'],

an MPO whose bond carries ``(x_i, x_{i+1})`` (bond dimension ``d^2``, independent of ``L``,
:func:`transfer_mpo`). It is applied with :func:`tnmdp.lattice.mps.apply_mpo` (``p -> T p``, and
``V -> T^T V`` with :func:`transpose_mpo`), which compresses by QR and SVD sweeps and returns the
discarded weight (summed squared singular values dropped, relative to the squared norm). The
policy-averaged reward ``R_t(x) = sum_i rbar_i(x_{i-1}, x_i, x_{i+1})`` is an automaton MPS of bond
``2 + d + d^2`` (:func:`reward_mps`), so ``V_t = R_t + gamma T_t^T V_{t+1}`` is one application,
one direct sum (:func:`add_mps`) and one compression.

The expected return is a 2-D (space x time) network; a row ``t`` of it is the functional::

    F_t = <V_{t+1}| T_t |p_t>,

contracted from the left and from the right with environments ``L_i[a, b, x_{i-1}, x_i]`` and
``R_i[a, b, x_{i-1}, x_i]`` (``a``: bond of ``p_t``, ``b``: bond of ``V_{t+1}``), as quimb's
``MovingEnvironment`` does for DMRG: ``F_t = sum L_i R_i`` at every ``i``, and the network with the
tensor ``M_{t,i}`` removed (:func:`hole`) is the coefficient of the local policy ``pi[t, i]``.

Costs with bond ``chi``: one environment step ``O(chi^3 d^3 + chi^2 d^4)``; an application
``O(L chi^2 d^6)`` plus a compression ``O(L chi^3 d^7)`` (the product has bond ``chi d^2``).
"""

from __future__ import annotations

import numpy as np

from . import mps as mps_ops

__all__ = ["transfer_tensors", "transfer_mpo", "transpose_mpo", "reward_mps", "add_mps",
           "compressed", "applied", "context_marginals", "mps_dot", "initial_left",
           "left_environment", "right_environments", "hole"]


def transfer_tensors(kernel_t, policy_t):
    """``M[i, y, z, u, w] = sum_a policy_t[i, y, z, u, a] kernel_t[i, y, z, u, a, w]``.

    kernel_t : (L, d, d, d, k, d); policy_t : (L, d, d, d, k). Returns (L, d, d, d, d).
    """
    return np.einsum("iyzuaw,iyzua->iyzuw", kernel_t, policy_t)


def transfer_mpo(M):
    """The transfer operator ``T_t`` as an MPO in :mod:`tnmdp.lattice.mps` layout.

    ``W_i[(y, z), (z', u), w, x] = delta(z, x) delta(z', x) M_i[y, x, u, w]`` (output ``w`` =
    ``x'_i``, input ``x`` = ``x_i``): the bond between sites ``i`` and ``i+1`` carries
    ``(x_i, x_{i+1})`` (bond ``d^2``); the ends are closed with ``x_{-1} = x_L = 0``. The
    transpose (``T^T``, for value functions) swaps the last two axes.

    Parameters
    ----------
    M : ndarray, shape (L, d, d, d, d)
        From :func:`transfer_tensors`.

    Returns
    -------
    list of L arrays, shapes (Dl, Dr, d, d) with ``Dl = d^2`` except 1 at site 0 (``Dr``
    likewise at site ``L-1``).
    """
    L, d = M.shape[0], M.shape[1]
    eye = np.eye(d)
    left = np.zeros((d, d))
    left[0, :] = 1.0   # x_{-1} = 0, x_0 free
    right = np.zeros((d, d))
    right[:, 0] = 1.0  # x_{L-1} free, x_L = 0
    out = []
    for i in range(L):
        W = np.einsum("yxuw,zx,vx->yzvuwx", M[i], eye, eye).reshape(d * d, d * d, d, d)
        if i == 0:
            W = np.einsum("p,pqwx->qwx", left.reshape(-1), W)[None]
        if i == L - 1:
            W = np.einsum("pqwx,q->pwx", W, right.reshape(-1))[:, None]
        out.append(W)
    return out


def transpose_mpo(mpo):
    """``W^T``: swap the output and input axes of every site."""
    return [W.transpose(0, 1, 3, 2) for W in mpo]


def reward_mps(rbar):
    """MPS of ``R(x) = sum_i rbar[i, x_{i-1}, x_i, x_{i+1}]`` (missing neighbours read 0).

    A finite automaton with bond states ``[idle, done, started(y), half(y, z)]`` (bond
    ``2 + d + d^2``): term ``i`` starts at site ``i-1`` (or at the left boundary for ``i = 0``) and
    is charged when ``x_{i+1}`` is read (at the right boundary, with ``x_L = 0``, for ``i = L-1``).
    """
    L, d = rbar.shape[0], rbar.shape[1]
    D = 2 + d + d * d
    IDLE, DONE, START, HALF = 0, 1, 2, 2 + d
    tensors = []
    for j in range(L):
        W = np.zeros((D, d, D))
        for x in range(d):
            W[IDLE, x, IDLE] = 1.0
            W[IDLE, x, START + x] = 1.0
            W[DONE, x, DONE] = 1.0
            for y in range(d):
                W[START + y, x, HALF + y * d + x] = 1.0
            if j > 0:
                W[HALF:, x, DONE] = rbar[j - 1][:, :, x].reshape(-1)
        tensors.append(W)
    left = np.zeros(D)
    left[IDLE] = 1.0
    left[START + 0] = 1.0
    right = np.zeros(D)
    right[DONE] = 1.0
    right[HALF:] = rbar[L - 1][:, :, 0].reshape(-1)
    tensors[0] = np.einsum("l,lxr->xr", left, tensors[0])[None]
    tensors[-1] = np.einsum("lxr,r->lx", tensors[-1], right)[..., None]
    return tensors


def add_mps(first, second, weight=1.0):
    """``first + weight * second`` by a direct sum of the bonds (no compression)."""
    L = len(first)
    if L == 1:
        return [first[0] + weight * second[0]]
    out = []
    for i, (A, B) in enumerate(zip(first, second)):
        if i == 0:
            out.append(np.concatenate([A, weight * B], axis=2))
        elif i == L - 1:
            out.append(np.concatenate([A, B], axis=0))
        else:
            C = np.zeros((A.shape[0] + B.shape[0], A.shape[1], A.shape[2] + B.shape[2]))
            C[:A.shape[0], :, :A.shape[2]] = A
            C[A.shape[0]:, :, A.shape[2]:] = B
            out.append(C)
    return out


def compressed(mps, max_bond, cutoff):
    """:func:`tnmdp.lattice.mps.compress` with the norm put back into site 0.

    Returns ``(tensors, discarded_weight)``; the values represented here (probabilities summing
    to 1, value functions of order ``L T``) keep every tensor of order one after the gauge.
    """
    result = mps_ops.compress(mps, max_bond=max_bond, cutoff=cutoff)
    tensors = list(result.mps)
    tensors[0] = tensors[0] * np.exp(result.log_norm)
    return tensors, result.discarded_weight


def applied(mpo, mps, max_bond, cutoff):
    """:func:`tnmdp.lattice.mps.apply_mpo` with the norm put back: ``(tensors, discarded)``."""
    result = mps_ops.apply_mpo(mpo, mps, max_bond=max_bond, cutoff=cutoff)
    tensors = list(result.mps)
    tensors[0] = tensors[0] * np.exp(result.log_norm)
    return tensors, result.discarded_weight


def context_marginals(mps):
    """``rho[i, y, z, u]`` = the MPS summed over all sites but ``i-1, i, i+1`` (missing = 0).

    For a distribution this is ``Pr(x_{i-1} = y, x_i = z, x_{i+1} = u)``; shape ``(L, d, d, d)``.
    """
    L, d = len(mps), mps[0].shape[1]
    pad = np.zeros((1, d, 1))
    pad[0, 0, 0] = 1.0
    chain = [pad] + list(mps) + [pad]
    lefts = [np.ones(1)]
    for A in chain[:-1]:
        lefts.append(lefts[-1] @ A.sum(axis=1))
    rights = [np.ones(1)]
    for A in chain[:0:-1]:
        rights.append(A.sum(axis=1) @ rights[-1])
    rights = rights[::-1]          # rights[j] = sum over chain sites j.. (length L+3)
    out = np.empty((L, d, d, d))
    for i in range(L):
        a, b, c = chain[i], chain[i + 1], chain[i + 2]
        first = np.tensordot(lefts[i], a, axes=(0, 0))                 # (y, m)
        last = np.tensordot(c, rights[i + 2], axes=(2, 0))              # (n, u)
        out[i] = np.einsum("ym,mzn,nu->yzu", first, b, last, optimize=True)
    return out


def mps_dot(first, second):
    """``sum_x first(x) second(x)``."""
    env = np.ones((1, 1))
    for A, B in zip(first, second):
        env = np.einsum("ab,axc,bxe->ce", env, A, B)
    return float(env[0, 0])


def _left_start(d):
    E = np.zeros((1, 1, d, d))
    E[0, 0, 0, :] = 1.0
    return E


def _right_start(d):
    E = np.zeros((1, 1, d, d))
    E[0, 0, :, 0] = 1.0
    return E


def left_environment(E, A, Mi, B):
    """``L_{i+1}[c, e, z, u] = sum L_i[a, b, y, z] A[a, z, c] M[y, z, u, w] B[b, w, e]``."""
    X = np.einsum("abyz,azc->byzc", E, A)
    Y = np.einsum("byzc,yzuw->bzcuw", X, Mi)
    return np.einsum("bzcuw,bwe->cezu", Y, B)


def right_environments(p, M, V):
    """``[R_0, ..., R_L]`` with ``R_L`` the boundary and
    ``R_i[a, b, y, z] = sum A_i[a, z, c] M_i[y, z, u, w] B_i[b, w, e] R_{i+1}[c, e, z, u]``."""
    L, d = len(p), p[0].shape[1]
    envs = [None] * (L + 1)
    envs[L] = _right_start(d)
    for i in range(L - 1, -1, -1):
        X = np.einsum("bwe,cezu->bwczu", V[i], envs[i + 1])
        Y = np.einsum("bwczu,yzuw->bczy", X, M[i])
        envs[i] = np.einsum("azc,bczy->abyz", p[i], Y)
    return envs


def hole(E_left, A, B, E_right):
    """``G[y, z, u, w]``: the row network without ``M_i`` (its coefficient: ``F = sum G M_i``)."""
    X = np.einsum("abyz,azc->byzc", E_left, A)
    Y = np.einsum("byzc,bwe->yzcwe", X, B)
    return np.einsum("yzcwe,cezu->yzuw", Y, E_right)


def initial_left(d):
    """The left boundary environment ``L_0[0, 0, y, z] = delta(y, 0)``."""
    return _left_start(d)
