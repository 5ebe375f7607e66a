"""Tilted networks: partition functions and Doob-conditioned processes.

Replacing the return MPO by the product of diagonal weights ``exp(r_t / tau)`` (bond dimension 1)
turns the network into the partition function

    Z = E_pi0[exp(G / tau)] = <-r| W M |pi0>,

the probability of the conditioning event when rewards are 0 on allowed and ``-inf`` on
forbidden moves (``tau = 1``). Its right environments are the Doob ``h``-functions
``h_t(s) = E_pi0[exp(G_{t:} / tau) | s_t = s]``, computed here in log space with one
normalisation per site, so horizons of ``10^4`` and more neither underflow nor produce ``nan``.
The Doob transform

    P^h_t(s' | s) = sum_a pi0(a|s) P_t(s'|s,a) exp(R_t(s,a,s') / tau) h_{t+1}(s') / h_t(s)

is the reference process conditioned on (tilted by) the return: a one-action MDP.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from .kernels import log_reference
from .model import FiniteMDP

__all__ = ["log_partition", "log_h_functions", "doob_transform"]


def _tilted_operator(mdp, t, temperature, reference):
    """``K_t[s, s'] = sum_a pi0(a|s) P(s'|s,a) exp((R(s,a,s') - c) / tau)`` and the shift ``c``.

    Returned as an ``(S, S)`` CSR (sparse MDP) or ndarray with the scale ``c`` (the largest
    finite reward of the site) taken out so that no entry overflows.
    """
    S, A = mdp.n_states, mdp.n_actions
    reward = mdp.reward_slice(t)
    finite = reward[np.isfinite(reward)]
    shift = float(finite.max()) if finite.size else 0.0
    weights = mdp.weighted_transitions(t, lambda r: np.exp((r - shift) / temperature))
    pi0 = np.exp(np.broadcast_to(log_reference(reference, t, (S, A)), (S, A))).reshape(-1)
    mix = sp.kron(sp.identity(S, format="csr"), np.ones((1, A)), format="csr") @ sp.diags(pi0)
    if sp.issparse(weights):
        return (mix @ weights).tocsr(), shift
    return mix @ weights, shift


def log_h_functions(mdp, temperature=1.0, reference_policy=None):
    """Log Doob functions ``log h_t``, ``t = 0..T``, shape ``(T+1, S)`` (``-inf`` where 0).

    Notes
    -----
    Cost ``O(sum_t nnz(P_t))`` time and ``O(T S)`` memory.
    """
    out = np.empty((mdp.horizon + 1, mdp.n_states))
    for t, log_h in _backward_log_h(mdp, temperature, reference_policy):
        out[t] = log_h
    return out


def _backward_log_h(mdp, temperature, reference_policy):
    """Yield ``(t, log h_t)`` for ``t = T..0``."""
    from .solve import check_mdp, check_reference, check_temperature

    check_mdp(mdp)
    temperature = check_temperature(temperature)
    if temperature == 0:
        raise ValueError("temperature must be > 0 for a tilted network")
    reference = check_reference(reference_policy, mdp)
    log_h = mdp.terminal_rewards / temperature
    yield mdp.horizon, log_h
    for t in range(mdp.horizon - 1, -1, -1):
        K, shift = _tilted_operator(mdp, t, temperature, reference)
        top = log_h[np.isfinite(log_h)].max() if np.isfinite(log_h).any() else 0.0
        z = K @ np.exp(log_h - top)
        with np.errstate(divide="ignore"):
            log_h = np.log(z) + top + shift / temperature
        yield t, log_h


def log_partition(mdp, *, temperature=1.0, reference_policy=None):
    """``log E_pi0[exp(G / tau)]`` by contracting the tilted network.

    Parameters
    ----------
    mdp : FiniteMDP
    temperature : float
        ``tau > 0``.
    reference_policy : Policy or array_like (T, S, A), optional
        ``pi0``; uniform by default.

    Returns
    -------
    float
        With 0/``-inf`` rewards and ``tau = 1``: the log probability of the conditioning event
        under ``pi0`` (``-inf`` if it is impossible).

    Notes
    -----
    Holds for any dynamics, noisy ones included. With deterministic transitions from one
    initial state, ``tau * log_partition`` equals the optimal soft value of :func:`solve`.
    """
    for _, log_h in _backward_log_h(mdp, temperature, reference_policy):
        pass
    support = mdp.initial > 0
    vals = np.log(mdp.initial[support]) + log_h[support]
    if not np.isfinite(vals).any():
        return -np.inf
    top = vals[np.isfinite(vals)].max()
    return float(top + np.log(np.exp(vals - top).sum()))


def doob_transform(mdp, *, temperature=1.0, reference_policy=None):
    """The reference process conditioned on the return: a one-action :class:`FiniteMDP`.

    Parameters
    ----------
    mdp : FiniteMDP
    temperature : float
    reference_policy : Policy or array_like (T, S, A), optional

    Returns
    -------
    FiniteMDP
        ``n_actions == 1``; time-dependent transitions ``P^h_t`` (a length-``T`` list of CSR
        matrices for a sparse MDP, a dense ``(T, S, 1, S)`` array otherwise); initial
        distribution ``Pr(s_0 = s) ∝ initial(s) h_0(s)``; rewards the conditional mean of
        ``R_t(s, a, s')`` over actions under the conditioned law (the MDP's own rewards when they
        do not depend on the action); the same terminal rewards. States with ``h_t = 0`` are never
        visited; they keep the reference dynamics. ``evaluate(doob, [[[1.]]] * T)`` is the
        expected return under the conditioned process.

    Notes
    -----
    ``O(sum_t nnz(P_t))`` time and memory: one operator per time step.
    """
    T, S, A = mdp.horizon, mdp.n_states, mdp.n_actions
    log_h = log_h_functions(mdp, temperature, reference_policy)
    reference = check_reference_policy(reference_policy, mdp)
    if not np.isfinite(log_h[0][mdp.initial > 0]).any():
        raise ValueError("the conditioning event has probability zero under the reference "
                         "policy: there is no conditioned process")
    ops = []
    for t in range(T):
        K, _ = _tilted_operator(mdp, t, temperature, reference)
        ops.append(_normalised(K, log_h[t + 1], log_h[t], mdp, t, reference))
    w0 = np.where(mdp.initial > 0, mdp.initial * np.exp(log_h[0] - np.nanmax(
        np.where(np.isfinite(log_h[0]), log_h[0], np.nan))), 0.0)
    initial = w0 / w0.sum()
    rewards = _doob_rewards(mdp, temperature, reference, log_h)
    transitions = ops if mdp.is_sparse else np.stack(ops)[:, :, None, :]
    return FiniteMDP(transitions, rewards, T, initial, mdp.terminal_rewards,
                     discount=mdp.discount, atol=1e-8)


def check_reference_policy(reference_policy, mdp):
    from .solve import check_reference

    return check_reference(reference_policy, mdp)


def _normalised(K, log_h_next, log_h_now, mdp, t, reference):
    """Row-normalise ``K diag(h_{t+1})``; dead rows (h_t = 0) get the reference dynamics."""
    S, A = mdp.n_states, mdp.n_actions
    finite = np.isfinite(log_h_next)
    top = log_h_next[finite].max() if finite.any() else 0.0
    scale = np.where(finite, np.exp(log_h_next - top), 0.0)
    weighted = (K @ sp.diags(scale)) if sp.issparse(K) else K * scale[None, :]
    sums = np.asarray(weighted.sum(axis=1)).ravel()
    dead = ~(sums > 0)
    inv = np.where(dead, 0.0, 1.0 / np.where(dead, 1.0, sums))
    if sp.issparse(K):
        out = (sp.diags(inv) @ weighted).tocsr()
    else:
        out = weighted * inv[:, None]
    if dead.any():  # the reference dynamics, for rows the conditioned process never visits
        P = mdp.transition_matrix(t)
        pi0 = np.exp(np.broadcast_to(log_reference(reference, t, (S, A)), (S, A))).reshape(-1)
        mix = sp.kron(sp.identity(S, format="csr"), np.ones((1, A)), format="csr") @ sp.diags(pi0)
        base = mix @ P
        rows = sp.diags(dead.astype(float))
        if sp.issparse(K):
            out = (out + rows @ sp.csr_matrix(base)).tocsr()
        else:
            out = out + (rows @ base)
    if sp.issparse(out):
        out.eliminate_zeros()
    return out


def _doob_rewards(mdp, temperature, reference, log_h):
    """Rewards of the one-action conditioned MDP."""
    r = mdp.rewards
    if r.shape[2] == 1:  # no action dependence: the MDP's own rewards
        return r
    T, S, A = mdp.horizon, mdp.n_states, mdp.n_actions
    if T * S * S > 5e7:
        raise ValueError("doob_transform of a model with action-dependent rewards builds dense "
                         f"(T, S, 1, S) rewards; T*S*S = {T * S * S:.3g} is too large")
    out = np.zeros((T, S, 1, S))
    for t in range(T):
        P = mdp.transition_matrix(t)
        P = (P.toarray() if sp.issparse(P) else P).reshape(S, A, S)
        R = np.broadcast_to(mdp.reward_slice(t), (S, A, S))
        pi0 = np.exp(np.broadcast_to(log_reference(reference, t, (S, A)), (S, A)))
        with np.errstate(invalid="ignore", over="ignore"):
            w = pi0[:, :, None] * P * np.exp(R / temperature)
            total = w.sum(axis=1)
            mean = np.where(w > 0, w * R, 0.0).sum(axis=1) / np.where(total > 0, total, 1.0)
        out[t, :, 0, :] = mean
    return out
