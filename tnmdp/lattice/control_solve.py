"""Optimising local policies on a lattice by DMRG-style sweeps over the space-time network.

With a policy that is a product of local tensors ``pi[t, i]``, the expected return of a
:class:`~tnmdp.lattice.control.LatticeMDP` is a 2-D (space x time) network that contains every
local tensor once, so it is *linear* in each of them (Gillman, Rose & Garrahan 2020, Sect. 3, in
two dimensions). Holding all other tensors fixed::

    E[G] = const + sum_{ctx, a} pi[t, i, ctx, a] Q_{t,i}(ctx, a),
    Q_{t,i}(ctx, a) = gamma^t ( rho_{t,i}(ctx) reward[t, i, ctx, a]
                               + gamma sum_x' kernel[t, i, ctx, a, x'] H_{t,i}(ctx, x') ),

where ``rho_{t,i}`` is the context marginal of the distribution MPS ``p_t`` and ``H_{t,i}`` the row
network ``<V_{t+1}| T_t |p_t>`` with the tensor ``M_{t,i}`` removed
(:func:`tnmdp.lattice.control_network.hole`). ``p_t`` (forward, from the initial state) and the
value-to-go ``V_{t+1}`` (backward, ``V_t = R_t + gamma T_t^T V_{t+1}``, ``R_t`` the policy-averaged
local rewards as an MPS) are boundary MPS of the 2-D network; inside a row the left and right
environments are cached and moved one site at a time, as in DMRG.

The local problem -- maximise a linear function over one simplex per context -- is solved in closed
form: ``argmax_a Q(ctx, a)`` (ties to the lowest action). With ``temperature tau > 0`` the
objective is ``J_tau = E[G] - tau sum_{t,i} gamma^t E[KL(pi[t,i](.|ctx) || uniform)]`` and the
local optimum is the Boltzmann policy ``pi(a|ctx) ∝ exp(Q(ctx, a) / (tau gamma^t rho(ctx)))``
(``Q / (gamma^t rho)`` is the conditional action value of the context)
(the KL terms of later times enter ``V`` like rewards). Every local update therefore maximises the
objective exactly over its tensor: with exact environments (``max_bond`` large enough that nothing
is truncated) the objective never decreases (coordinate ascent). A solution is a local optimum of
the local-policy class, not necessarily the global one; the class itself cannot represent a policy
that must look beyond the nearest neighbours.

Sweeps alternate in time like DMRG's: the first goes backward (``t = T-1 .. 0``, using the stored
``p_t`` and rebuilding ``V_t``), the next forward (``t = 0 .. T-1``, using the stored ``V_{t+1}`` and
rebuilding ``p_{t+1}``), and so on; inside a row, sites are visited left to right.
"""

from __future__ import annotations

import numbers
import time
from dataclasses import dataclass

import numpy as np

from ..model import _check_int, as_rng
from . import control_network as cn
from . import mps as mps_ops
from .control import LatticeMDP, as_local_policy
from .control_evaluate import (check_cutoff, check_max_bond, evaluate, local_rewards,
                               row_value)

__all__ = ["LatticeSolution", "solve"]

#: Status codes of :class:`LatticeSolution`.
STATUS_MESSAGES = {0: "converged: a sweep changed the policy or the objective by less than tol",
                   1: "max_sweeps reached before the objective converged",
                   2: "stopped by the callback"}


@dataclass(frozen=True)
class LatticeSolution:
    """Result of :func:`solve` (immutable).

    Attributes
    ----------
    policy : ndarray, shape (T, L, d, d, d, k)
        The optimised local policy (read-only).
    expected_return : float
        ``E[G]`` of ``policy``, evaluated afresh by a forward contraction (as
        :func:`~tnmdp.lattice.evaluate`) at the same ``max_bond``.
    soft_value : float or None
        ``J_tau`` of ``policy`` with ``temperature > 0`` (evaluated afresh likewise);
        otherwise ``None``.
    history : ndarray, shape (n_updates,)
        The objective (``E[G]``, or ``J_tau``) after every local update, as computed from the
        environments of that update (exact when nothing was truncated).
    sweep_values : ndarray, shape (n_sweeps,)
        The objective after every sweep.
    sweep_times : ndarray, shape (n_sweeps,)
        Wall-clock seconds of every sweep.
    truncation_error : float
        Largest summed discarded weight of the boundary MPS over one sweep (``p_t`` or
        ``V_t``), plus that of the final evaluation; 0 when the environments were exact. The
        discarded weight is relative to the 2-norm, which a value function ``V_t`` spreads over
        all ``d^L`` configurations: see ``environment_error`` for its effect on the objective.
    environment_error : float
        ``|objective reached by the last sweep (from its environments) - objective of the final
        policy evaluated forward from p_t|``: the error of the environments where it matters.
        Of the order of round-off when nothing was truncated.
    max_bond_used : int
    n_sweeps : int
    success : bool
        ``status == 0``.
    status : int
        0 converged, 1 ``max_sweeps`` reached, 2 stopped by ``callback``.
    message : str
    """

    policy: np.ndarray
    expected_return: float
    soft_value: float | None
    history: np.ndarray
    sweep_values: np.ndarray
    sweep_times: np.ndarray
    truncation_error: float
    environment_error: float
    max_bond_used: int
    n_sweeps: int
    success: bool
    status: int
    message: str


def _initial_policy(mdp, initial_policy, allowed, rng):
    shape = (mdp.horizon, mdp.n_sites) + (mdp.local_dim,) * 3 + (mdp.n_local_actions,)
    if isinstance(initial_policy, str):
        if initial_policy == "uniform":
            pi = np.broadcast_to(allowed, shape).astype(np.float64)
        elif initial_policy == "random":
            pi = as_rng(rng).random(shape) * allowed
        else:
            raise ValueError(f"initial_policy must be 'uniform', 'random' or an array, "
                             f"got {initial_policy!r}")
        return pi / pi.sum(axis=-1, keepdims=True)
    pi = np.array(as_local_policy(initial_policy, mdp, name="initial_policy"))
    bad = (pi > 0) & ~np.broadcast_to(allowed, shape)
    if bad.any():
        idx = tuple(int(j) for j in np.argwhere(bad)[0])
        raise ValueError(f"initial_policy{list(idx)} is {pi[idx]} on an action whose reward is "
                         "-inf; give it probability 0")
    return pi


class _Sweeper:
    """State of the sweeps: the policy, the stored boundary MPS and the local solver."""

    def __init__(self, mdp, pi, allowed, max_bond, cutoff, temperature, scope):
        self.mdp, self.pi, self.allowed = mdp, pi, allowed
        self.max_bond, self.cutoff, self.tau, self.scope = max_bond, cutoff, temperature, scope
        self.prior = allowed / allowed.sum(axis=-1, keepdims=True)     # uniform over allowed
        self.weights = mdp.discount ** np.arange(mdp.horizon)
        self.history = []
        self.bond = 1

    # ---------------------------------------------------------------- local pieces
    def kl(self, t):
        """``KL(pi[t, i](.|ctx) || prior)`` for every ``i, ctx``: shape (L, d, d, d)."""
        pi, prior = self.pi[t], self.prior[t]
        safe = np.where(pi > 0, pi, 1.0)
        return np.sum(np.where(pi > 0, pi * np.log(safe / np.where(pi > 0, prior, 1.0)), 0.0),
                      axis=-1)

    def rbar(self, t):
        """Policy-averaged local rewards (minus ``tau`` KL): shape (L, d, d, d)."""
        extra = -self.tau * self.kl(t) if self.tau > 0 else None
        return local_rewards(self.mdp.reward[t], self.pi[t], extra)

    def transfer(self, t):
        return cn.transfer_tensors(self.mdp.kernel[t], self.pi[t])

    def local_solve(self, Q, rho, allowed):
        """Maximise ``sum pi Q - tau rho KL(pi || prior)`` over one simplex per context."""
        if self.scope == "site":  # the policy sees x_i only: sum Q over the neighbours
            Q = np.broadcast_to(Q.sum(axis=(0, 2), keepdims=True), Q.shape)
            rho = np.broadcast_to(rho.sum(axis=(0, 2), keepdims=True), rho.shape)
        Q = np.where(allowed, Q, -np.inf)
        k = Q.shape[-1]
        if self.tau == 0:
            return np.eye(k)[np.argmax(Q, axis=-1)]
        live = (rho > 0)[..., None]
        scaled = Q / np.where(live, self.tau * rho[..., None], 1.0)
        scaled = scaled - scaled.max(axis=-1, keepdims=True)
        boltz = np.where(allowed, np.exp(scaled), 0.0)
        boltz /= boltz.sum(axis=-1, keepdims=True)
        prior = allowed / allowed.sum(axis=-1, keepdims=True)
        return np.where(live, boltz, prior)

    # ---------------------------------------------------------------- passes
    def forward_states(self):
        """Recompute and store ``p_0 .. p_{T-1}`` and the discounted row values."""
        p = mps_ops.product_mps(self.mdp.initial)
        self.states, self.rows, discarded = [], np.empty(self.mdp.horizon), 0.0
        for t in range(self.mdp.horizon):
            self.states.append(p)
            self.rows[t] = self.weights[t] * row_value(cn.context_marginals(p), self.rbar(t))
            if t + 1 < self.mdp.horizon:
                p, dw = cn.applied(cn.transfer_mpo(self.transfer(t)), p, self.max_bond,
                                   self.cutoff)
                discarded += dw
                self.bond = max(self.bond, mps_ops.max_bond_of(p))
        return discarded

    def value_step(self, t, V_next):
        """``V_t = rbar_t + gamma T_t^T V_{t+1}`` as a compressed MPS, and its discarded weight."""
        R = cn.reward_mps(self.rbar(t))
        if V_next is None:
            return cn.compressed(R, self.max_bond, self.cutoff)
        TV, dw = cn.applied(cn.transpose_mpo(cn.transfer_mpo(self.transfer(t))), V_next,
                            self.max_bond, self.cutoff)
        V, dw2 = cn.compressed(cn.add_mps(R, TV, self.mdp.discount), self.max_bond, self.cutoff)
        self.bond = max(self.bond, mps_ops.max_bond_of(V))
        return V, dw + dw2

    def update_row(self, t, p, V_next, prefix):
        """Optimise ``pi[t, i]`` for ``i = 0..L-1`` against exact-in-row environments.

        ``prefix`` is the discounted value of the rows before ``t``; the objective after each
        update (``prefix + gamma^t F_t``) is appended to the history.
        """
        mdp, gamma, wt = self.mdp, self.mdp.discount, self.weights[t]
        L, d = mdp.n_sites, mdp.local_dim
        rho = cn.context_marginals(p)
        M = self.transfer(t)
        rbar = self.rbar(t)
        site_rows = np.array([row_value(rho[j:j + 1], rbar[j:j + 1]) for j in range(L)])
        if V_next is not None:
            rights = cn.right_environments(p, M, V_next)
            left = cn.initial_left(d)
        for i in range(L):
            kernel = mdp.kernel[t, i]
            reward = mdp.reward[t, i]
            live = (rho[i] > 0)[..., None]
            Q = np.where(live & np.isfinite(reward),
                         rho[i][..., None] * np.where(np.isfinite(reward), reward, 0.0), 0.0)
            Q = np.where(live & np.isneginf(reward), -np.inf, Q)
            if V_next is not None:
                G = cn.hole(left, p[i], V_next[i], rights[i + 1])
                QV = np.einsum("yzuw,yzuaw->yzua", G, kernel)
                Q = Q + gamma * QV
            new = self.local_solve(Q, rho[i], self.allowed[t, i])
            self.pi[t, i] = new
            M[i] = np.einsum("yzuaw,yzua->yzuw", kernel, new)
            one = self.rbar_site(t, i)
            site_rows[i] = row_value(rho[i:i + 1], one[None])
            row = site_rows.sum()
            if V_next is not None:
                row += gamma * float(np.einsum("yzuw,yzuw->", G, M[i]))
                left = cn.left_environment(left, p[i], M[i], V_next[i])
            self.history.append(prefix + wt * row)
        return prefix + wt * row

    def rbar_site(self, t, i):
        pi = self.pi[t, i]
        extra = None
        if self.tau > 0:
            safe = np.where(pi > 0, pi, 1.0)
            prior = np.where(pi > 0, self.prior[t, i], 1.0)
            extra = -self.tau * np.sum(np.where(pi > 0, pi * np.log(safe / prior), 0.0), axis=-1)
        return local_rewards(self.mdp.reward[t, i], pi, extra)

    def backward_sweep(self):
        """Rows ``T-1 .. 0`` against the stored ``p_t``; stores ``V_t``. Returns the discarded
        weight of the new ``V_t`` and the objective."""
        T = self.mdp.horizon
        prefixes = np.concatenate([[0.0], np.cumsum(self.rows)])
        self.values = [None] * (T + 1)
        discarded, value = 0.0, None
        for t in range(T - 1, -1, -1):
            value = self.update_row(t, self.states[t], self.values[t + 1], prefixes[t])
            self.values[t], dw = self.value_step(t, self.values[t + 1])
            discarded += dw
        return discarded, value

    def forward_sweep(self):
        """Rows ``0 .. T-1`` against the stored ``V_{t+1}``; stores the new ``p_t``."""
        T = self.mdp.horizon
        p = mps_ops.product_mps(self.mdp.initial)
        prefix, discarded, value = 0.0, 0.0, None
        for t in range(T):
            self.states[t] = p
            value = self.update_row(t, p, self.values[t + 1], prefix)
            self.rows[t] = self.weights[t] * row_value(cn.context_marginals(p), self.rbar(t))
            prefix += self.rows[t]
            if t + 1 < T:
                p, dw = cn.applied(cn.transfer_mpo(self.transfer(t)), p, self.max_bond,
                                   self.cutoff)
                discarded += dw
                self.bond = max(self.bond, mps_ops.max_bond_of(p))
        return discarded, value


def solve(mdp, *, max_bond=32, max_sweeps=10, tol=1e-9, initial_policy="uniform",
          temperature=0.0, scope="context", cutoff=1e-14, rng=None, progress=False,
          callback=None):
    """Optimise a local policy by alternating DMRG-style sweeps over the space-time network.

    Parameters
    ----------
    mdp : LatticeMDP
    max_bond : int
        Bond dimension of the boundary MPS ``p_t`` and ``V_t``.
    max_sweeps : int
        Largest number of sweeps (the first backward in time, then alternating).
    tol : float
        Converged when a sweep moves no policy entry by more than ``tol``, or changes the
        objective by at most ``tol * max(1, |objective|)`` against the previous sweep or the
        previous sweep in the same time direction.
    initial_policy : {"uniform", "random"} or array_like
        Uniform (over actions with finite reward), random (drawn with ``rng``) or a local policy.
    temperature : float
        ``tau >= 0``; ``tau > 0`` maximises ``J_tau`` (see the module docstring).
    scope : {"context", "site"}
        What the policy sees: the context ``(x_{i-1}, x_i, x_{i+1})``, or ``x_i`` only.
    cutoff : float
        Singular values below ``cutoff`` times the largest are dropped at each bond (see
        :func:`tnmdp.lattice.mps.compress`), besides the ``max_bond`` limit.
    rng : numpy.random.Generator or int or None
        For ``initial_policy="random"``.
    progress : bool
        Print one line per sweep.
    callback : callable, optional
        ``callback(n_sweeps, objective, policy)`` after every sweep; a true return stops.

    Returns
    -------
    LatticeSolution

    Notes
    -----
    One sweep costs ``T`` MPO applications and compressions (``O(L chi^3 d^5)`` each) and ``T L``
    environment moves (``O(chi^3 d^3)`` each); memory ``O(T L chi^2 d)`` for the stored boundary
    MPS of one direction.
    """
    if not isinstance(mdp, LatticeMDP):
        raise TypeError(f"mdp must be a LatticeMDP, not {type(mdp).__name__}")
    max_bond, cutoff = check_max_bond(max_bond), check_cutoff(cutoff)
    max_sweeps = _check_int("max_sweeps", max_sweeps, 1)
    if isinstance(tol, bool) or not isinstance(tol, numbers.Real) or not tol >= 0:
        raise ValueError(f"tol must be a number >= 0, got {tol!r}")
    if isinstance(temperature, bool) or not isinstance(temperature, numbers.Real) \
            or not 0 <= temperature < np.inf:
        raise ValueError(f"temperature must be a finite number >= 0, got {temperature!r}")
    if scope not in ("context", "site"):
        raise ValueError(f"scope must be 'context' or 'site', got {scope!r}")
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be callable, got {type(callback).__name__}")
    allowed = np.isfinite(mdp.reward)
    if not allowed.any(axis=-1).all():
        idx = tuple(int(j) for j in np.argwhere(~allowed.any(axis=-1))[0])
        raise ValueError(f"reward[{', '.join(map(str, idx))}] is -inf for every action: "
                         "a local policy cannot avoid it")
    pi = _initial_policy(mdp, initial_policy, allowed, rng)
    sweeper = _Sweeper(mdp, np.array(pi), allowed, max_bond, cutoff, float(temperature), scope)
    truncation = sweeper.forward_states()
    sweep_values, sweep_times = [], []
    values = [float(np.sum(sweeper.rows))]
    status = 1
    for sweep in range(max_sweeps):
        start = time.perf_counter()
        before = sweeper.pi.copy()
        if sweep % 2 == 0:
            discarded, value = sweeper.backward_sweep()
        else:
            discarded, value = sweeper.forward_sweep()
        truncation = max(truncation, discarded)
        sweep_times.append(time.perf_counter() - start)
        sweep_values.append(value)
        if progress:
            print(f"sweep {sweep + 1}: objective {value:.10g}, {sweep_times[-1]:.2f} s, "
                  f"max bond {sweeper.bond}")
        if callback is not None and callback(sweep + 1, value, sweeper.pi.copy()):
            status = 2
            break
        scale = tol * max(1.0, abs(value))
        # converged: no local tensor moved (a coordinate-wise optimum), or the objective did not
        # change against the previous sweep or the previous sweep in the same direction (the
        # two directions see differently truncated environments)
        if np.abs(sweeper.pi - before).max() <= tol or abs(value - values[-1]) <= scale or (
                len(values) >= 2 and abs(value - values[-2]) <= scale):
            status = 0
            break
        values.append(value)
    policy = sweeper.pi
    policy.flags.writeable = False
    truncation += sweeper.forward_states()    # the final policy's objective, from p_t only
    objective = float(np.sum(sweeper.rows))
    expected = objective if temperature == 0 else evaluate(
        mdp, policy, max_bond=max_bond, cutoff=cutoff).value
    history, sweep_values, sweep_times = (np.array(sweeper.history), np.array(sweep_values),
                                          np.array(sweep_times))
    for array in (history, sweep_values, sweep_times):
        array.flags.writeable = False
    return LatticeSolution(
        policy=policy, expected_return=expected,
        soft_value=objective if temperature > 0 else None,
        history=history, sweep_values=sweep_values, sweep_times=sweep_times,
        truncation_error=float(truncation),
        environment_error=float(abs(objective - sweep_values[-1])),
        max_bond_used=int(sweeper.bond), n_sweeps=len(sweep_values),
        success=status == 0, status=status, message=STATUS_MESSAGES[status])
