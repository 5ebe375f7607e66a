"""Tilted networks: partition functions, event probabilities and Doob-conditioned processes.

Replacing the return MPO by a product of diagonal weights ``exp(gamma^t r_t / tau)`` (bond
dimension 1) turns the network of :mod:`tnmdp.network` into the partition function::

    Z = E_pi0[exp(G / tau)] = <-r| W M |pi0>

        p0 ─s0─ K_0 ──s1── K_1 ──s2── ... ── K_{T-1} ──sT── exp(gamma^T terminal / tau)
    K_t[s, s'] = sum_a pi0_t(a|s) P_t(s'|s,a) E[exp(gamma^t r_t / tau) | s, a, s']

With rewards 0 on allowed and ``-inf`` on forbidden moves, ``Z`` is the probability of the
conditioning event (no forbidden move) under ``pi0``, whatever ``tau``. Its right environments
are the Doob ``h``-functions ``h_t(s) = E_pi0[exp(G_{t:} / tau) | s_t = s]``; the Doob transform::

    P^h_t(s'|s) = K_t[s, s'] h_{t+1}(s') / h_t(s)

is the reference process tilted by (for 0/``-inf`` rewards: conditioned on) the return: a Markov
chain with time-dependent kernels, returned as a one-action :class:`~tnmdp.FiniteMDP` (Majumdar &
Orland 2015; Garrahan 2016; Gillman, Rose & Garrahan 2020, Sect. 5).

Everything is contracted right to left in log space: each site is a sparse ``(S*A, S)`` matrix of
*log* weights and a step is a sparse log-sum-exp, ``O(nnz(P_t))``, so horizons of ``10^4`` and
more neither underflow nor produce ``nan`` (``0 * -inf`` is ``0`` where a transition has
probability zero), and no state's ``h`` is lost however small it is relative to the others.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from .kernels import log_reference
from .model import FiniteMDP
from .policy import as_policy

__all__ = ["log_partition", "log_h_functions", "doob_transform", "event_probability"]


# ---------------------------------------------------------------------------- tilted sites
class _TiltedSites:
    """The sites ``log(pi0 P E[w(r)])`` of one tilted network, cached per distinct site.

    Parameters
    ----------
    mdp : FiniteMDP
    temperature : float or None
        ``tau > 0``: weights ``w_t(r) = exp(gamma^t r / tau)``. ``None``: the event indicator
        ``w(r) = 1{r > -inf}``.
    reference : Policy or None
        ``pi0``; ``None`` is uniform.
    """

    def __init__(self, mdp, temperature, reference):
        self.mdp, self.temperature, self.reference = mdp, temperature, reference
        self._cache = {}

    def _scale(self, t):
        """``gamma^t / tau`` (0 for the event indicator)."""
        if self.temperature is None:
            return 0.0
        return self.mdp.discount ** t / self.temperature

    def _key(self, t):
        """A key equal for sites with the same weights, and the reference site it depends on.

        The cache entry holds that site, so its ``id`` cannot be reused while it is cached.
        """
        mdp = self.mdp
        site, ref = None, None
        if self.reference is not None:
            site = self.reference.site(t)
            ref = id(site) if site.ndim == 2 else t  # int sites are views: key them by time
        reward_t = t if mdp.rewards.shape[0] > 1 else -1
        scale = self._scale(t) if mdp.discount != 1.0 else None
        return (id(mdp.transition_matrix(t)), reward_t, ref, scale), site

    def log_site(self, t):
        """Site ``t``'s log weights ``log(pi0_t(a|s) P_t(s'|s,a) E[w(r_t)])`` by state.

        Returns ``(cols, log_w)`` of shape ``(k, S)``: the next states and log weights of the
        (at most ``k``) entries of each state's ``A`` rows, padded with column 0 and weight
        ``-inf`` ("ELL" layout: reductions over a state are column loops, fast for the few
        entries per state of a sparse walk; ``k = A S`` for a dense MDP).
        """
        key, ref_site = self._key(t)
        hit = self._cache.get(key)
        if hit is not None:
            return hit[1]
        mdp = self.mdp
        S, A = mdp.n_states, mdp.n_actions
        scale = self._scale(t)
        if self.temperature is None:
            shift = 0.0
            weights = mdp.weighted_transitions(t, lambda r: np.isfinite(r).astype(np.float64))
        else:
            shift = _finite_max(mdp, t)
            weights = mdp.weighted_transitions(
                t, lambda r: np.where(np.isneginf(r), 0.0, np.exp(scale * (r - shift))))
        weights = sp.csr_array(weights)  # dense models too
        weights.eliminate_zeros()
        rows = np.repeat(np.arange(S * A), np.diff(weights.indptr))
        log_pi0 = np.broadcast_to(log_reference(self.reference, t, (S, A)), (S, A)).reshape(-1)
        with np.errstate(divide="ignore"):
            log_w = np.log(weights.data) + scale * shift + log_pi0[rows]
        entry = _ell(weights.indptr[::A], weights.indices, log_w)
        if len(self._cache) > 8:
            self._cache.clear()
        self._cache[key] = (ref_site, entry)
        return entry

    def reference_kernel(self, t):
        """``K0[s, s'] = sum_a pi0(a|s) P_t(s'|s,a)`` as COO arrays ``(rows, cols, data)``."""
        key, ref_site = self._key(t)
        key = ("reference",) + key
        hit = self._cache.get(key)
        if hit is not None:
            return hit[1]
        mdp = self.mdp
        S, A = mdp.n_states, mdp.n_actions
        pi0 = np.exp(np.broadcast_to(log_reference(self.reference, t, (S, A)), (S, A)))
        mix = sp.kron(sp.identity(S, format="csr"), np.ones((1, A)), format="csr") @ sp.diags(
            pi0.reshape(-1))
        kernel = sp.coo_matrix(mix @ mdp.transition_matrix(t))
        entry = (kernel.row, kernel.col, kernel.data)
        self._cache[key] = (ref_site, entry)
        return entry

    def log_terminal(self):
        """``log exp(gamma^T terminal / tau)``, or the terminal event indicator, shape (S,)."""
        term = self.mdp.terminal_rewards
        if self.temperature is None:
            return np.where(np.isfinite(term), 0.0, -np.inf)
        return np.where(np.isneginf(term), -np.inf, self._scale(self.mdp.horizon) * term)


def _finite_max(mdp, t):
    """The largest finite reward value at site ``t`` (0 if none): the scale taken out of
    ``exp`` so that no weight overflows."""
    law = mdp.reward_power_law(t)
    values = law[1] if law is not None else mdp.reward_slice(t)
    finite = values[np.isfinite(values)]
    return float(finite.max()) if finite.size else 0.0


def _ell(bounds, cols, log_w):
    """Pack CSR entries grouped by state (``bounds``, length ``S + 1``) into ``(k, S)`` slots."""
    counts = np.diff(bounds)
    n_states, width = counts.size, max(int(counts.max(initial=0)), 1)
    slot = np.arange(cols.size) - np.repeat(bounds[:-1], counts)
    state = np.repeat(np.arange(n_states), counts)
    out_cols = np.zeros((width, n_states), dtype=cols.dtype)
    out_w = np.full((width, n_states), -np.inf)
    out_cols[slot, state], out_w[slot, state] = cols, log_w
    return out_cols, out_w


def _log_step(site, log_h_next):
    """One tilted site: ``log h_t[s] = logsumexp_{a, s'} (log_w + log h_{t+1}[s'])``.

    Returns ``(log_h_t, entries)``, ``entries`` the per-slot exponents, shape ``(k, S)``.
    ``np.logaddexp`` over the ``k`` slots: exact for ``-inf`` and accurate to a few ulp.
    """
    cols, log_w = site
    entries = log_w + log_h_next[cols]
    log_h = entries[0].copy()
    for row in entries[1:]:
        np.logaddexp(log_h, row, out=log_h)
    return log_h, entries


def _backward(tilt):
    """Yield ``(t, log h_t, entries_t)`` for ``t = T..0`` (``entries`` is None at ``T``)."""
    log_h = tilt.log_terminal()
    yield tilt.mdp.horizon, log_h, None
    for t in range(tilt.mdp.horizon - 1, -1, -1):
        log_h, entries = _log_step(tilt.log_site(t), log_h)
        yield t, log_h, entries


def _check_tilt(mdp, temperature, reference_policy):
    from .solve import check_mdp, check_reference, check_temperature

    check_mdp(mdp)
    temperature = check_temperature(temperature)
    if temperature == 0:
        raise ValueError("temperature must be > 0 for a tilted network, got 0")
    return _TiltedSites(mdp, temperature, check_reference(reference_policy, mdp))


def _log_initial_sum(mdp, log_h0):
    """``log sum_s initial[s] h_0[s]`` (``-inf`` when the event is impossible)."""
    support = mdp.initial > 0
    vals = np.log(mdp.initial[support]) + log_h0[support]
    if not np.isfinite(vals).any():
        return -np.inf
    top = vals[np.isfinite(vals)].max()
    return float(top + np.log(np.exp(vals - top).sum()))


# ---------------------------------------------------------------------------- public
def log_h_functions(mdp, *, temperature=1.0, reference_policy=None):
    """Log Doob functions ``log h_t(s) = log E_pi0[exp(G_{t:} / tau) | s_t = s]``.

    Parameters
    ----------
    mdp : FiniteMDP
    temperature : float
        ``tau > 0``.
    reference_policy : Policy or array_like (T, S, A), optional
        ``pi0``; uniform by default.

    Returns
    -------
    ndarray, shape (T+1, S)
        Row ``t`` is ``log h_t``, ``-inf`` where ``h_t = 0``; ``G_{t:}`` is the (discounted)
        return from ``t`` on, ``sum_{t' >= t} gamma^t' r_t' + gamma^T terminal``.

    Notes
    -----
    Cost ``O(sum_t nnz(P_t))`` time and ``O(T S)`` memory (the output).
    """
    tilt = _check_tilt(mdp, temperature, reference_policy)
    out = np.empty((mdp.horizon + 1, mdp.n_states))
    for t, log_h, _ in _backward(tilt):
        out[t] = log_h
    return out


def log_partition(mdp, *, temperature=1.0, reference_policy=None):
    """``log E_pi0[exp(G / tau)]`` by contracting the tilted network.

    Parameters
    ----------
    mdp : FiniteMDP
        Any dynamics (noisy included), rewards with ``-inf`` entries, stochastic rewards
        (:meth:`FiniteMDP.from_joint`: the weight is ``E[exp(r / tau) | s, a, s']``).
    temperature : float
        ``tau > 0``.
    reference_policy : Policy or array_like (T, S, A), optional
        ``pi0``; uniform by default.

    Returns
    -------
    float
        With 0/``-inf`` rewards: the log probability of the conditioning event under ``pi0``
        (``-inf`` if it is impossible), whatever ``tau``.

    Notes
    -----
    With deterministic transitions from one initial state and ``discount = 1``,
    ``temperature * log_partition`` equals the optimal soft value of
    :func:`tnmdp.solve` at the same temperature and reference; with noisy transitions it is an
    upper bound (the policy cannot reshape the noise). Cost ``O(sum_t nnz(P_t))`` time,
    ``O(S + nnz)`` memory.

    Examples
    --------
    >>> import math, tnmdp
    >>> logz = tnmdp.log_partition(tnmdp.models.excursion(10, hard=True))
    >>> round(math.exp(logz) * 2**10)  # the Catalan number C_5
    42
    """
    tilt = _check_tilt(mdp, temperature, reference_policy)
    for _, log_h, _ in _backward(tilt):
        pass
    return _log_initial_sum(mdp, log_h)


def event_probability(mdp, policy, *, log=False):
    """Probability that an episode under ``policy`` takes no forbidden (``-inf``) transition.

    Parameters
    ----------
    mdp : FiniteMDP
        Finite rewards are ignored; a ``-inf`` reward (or terminal reward) marks the
        transitions (end states) outside the conditioning event.
    policy : Policy or array_like, shape (T, S, A)
    log : bool
        Return the natural log of the probability (for rare events below ``1e-308``).

    Returns
    -------
    float

    Notes
    -----
    The tilted network with the indicator weights ``1{r > -inf}`` and ``policy`` as the
    reference: ``O(sum_t nnz(P_t))``.

    Examples
    --------
    >>> import numpy as np, tnmdp
    >>> mdp = tnmdp.models.bridge(4, hard=True)
    >>> round(tnmdp.tilted.event_probability(mdp, np.full((4, 9, 2), 0.5)), 12)  # C(4,2)/2^4
    0.375
    """
    from .solve import check_mdp

    check_mdp(mdp)
    policy = as_policy(policy, mdp)
    tilt = _TiltedSites(mdp, None, policy)
    for _, log_h, _ in _backward(tilt):
        pass
    value = _log_initial_sum(mdp, log_h)
    return value if log else float(np.exp(value))


def doob_transform(mdp, *, temperature=1.0, reference_policy=None):
    """The reference process tilted by (conditioned on) the return: a one-action MDP.

    Parameters
    ----------
    mdp : FiniteMDP
    temperature : float
        ``tau > 0``.
    reference_policy : Policy or array_like (T, S, A), optional
        ``pi0``; uniform by default.

    Returns
    -------
    FiniteMDP
        ``n_actions == 1``; a path ``s_0..s_T`` has probability
        ``Pr_pi0(s_0..s_T) E[exp(G / tau) | s_0..s_T] / Z`` -- for 0/``-inf`` rewards, the law of
        the reference paths conditioned on the event. Time-dependent transitions ``P^h_t``
        (a length-``T`` list of CSR ``(S, S)`` matrices); initial distribution
        ``∝ initial(s) h_0(s)``; rewards: the MDP's own when they depend on neither the action
        nor a stochastic reward law, otherwise dense ``(T, S, 1, S)`` conditional means under
        the tilted law; the same terminal rewards and discount. States with ``h_t = 0`` are
        never visited; they keep the reference dynamics.

    Raises
    ------
    ValueError
        If ``Z = 0``: the event is impossible and there is no conditioned process.

    Notes
    -----
    ``O(sum_t nnz(P_t))`` time and memory: one ``(S, S)`` operator per time step is stored
    (about ``12 nnz`` bytes each), so for the walks keep ``T * S`` below ~``10^8``. Use it with a
    one-action policy, stored once: ``policy = tnmdp.Policy.uniform(T, S, 1)``, then
    ``tnmdp.sample(doob, policy, n)``, ``tnmdp.marginals(doob, policy)``,
    ``tnmdp.evaluate(doob, policy)``.

    Examples
    --------
    >>> import tnmdp
    >>> mdp = tnmdp.models.excursion(6, hard=True)
    >>> doob = tnmdp.doob_transform(mdp)
    >>> paths = tnmdp.sample(doob, tnmdp.Policy.uniform(6, doob.n_states, 1), 5, rng=0)
    >>> bool((paths.states >= 6).all() and (paths.states[:, -1] == 6).all())
    True
    """
    tilt = _check_tilt(mdp, temperature, reference_policy)
    T = mdp.horizon
    ops = [None] * T
    log_h_next = None
    for t, log_h, entries in _backward(tilt):
        if entries is not None:
            ops[t] = _doob_kernel(tilt, t, entries, log_h)
        log_h_next = log_h
    log_h0 = log_h_next
    if not np.isfinite(_log_initial_sum(mdp, log_h0)):
        raise ValueError("the conditioning event has probability zero under the reference "
                         "policy (log_partition = -inf): there is no conditioned process")
    support = (mdp.initial > 0) & np.isfinite(log_h0)
    log_w0 = np.where(support, np.log(np.where(support, mdp.initial, 1.0)) + log_h0, -np.inf)
    w0 = np.exp(log_w0 - log_w0[support].max())
    rewards = _doob_rewards(tilt)
    return FiniteMDP(ops, rewards, T, w0 / w0.sum(), mdp.terminal_rewards,
                     discount=mdp.discount, atol=1e-8)


def _doob_kernel(tilt, t, entries, log_h_now):
    """``P^h_t`` as a CSR ``(S, S)``: entries normalised per state; dead states (``h_t = 0``)
    get the reference kernel ``sum_a pi0 P_t``."""
    mdp = tilt.mdp
    S = mdp.n_states
    cols, _ = tilt.log_site(t)
    alive = np.isfinite(log_h_now)
    # exp(entries - log h_t): the normaliser is the log-sum-exp of the same entries, so each
    # live row sums to 1 up to rounding
    with np.errstate(invalid="ignore"):
        probs = np.exp(entries - np.where(alive, log_h_now, 0.0)[None, :])
    keep = alive[None, :] & (probs > 0)
    states = np.broadcast_to(np.arange(S)[None, :], cols.shape)
    data, r_idx, c_idx = [probs[keep]], [states[keep]], [cols[keep]]
    if not alive.all():
        base_rows, base_cols, base_data = tilt.reference_kernel(t)
        dead = ~alive[base_rows]
        data.append(base_data[dead])
        r_idx.append(base_rows[dead])
        c_idx.append(base_cols[dead])
    kernel = sp.csr_array((np.concatenate(data), (np.concatenate(r_idx), np.concatenate(c_idx))),
                           shape=(S, S))
    kernel.sum_duplicates()
    sums = np.asarray(kernel.sum(axis=1)).ravel()
    kernel.data /= np.repeat(sums, np.diff(kernel.indptr))  # rounding only: rows are stochastic
    return kernel


def _doob_rewards(tilt):
    """Rewards of the one-action conditioned MDP: the conditional mean of ``r_t`` given
    ``(s_t, s_{t+1})`` under the tilted law."""
    mdp = tilt.mdp
    r = mdp.rewards
    if r.shape[2] == 1 and mdp.reward_power_law(0) is None:
        return r  # no action dependence and deterministic rewards: the MDP's own
    from .reference import dense_model

    T, S, A = mdp.horizon, mdp.n_states, mdp.n_actions
    if T * S * S > 5e7:
        raise ValueError("doob_transform of a model with action-dependent or stochastic rewards "
                         f"builds dense (T, S, 1, S) rewards; T*S*S = {T * S * S:.3g} exceeds 5e7")
    out = np.zeros((T, S, 1, S))
    for t in range(T):
        P, R = dense_model(mdp, t)
        scale, shift = tilt._scale(t), _finite_max(mdp, t)
        law = mdp.reward_power_law(t)
        if law is None:
            tilt_w = np.where(np.isneginf(R), 0.0, np.exp(scale * (R - shift)))
            mean = np.where(np.isneginf(R), 0.0, R)
        else:  # the tilted reward law: weights law_k exp(scale (v_k - shift))
            dist, values = law
            e = dist * np.exp(scale * (values - shift))
            tilt_w = e.sum(axis=-1)
            mean = np.where(tilt_w > 0, (e @ values) / np.where(tilt_w > 0, tilt_w, 1.0), 0.0)
        pi0 = np.exp(np.broadcast_to(log_reference(tilt.reference, t, (S, A)), (S, A)))
        w = pi0[:, :, None] * P * tilt_w
        total = w.sum(axis=1)
        out[t, :, 0, :] = np.where(total > 0, (w * mean).sum(axis=1) / np.where(
            total > 0, total, 1.0), 0.0)
    return out
