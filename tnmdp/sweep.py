"""DMRG-style sweeps over the policy sites with cached environments.

The expected return is the contraction ``<-r| G M |pi>`` of a chain of sites (Gillman, Rose &
Garrahan 2020, Sect. 4). With every site but ``t`` fixed it is linear in ``pi_t``::

    J = acc_t + gamma^t sum_s left_t[s] sum_a pi_t(a|s) (Q_t(s, a) - tau log(pi_t / pi0_t))

    left_t[s]  = Pr(s_t = s)                                 left environment, shape (S,)
    acc_t      = E[sum_{t' < t} gamma^t' (r_t' - tau KL_t')]  its reward channel, summed over s
    Q_t        = rbar_t + gamma P_t V_{t+1}                    from the right environment V_{t+1}

(The reward channel of the left environment enters only through its sum, ``acc_t``.) A sweep
visits the sites in order, maximises the local problem (:mod:`tnmdp.local`) and moves one site,
updating one environment with one matrix-vector product -- ``O(nnz(P_t))`` -- as quimb's
``MovingEnvironment`` does for DMRG. The environments of the other direction, computed from the
policy before the sweep, are cached (whole, or at ``sqrt(T)`` checkpoints for long horizons;
:mod:`tnmdp.environments`).

A backward sweep is backward induction: exact in one sweep from any initial policy. A forward
sweep optimises each site against the *old* future policy and can stall (the paper's Fig. 2).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import backends
from .environments import Checkpoints, SiteEnvironments, recursion
from .kernels import backup, greedy, log_reference, site_value, soft_backup, weighted_sum
from .local import ArgmaxSolver, SoftmaxSolver

__all__ = ["SweepState", "SweepResult", "sweep", "soft_site"]

STATUS_MESSAGES = {
    0: "converged",
    1: "max_sweeps reached before the objective stopped improving",
    2: "stopped by callback",
}


@dataclass(frozen=True)
class SweepState:
    """What a ``callback`` receives after each site update.

    Attributes
    ----------
    sweep : int
        Sweep number, from 0.
    direction : str
        ``"forward"`` or ``"backward"``.
    site : int
        The time step just updated.
    objective : float
        The objective with the new site in place.
    policy_site : ndarray, shape (S,) of int or (S, A)
        The new site.
    """

    sweep: int
    direction: str
    site: int
    objective: float
    policy_site: np.ndarray


@dataclass(frozen=True)
class SweepResult:
    """Raw output of :func:`sweep` (the front door wraps it in a ``Solution``)."""

    sites: list
    history: object  # ndarray, or a callable computing it (a single closed-form backward sweep)
    n_sweeps: int
    status: int
    right: object  # Checkpoints of V_t after the last backward sweep, or None
    plain_values: np.ndarray | None  # E[G | s_0] after a last backward sweep, else None
    objective: float  # the objective of the returned policy


def sweep(mdp, sites, local, *, direction="backward", temperature=0.0, reference=None,
          max_sweeps=None, tol=1e-12, callback=None, progress=False, backend="auto"):
    """Optimise policy sites by sweeping; see :func:`tnmdp.solve` for the parameters.

    Parameters
    ----------
    sites : list of ndarray
        Initial policy sites (``(S,)`` int or ``(S, A)``); replaced in a copy.

    Returns
    -------
    SweepResult
    """
    T = mdp.horizon
    ops = SiteEnvironments(mdp, temperature, reference)
    sites = list(sites)
    order = {"backward": ["backward"], "forward": ["forward"],
             "both": ["forward", "backward"]}[direction]
    if max_sweeps is None:
        max_sweeps = 1 if direction != "both" else 20
    history, status, right, plain = [], 1, None, None
    bar = _progress_bar(progress, max_sweeps * T)
    last_end = -np.inf
    n_done = 0
    stop = False
    for n_done in range(1, max_sweeps + 1):
        how = order[(n_done - 1) % len(order)]
        if how == "backward" and _fast_path_applies(local, temperature, callback, bar):
            if direction == "backward":  # the only sweep: the history is computed on demand
                initial = list(sites)
                right, plain, v0 = _backward_closed_form_sweep(
                    mdp, sites, None, temperature, reference, backend, keep_sites=False)
                objective = weighted_sum(mdp.initial, v0)
                return SweepResult(sites, _lazy_history(mdp, initial, temperature, reference,
                                                        backend),
                                   1, 0, right, plain, objective)
            right, plain, _ = _backward_closed_form_sweep(mdp, sites, history, temperature,
                                                          reference, backend)
        elif how == "backward":
            right, plain, stop = _backward_sweep(mdp, sites, local, ops, history,
                                                 (n_done - 1, callback, bar))
        else:
            right, plain = None, None
            stop = _forward_sweep(mdp, sites, local, ops, history, (n_done - 1, callback, bar))
        if stop:
            status = 2
            break
        end = history[-1]
        if how == "backward" and local.optimal and direction == "backward":
            status = 0  # a backward sweep with an exact local solver is backward induction
            break
        if n_done > 1 and end - last_end <= tol * max(1.0, abs(end)):
            status = 0
            break
        last_end = end
    if bar is not None:
        bar.close()
    return SweepResult(sites, np.asarray(history), n_done, status, right, plain, history[-1])


def _backward_sweep(mdp, sites, local, ops, history, report):
    """One backward sweep with any local solver; updates ``sites`` and ``history`` in place.

    Returns ``(right, plain_values, stopped)``: the right environments of the new policy, its
    ``E[G | s_0]`` (``None`` if a callback stopped the sweep) and whether one did.
    """
    T, S, temperature = mdp.horizon, mdp.n_states, ops.temperature
    left = recursion(ops.left_step(sites), (mdp.initial, 0.0), T, S * 8, True)
    v = mdp.terminal_rewards
    u = v if temperature > 0 else None  # plain E[G] of a soft policy, in the same pass
    store = Checkpoints(ops.right_step(sites), T, S * 8, False)
    store.record(T, v)
    for t in range(T - 1, -1, -1):
        if u is None:
            q = backup(mdp, t, v)
        else:
            both = backup(mdp, t, np.column_stack([v, u]))
            q, qu = np.ascontiguousarray(both[..., 0]), np.ascontiguousarray(both[..., 1])
        dist, acc = left[t]
        sites[t], v = local.solve_with_value(q, dist, sites[t], ops.log_pi0(t), temperature)
        if u is not None:
            u = site_value(qu, sites[t], 0.0, 0.0)
        store.record(t, v)
        if _record(history, acc, mdp.discount ** t, dist, v, "backward", t, sites[t], report):
            return store, None, True
    return store, (v if u is None else u), False


def _forward_sweep(mdp, sites, local, ops, history, report):
    """One forward sweep; updates ``sites`` and ``history`` in place; True if stopped."""
    T, S = mdp.horizon, mdp.n_states
    right = recursion(ops.right_step(sites), mdp.terminal_rewards, T, S * 8, False)
    left = (mdp.initial, 0.0)
    for t in range(T):
        q = backup(mdp, t, right[t + 1])
        sites[t], v = local.solve_with_value(q, left[0], sites[t], ops.log_pi0(t),
                                             ops.temperature)
        if _record(history, left[1], mdp.discount ** t, left[0], v, "forward", t, sites[t],
                   report):
            return True
        left = ops.advance(t, left, sites[t])
    return False


# Closed-form backward sweeps ----------------------------------------------------------------
# With the closed-form local solvers (argmax; the Boltzmann policy when temperature > 0) a
# backward sweep is (soft) backward induction; it runs on the backend tnmdp.backends.select
# picks: the compiled kernels of tnmdp.backends.numba where they pay off, numpy otherwise.
def _fast_path_applies(local, temperature, callback, bar):
    return type(local) in (ArgmaxSolver, SoftmaxSolver) and callback is None and bar is None


def _backward_closed_form_sweep(mdp, sites, history, temperature, reference, backend,
                                keep_sites=True):
    """One backward sweep with the closed-form local optimum; fills ``sites`` and ``history``.

    With ``history=None`` the left environments of the initial policy -- needed only for the
    objective after each site -- are not computed: plain (soft) backward induction, one pass.

    Returns
    -------
    right : Checkpoints or None
        ``V_t`` of the new policy (soft values when ``temperature > 0``).
    values : ndarray, shape (S,)
        ``E[G | s_0]`` under the new policy.
    objective_values : ndarray, shape (S,)
        ``V_0`` (the soft values when ``temperature > 0``).
    """
    T, S = mdp.horizon, mdp.n_states
    fast = backends.compiled(mdp, backend)
    if temperature == 0 and fast is not None:
        actions, values, objectives = fast.backward_argmax_sweep(
            mdp, sites, with_history=history is not None)
        sites[:] = list(actions)  # (S,) small-int views of one (T, S) array
        if history is not None:
            history.extend(objectives.tolist())
        return None, values, values
    ops = SiteEnvironments(mdp, temperature, reference)
    if history is not None:
        left = recursion(ops.left_step(sites), (mdp.initial, 0.0), T, S * 8, True)
    if fast is not None:  # compiled soft backward induction (the left environments stay numpy)
        store, u, objectives = fast.backward_soft_sweep(
            mdp, temperature, reference, left=left if history is not None else None)
        if keep_sites:  # a sweep of several: the next one starts from these sites
            backups = fast.SoftBackup(mdp, temperature, reference)
            sites[:] = [backups.site(t, store[t + 1]) for t in range(T)]
        else:  # a last backward sweep keeps no dense site: SoftPolicy recomputes it on demand
            sites[:] = [None] * T
        if history is not None:
            history.extend(objectives.tolist())
        return store, u, store[0]
    if temperature == 0:
        step = ops.right_step(sites)
    else:  # soft values from soft values: the closure must not hold the dense sites
        def step(t, v):
            return soft_backup(backup(mdp, t, v), ops.log_pi0(t), temperature)[1]
    store = Checkpoints(step, T, S * 8, False)
    v = u = mdp.terminal_rewards
    store.record(T, v)
    objectives = np.empty(T)
    for t in range(T - 1, -1, -1):
        if temperature == 0:
            sites[t], v = greedy(backup(mdp, t, v))
            u = v
        else:
            both = backup(mdp, t, np.column_stack([v, u]))
            q, qu = np.ascontiguousarray(both[..., 0]), np.ascontiguousarray(both[..., 1])
            log_pi, v = soft_backup(q, ops.log_pi0(t), temperature)
            probs = np.exp(log_pi)
            u = site_value(qu, probs, 0.0, 0.0)  # plain E[G] of the soft policy, same pass
            # a last backward sweep keeps no dense site: SoftPolicy recomputes it on demand
            sites[t] = probs if keep_sites else None
        store.record(t, v)
        if history is not None:
            dist, acc = left[t]
            objectives[T - 1 - t] = acc + mdp.discount ** t * weighted_sum(dist, v)
    if history is not None:
        history.extend(objectives.tolist())
    return store, u, v


def _lazy_history(mdp, initial, temperature, reference, backend):
    """The history of a closed-form backward sweep from ``initial``, computed when called.

    Re-runs the sweep with the left environments of the initial policy (one backward and one
    forward pass); the result is identical to recording it during the first sweep.
    """
    def compute():
        history = []
        _backward_closed_form_sweep(mdp, list(initial), history, temperature, reference,
                                    backend, keep_sites=False)
        return np.asarray(history)

    return compute


def soft_site(mdp, temperature, reference, backend="auto"):
    """The site computation of a soft policy: ``site(t, V_{t+1}) -> pi_t`` (shape ``(S, A)``).

    On the backend :func:`tnmdp.backends.select` picks: a compiled
    :class:`tnmdp.backends.numba.SoftBackup` or the numpy kernels, ``O(nnz(P_t) + S A)``.
    """
    fast = backends.compiled(mdp, backend)
    if fast is not None:
        return fast.SoftBackup(mdp, temperature, reference).site

    def site(t, v_next):
        q = backup(mdp, t, v_next)
        return np.exp(soft_backup(q, log_reference(reference, t, q.shape), temperature)[0])

    return site


def _record(history, acc, discount, dist, v, how, t, site, report):
    """Append the objective after updating site ``t``; True if the callback asks to stop."""
    sweep_no, callback, bar = report
    obj = acc + discount * weighted_sum(dist, v)
    history.append(obj)
    if bar is not None:
        bar.update(1)
    if callback is not None:
        return bool(callback(SweepState(sweep_no, how, t, obj, site)))
    return False


def _progress_bar(progress, total):
    if not progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="sites", unit="site")
