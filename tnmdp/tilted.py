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

One backward recursion (:class:`TiltedSites`) serves :func:`log_partition`,
:func:`log_h_functions`, :func:`event_probability` and :func:`doob_transform`. It runs in log
space **per state and per row**::

    log h_t(s) = logsumexp_a [ c_t(s, a) + y_t(s, a) ]
    y_t(s, a)  = m + log sum_s' P_t(s'|s, a) exp(e_t(s, a, s') + log h_{t+1}(s') - m)

where ``c_t(s, a) = log pi0 + gamma^t r(s, a) / tau`` collects what depends on the row only,
``e_t`` what depends on the entry, and ``m`` is the row's own largest exponent. So no term that
matters underflows however far rewards spread (rewards of order ``10^3`` at ``tau = 10^-3``
included), horizons of ``10^4`` and more stay finite, and a ``-inf`` reward or ``h = 0`` is an
exact ``-inf`` exponent, never ``nan``. Three layouts, chosen per site from the reward's
dependence (:meth:`FiniteMDP.reward_kind`):

* rewards on ``(s, a)`` or on arrival ``s'`` only: ``e`` is a vector over ``s'`` added to
  ``log h_{t+1}``. A **dense** site takes one BLAS matrix-vector product with the single shift
  ``m = max_s' (e + log h_{t+1})``; the rows whose product falls below ``1e-250`` (where that
  shift may have lost them) are recomputed with their own maximum. A **sparse** site takes the
  per-row maxima directly;
* rewards on ``(s, a, s')`` or a stochastic reward law: ``e`` is stored per CSR entry
  (``log E[exp(gamma^t r / tau) | s, a, s']``, a log-sum-exp over the reward alphabet).

Notes
-----
Cost per site ``O(nnz(P_t))`` (dense: one ``(S A, S)`` matrix-vector product), memory
``O(nnz(P_t))`` for per-entry exponents when rewards depend on ``(s, a, s')`` and ``O(S A)``
otherwise; distinct sites (a stationary model) are prepared once per call.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from . import backends
from ._validate import check_mdp, check_policy, check_reference, check_temperature
from .kernels import log_reference
from .model import FiniteMDP

__all__ = ["log_partition", "log_h_functions", "doob_transform", "event_probability",
           "TiltedSites"]

#: Dense rows whose globally shifted product is below this are recomputed with their own shift.
_RESCUE = 1e-250

_NO_ENTRIES = np.empty(0)

#: Sparse sites with at most this many stored entries per state step by vectorised
#: ``logaddexp`` over slots (SIMD ``exp``/``log``); wider ones by a per-row pass.
ELL_WIDTH = 32


def _log_sum_rows(log_terms, axis=-1):
    """``log sum exp`` along ``axis``, exact for ``-inf`` entries (an all ``-inf`` slice gives
    ``-inf``, never ``nan``)."""
    top = np.max(log_terms, axis=axis, keepdims=True)
    safe = np.where(np.isfinite(top), top, 0.0)
    with np.errstate(divide="ignore"):
        out = np.log(np.sum(np.exp(log_terms - safe), axis=axis, keepdims=True)) + safe
    out = np.where(np.isneginf(top), -np.inf, out)
    return np.squeeze(out, axis=axis)


def _row_of_entries(indptr):
    return np.repeat(np.arange(indptr.size - 1), np.diff(indptr))


def _segment_max(values, indptr):
    """Maximum of ``values`` over each CSR row (``-inf`` for an empty row)."""
    n_rows = indptr.size - 1
    out = np.full(n_rows, -np.inf)
    nonempty = np.diff(indptr) > 0
    if values.size:
        out[nonempty] = np.maximum.reduceat(values, indptr[:-1][nonempty])
    return out


def _segment_sum(values, indptr):
    n_rows = indptr.size - 1
    out = np.zeros(n_rows)
    nonempty = np.diff(indptr) > 0
    if values.size:
        out[nonempty] = np.add.reduceat(values, indptr[:-1][nonempty])
    return out


class _Site:
    """One prepared tilted site.

    Attributes
    ----------
    P : csr_array or ndarray, shape (S*A, S)
        The transition operator as stored by the model (dense sites with per-entry exponents
        are converted to CSR).
    row_log : ndarray, shape (S*A,)
        ``c[s*A + a] = log pi0(a|s) + gamma^t r(s, a) / tau`` (0 for the reward part when the
        reward depends on ``s'``); ``-inf`` for a forbidden row.
    col_log : ndarray, shape (S,) or None
        Arrival exponents ``gamma^t r(s') / tau``.
    entry_log : ndarray, shape (nnz,) or None
        Per-entry exponents ``log E[w(r) | s, a, s']`` aligned with ``P.data``.
    row_log_reference : ndarray, shape (S*A,)
        ``log pi0(a|s)`` alone (the kernel of states that the tilt leaves dead).
    kernels : module or None
        :mod:`tnmdp.backends.numba.tilted` for CSR sites on the compiled backend.
    """

    __slots__ = ("P", "row_log", "col_log", "entry_log", "n_actions", "row_log_reference",
                 "kernels", "_log_data", "_ell")

    def __init__(self, P, row_log, col_log, entry_log, n_actions, row_log_reference, kernels):
        self.P, self.row_log, self.col_log = P, row_log, col_log
        self.entry_log, self.n_actions = entry_log, n_actions
        self.row_log_reference = row_log_reference
        self.kernels = kernels if sp.issparse(P) else None
        self._log_data = None
        self._ell = False

    @property
    def log_data(self):
        """``log`` of the stored entries of ``P`` (CSR sites), computed once."""
        if self._log_data is None:
            with np.errstate(divide="ignore"):
                self._log_data = np.log(self.P.data)
        return self._log_data

    @property
    def compiled(self):
        """True when the compiled CSR loops run this site."""
        return self.kernels is not None

    def _entry_log_or_empty(self):
        return _NO_ENTRIES if self.entry_log is None else self.entry_log

    def exponents(self, log_h_next):
        """``x[s'] = log h_{t+1}(s') (+ arrival exponent)``, shape (S,)."""
        return log_h_next if self.col_log is None else log_h_next + self.col_log

    def log_rows(self, log_h_next):
        """``y[s*A + a] = log sum_s' P(s'|s,a) exp(e + log h_{t+1}(s'))``, shape (S*A,)."""
        x = self.exponents(log_h_next)
        P = self.P
        if sp.issparse(P):
            e = x[P.indices] if self.entry_log is None else x[P.indices] + self.entry_log
            top = _segment_max(e, P.indptr)
            safe = np.where(np.isfinite(top), top, 0.0)
            rows = _row_of_entries(P.indptr)
            total = _segment_sum(P.data * np.exp(e - safe[rows]), P.indptr)
            with np.errstate(divide="ignore"):
                return np.where(np.isneginf(top), -np.inf, np.log(total) + safe)
        finite = np.isfinite(x)
        if not finite.any():
            return np.full(P.shape[0], -np.inf)
        shift = x[finite].max()
        total = P @ np.exp(x - shift)
        with np.errstate(divide="ignore"):
            out = np.log(total) + shift
        lost = np.flatnonzero(total < _RESCUE)
        if lost.size:  # exact per-row shift where the global one may have underflowed
            sub = P[lost]
            with np.errstate(divide="ignore"):
                e = np.where(sub > 0, x[None, :], -np.inf)
            top = e.max(axis=1)
            safe = np.where(np.isfinite(top), top, 0.0)
            with np.errstate(divide="ignore", invalid="ignore"):
                part = np.where(sub > 0, sub * np.exp(e - safe[:, None]), 0.0).sum(axis=1)
                out[lost] = np.where(np.isneginf(top), -np.inf, np.log(part) + safe)
        return out

    @property
    def ell(self):
        """CSR sites with at most :data:`ELL_WIDTH` entries per state: ``(cols, log_w)`` of shape
        ``(k, S)``, slot ``j`` of state ``s`` holding one entry ``(s', log pi0 + log P + e)``
        (padding: column 0, ``-inf``), so that a step is ``k`` vectorised ``logaddexp``'s.
        ``None`` for wider or dense sites."""
        if self._ell is False:
            self._ell = None
            P, A = self.P, self.n_actions
            if sp.issparse(P):
                bounds = P.indptr[::A]
                counts = np.diff(bounds)
                width = int(counts.max(initial=0))
                if width <= ELL_WIDTH:
                    rows = _row_of_entries(P.indptr)
                    log_w = self.log_data + self.row_log[rows]
                    if self.entry_log is not None:
                        log_w = log_w + self.entry_log
                    n_states = counts.size
                    slot = np.arange(P.nnz) - np.repeat(bounds[:-1], counts)
                    state = np.repeat(np.arange(n_states), counts)
                    cols = np.zeros((max(width, 1), n_states), dtype=P.indices.dtype)
                    packed = np.full((max(width, 1), n_states), -np.inf)
                    cols[slot, state], packed[slot, state] = P.indices, log_w
                    self._ell = (cols, packed)
        return self._ell

    def step(self, log_h_next):
        """``log h_t`` from ``log h_{t+1}``, shape (S,)."""
        ell = self.ell
        if ell is not None:
            cols, log_w = ell
            x = self.exponents(log_h_next)
            out = log_w[0] + x[cols[0]]
            for j in range(1, cols.shape[0]):
                np.logaddexp(out, log_w[j] + x[cols[j]], out=out)
            return out
        if self.compiled:
            P = self.P
            out = np.empty(P.shape[1])
            self.kernels.log_step(P.indptr, P.indices, self.log_data, self._entry_log_or_empty(),
                                  self.exponents(log_h_next), self.row_log, self.n_actions, out)
            return out
        z = (self.row_log + self.log_rows(log_h_next)).reshape(-1, self.n_actions)
        return _log_sum_rows(z, axis=1)

    def doob_kernel(self, log_h_next, log_h_now):
        """Compiled: the conditioned kernel ``P^h_t`` as a CSR ``(S, S)`` (see
        :func:`tnmdp.backends.numba.tilted.doob_step`)."""
        P, S = self.P, self.P.shape[1]
        indptr = np.zeros(S + 1, dtype=np.int64)
        indices = np.empty(P.nnz, dtype=P.indices.dtype)
        data = np.empty(P.nnz)
        n = self.kernels.doob_step(P.indptr, P.indices, self.log_data, self._entry_log_or_empty(),
                                   self.exponents(log_h_next), self.row_log,
                                   self.row_log_reference, log_h_now, self.n_actions, indptr,
                                   indices, data, np.full(S, -1, dtype=np.int64),
                                   np.zeros(S, dtype=np.int64))
        return sp.csr_array((data[:n].copy(), indices[:n].copy(), indptr), shape=(S, S))

    def doob_weights(self, log_h_next, log_h_now):
        """Entries ``P(s'|s,a) pi0(a|s) E[w] h_{t+1}(s') / h_t(s)`` of the conditioned kernel
        before the sum over actions, in the layout of ``P`` (CSR data, or a dense
        ``(S*A, S)`` array); states with ``h_t(s) = 0`` get the reference weights
        ``pi0(a|s) P(s'|s,a)`` instead (they are never visited)."""
        A, P = self.n_actions, self.P
        x = self.exponents(log_h_next)
        alive = np.isfinite(log_h_now)
        norm = np.repeat(np.where(alive, log_h_now, 0.0), A)
        if sp.issparse(P):
            rows = _row_of_entries(P.indptr)
            e = (self.row_log - norm)[rows] + x[P.indices]
            if self.entry_log is not None:
                e = e + self.entry_log
            e = np.where(np.repeat(alive, A)[rows], e, self.row_log_reference[rows])
            with np.errstate(invalid="ignore"):
                return np.where(np.isneginf(e), 0.0, P.data * np.exp(e))
        # factorised: exp(row + x) = exp(row + shift) exp(x - shift), both factors bounded, except
        # in rows whose mass lies more than 300 e-folds below the shift: those go entry by entry
        live = np.repeat(alive, A)
        finite = np.isfinite(x)
        shift = x[finite].max() if finite.any() else 0.0
        row = np.where(live, self.row_log - norm + shift, self.row_log_reference)
        col = np.exp(x - shift)
        far = np.flatnonzero(live & (row > 300.0))
        row[far] = -np.inf
        with np.errstate(under="ignore"):
            out = P * col[None, :]
            out[~live] = P[~live]
            out *= np.exp(row)[:, None]
        if far.size:
            e = np.where(P[far] > 0, (self.row_log - norm)[far][:, None] + x[None, :], -np.inf)
            out[far] = P[far] * np.exp(e)
        return out


class TiltedSites:
    """The sites of one tilted network, prepared once per distinct site.

    Parameters
    ----------
    mdp : FiniteMDP
    temperature : float or None
        ``tau > 0``: weights ``w_t(r) = exp(gamma^t r / tau)``. ``None``: the event indicator
        ``w(r) = 1{r > -inf}``.
    log_reference : callable
        ``log_reference(t)`` -> ``log pi0_t`` broadcasting to ``(S, A)`` (``-inf`` where 0).
    reference_key : callable
        ``reference_key(t)`` -> ``(key, owner)``: a hashable equal for time steps with the same
        reference site, and the object the key identifies (kept alive with the cached site, so
        that an ``id`` in the key cannot be reused while it is cached).
    """

    def __init__(self, mdp, temperature, log_reference, reference_key, kernels=None):
        self.mdp, self.temperature = mdp, temperature
        self._log_reference, self._reference_key = log_reference, reference_key
        self._kernels = kernels
        self._sites = {}

    def scale(self, t):
        """``gamma^t / tau`` (0 for the event indicator)."""
        if self.temperature is None:
            return 0.0
        return self.mdp.discount ** t / self.temperature

    def _weight_exponent(self, r, t):
        """``log w_t(r)``: ``-inf`` for ``r = -inf``, else ``gamma^t r / tau``."""
        with np.errstate(invalid="ignore"):
            return np.where(np.isneginf(r), -np.inf, self.scale(t) * np.where(np.isneginf(r), 0, r))

    def _key(self, t):
        mdp = self.mdp
        reward_t = t if mdp.rewards.shape[0] > 1 else -1
        scale = self.scale(t) if mdp.discount != 1.0 else None
        ref_key, owner = self._reference_key(t)
        return (id(mdp.transition_matrix(t)), reward_t, ref_key, scale), owner

    def site(self, t):
        """The prepared site ``t`` (:class:`_Site`)."""
        key, owner = self._key(t)
        hit = self._sites.get(key)
        if hit is None:
            if len(self._sites) >= 8:  # a time-dependent reference: keep only recent sites
                self._sites.clear()
            hit = self._sites[key] = (owner, self._prepare(t))
        return hit[1]

    def _prepare(self, t):
        mdp = self.mdp
        S, A = mdp.n_states, mdp.n_actions
        P = mdp.transition_matrix(t)
        log_pi0 = np.broadcast_to(self._log_reference(t), (S, A)).astype(np.float64)
        row_log = log_pi0
        law = mdp.reward_power_law(t)
        kind = "law" if law is not None else mdp.reward_kind()
        col_log = entry_log = None
        if kind == "state_action":
            reward = mdp.reward_slice(t)[:, :, 0]
            row_log = row_log + np.broadcast_to(self._weight_exponent(reward, t), (S, A))
        elif kind == "arrival":
            col_log = np.broadcast_to(self._weight_exponent(mdp.reward_slice(t)[0, 0], t),
                                      (S,)).copy()
        else:
            P = sp.csr_array(P)
            rows = _row_of_entries(P.indptr)
            s_idx, a_idx, cols = rows // A, rows % A, P.indices
            if kind == "law":
                dist, values = law
                with np.errstate(divide="ignore"):
                    log_dist = np.log(dist[s_idx, a_idx, cols])  # (nnz, K)
                entry_log = _log_sum_rows(log_dist + self._weight_exponent(values, t)[None, :])
            else:
                reward = mdp.reward_slice(t)
                r = reward[s_idx if reward.shape[0] > 1 else 0, a_idx if reward.shape[1] > 1 else 0,
                           cols if reward.shape[2] > 1 else 0]
                entry_log = np.broadcast_to(self._weight_exponent(r, t), cols.shape).copy()
        return _Site(P, row_log.reshape(-1), col_log, entry_log, A, log_pi0.reshape(-1),
                     self._kernels)

    def entry_reward(self, t, rows, cols):
        """The conditional mean reward of entries ``(rows = s*A + a, cols = s')`` under the
        tilted law: ``r(s, a, s')``, or ``E[r w(r)] / E[w(r)]`` for a stochastic reward law."""
        mdp = self.mdp
        A = mdp.n_actions
        s_idx, a_idx = rows // A, rows % A
        law = mdp.reward_power_law(t)
        if law is None:
            reward = mdp.reward_slice(t)
            r = reward[s_idx if reward.shape[0] > 1 else 0, a_idx if reward.shape[1] > 1 else 0,
                       cols if reward.shape[2] > 1 else 0]
            return np.broadcast_to(np.where(np.isneginf(r), 0.0, r), cols.shape)
        dist, values = law
        with np.errstate(divide="ignore"):
            log_w = np.log(dist[s_idx, a_idx, cols]) + self._weight_exponent(values, t)[None, :]
        top = log_w.max(axis=1, keepdims=True)
        w = np.exp(log_w - np.where(np.isfinite(top), top, 0.0))
        total = w.sum(axis=1)
        return np.where(total > 0, (w @ values) / np.where(total > 0, total, 1.0), 0.0)

    def log_terminal(self):
        """``log w(terminal)``: ``gamma^T terminal / tau`` or the terminal event indicator."""
        return self._weight_exponent(np.asarray(self.mdp.terminal_rewards, dtype=float),
                                     self.mdp.horizon)

    def backward(self):
        """Yield ``(t, log h_t)`` for ``t = T, T-1, ..., 0``."""
        log_h = self.log_terminal()
        yield self.mdp.horizon, log_h
        for t in range(self.mdp.horizon - 1, -1, -1):
            log_h = self.site(t).step(log_h)
            yield t, log_h


# ---------------------------------------------------------------------------- public
def _tilted_sites(mdp, temperature, reference, backend="auto"):
    """:class:`TiltedSites` of ``mdp`` under the reference ``Policy`` (``None``: uniform), on
    the backend that :func:`tnmdp.backends.select` picks."""
    kernels = None
    if backends.select(mdp, backend) == "numba":
        from .backends.numba import tilted as kernels
    shape = (mdp.n_states, mdp.n_actions)
    if reference is None:
        return TiltedSites(mdp, temperature, lambda t: log_reference(None, t, shape),
                           lambda t: (None, None), kernels)

    def key(t):
        site = reference.site(t)
        return (id(site) if site.ndim == 2 else ("actions", t)), site  # int sites are views

    return TiltedSites(mdp, temperature, lambda t: log_reference(reference, t, shape), key,
                       kernels)


def _check_tilt(mdp, temperature, reference_policy, backend):
    check_mdp(mdp)
    mdp.require_fixed_length("a tilted network (log_partition, doob_transform)")
    temperature = check_temperature(temperature)
    if temperature == 0:
        raise ValueError("temperature must be > 0 for a tilted network, got 0")
    return _tilted_sites(mdp, temperature, check_reference(reference_policy, mdp), backend)


def _log_initial_sum(mdp, log_h0):
    """``log sum_s initial[s] h_0[s]`` (``-inf`` when the event is impossible)."""
    support = mdp.initial > 0
    return float(_log_sum_rows(np.log(mdp.initial[support]) + log_h0[support], axis=0))


def log_h_functions(mdp, *, temperature=1.0, reference_policy=None, backend="auto"):
    """Log Doob functions ``log h_t(s) = log E_pi0[exp(G_{t:} / tau) | s_t = s]``.

    Parameters
    ----------
    mdp : FiniteMDP
    temperature : float
        ``tau > 0``.
    reference_policy : Policy or array_like (T, S, A), optional
        ``pi0``; uniform by default.
    backend : {"auto", "numpy", "numba"}
        Where sparse sites run (:func:`tnmdp.backends.select`); dense sites always take one
        BLAS product per step.

    Returns
    -------
    ndarray, shape (T+1, S)
        Row ``t`` is ``log h_t``, ``-inf`` where ``h_t = 0``; ``G_{t:}`` is the (discounted)
        return from ``t`` on, ``sum_{t' >= t} gamma^t' r_t' + gamma^T terminal``.

    Notes
    -----
    Cost ``O(sum_t nnz(P_t))`` time and ``O(T S)`` memory (the output).
    """
    sites = _check_tilt(mdp, temperature, reference_policy, backend)
    out = np.empty((mdp.horizon + 1, mdp.n_states))
    for t, log_h in sites.backward():
        out[t] = log_h
    return out


def log_partition(mdp, *, temperature=1.0, reference_policy=None, backend="auto"):
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
    backend : {"auto", "numpy", "numba"}
        Where sparse sites run (:func:`tnmdp.backends.select`); dense sites always take one
        BLAS product per step.

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
    ``O(S A)`` memory beyond the model (``O(nnz)`` for rewards on ``(s, a, s')``).

    Examples
    --------
    >>> import math, tnmdp
    >>> logz = tnmdp.log_partition(tnmdp.models.excursion(10, hard=True))
    >>> round(math.exp(logz) * 2**10)  # the Catalan number C_5
    42
    """
    sites = _check_tilt(mdp, temperature, reference_policy, backend)
    for _, log_h in sites.backward():
        pass
    return _log_initial_sum(mdp, log_h)


def event_probability(mdp, policy, *, log=False, atol=None, backend="auto"):
    """Probability that an episode under ``policy`` takes no forbidden (``-inf``) transition.

    Parameters
    ----------
    mdp : FiniteMDP
        Finite rewards are ignored; a ``-inf`` reward (or terminal reward) marks the
        transitions (end states) outside the conditioning event.
    policy : Policy or array_like, shape (T, S, A)
    log : bool
        Return the natural log of the probability (for rare events below ``1e-308``).
    atol : float, optional
        Tolerance on the normalisation of ``policy``; default the model's ``atol``.
    backend : {"auto", "numpy", "numba"}
        Where sparse sites run (:func:`tnmdp.backends.select`).

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
    check_mdp(mdp)
    sites = _tilted_sites(mdp, None, check_policy(policy, mdp, atol=atol), backend)
    for _, log_h in sites.backward():
        pass
    value = _log_initial_sum(mdp, log_h)
    return value if log else float(np.exp(value))


def doob_transform(mdp, *, temperature=1.0, reference_policy=None, stationary=False,
                   backend="auto"):
    """The reference process tilted by (conditioned on) the return: a one-action MDP.

    Parameters
    ----------
    mdp : FiniteMDP
    temperature : float
        ``tau > 0``.
    reference_policy : Policy or array_like (T, S, A), optional
        ``pi0``; uniform by default.
    backend : {"auto", "numpy", "numba"}
        Where sparse sites run (:func:`tnmdp.backends.select`); dense sites always take one
        BLAS product per step.
    stationary : bool
        For a continuing ``mdp`` (``horizon=None``, ``discount == 1``): the stationary Doob
        process of the long-time limit, :func:`tnmdp.transfer.stationary_doob` (then
        ``reference_policy`` is stationary, ``(S, A)``).

    Returns
    -------
    FiniteMDP
        ``n_actions == 1``; a path ``s_0..s_T`` has probability
        ``Pr_pi0(s_0..s_T) E[exp(G / tau) | s_0..s_T] / Z`` -- for 0/``-inf`` rewards, the law of
        the reference paths conditioned on the event. Time-dependent transitions ``P^h_t``
        (a length-``T`` list of CSR ``(S, S)`` matrices; for a dense model one dense
        ``(T, S, 1, S)`` array); initial distribution
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
    The same backward recursion as :func:`log_partition`, ``O(sum_t nnz(P_t))`` time; the output
    stores one ``(S, S)`` CSR operator per time step (about ``12 nnz`` bytes each), so for the
    walks keep ``T * S`` below ~``10^8``. Use it with a one-action policy, stored once:
    ``policy = tnmdp.Policy.uniform(T, S, 1)``, then ``tnmdp.sample(doob, policy, n)``,
    ``tnmdp.marginals(doob, policy)``, ``tnmdp.evaluate(doob, policy)``.

    Examples
    --------
    >>> import tnmdp
    >>> mdp = tnmdp.models.excursion(6, hard=True)
    >>> doob = tnmdp.doob_transform(mdp)
    >>> paths = tnmdp.sample(doob, tnmdp.Policy.uniform(6, doob.n_states, 1), 5, rng=0)
    >>> bool((paths.states >= 6).all() and (paths.states[:, -1] == 6).all())
    True
    """
    if stationary:
        from .transfer import stationary_doob

        return stationary_doob(mdp, temperature, reference_policy)
    sites = _check_tilt(mdp, temperature, reference_policy, backend)
    T, S = mdp.horizon, mdp.n_states
    simple_rewards = mdp.rewards.shape[2] == 1 and mdp.reward_power_law(0) is None
    if not simple_rewards and T * S * S > 5e7:
        raise ValueError("doob_transform of a model with action-dependent or stochastic rewards "
                         f"builds dense (T, S, 1, S) rewards; T*S*S = {T * S * S:.3g} exceeds 5e7")
    rewards = mdp.rewards if simple_rewards else np.zeros((T, S, 1, S))
    dense = not mdp.is_sparse  # dense models give a dense (T, S, 1, S) chain: no CSR of S^2
    ops = np.empty((T, S, 1, S)) if dense else [None] * T
    log_h = sites.log_terminal()
    for t in range(T - 1, -1, -1):
        site = sites.site(t)
        log_h_next, log_h = log_h, site.step(log_h)
        kernel = _doob_kernel(sites, t, site, log_h_next, log_h,
                              None if simple_rewards else rewards[t, :, 0, :])
        if dense:
            ops[t, :, 0, :] = kernel.toarray() if sp.issparse(kernel) else kernel
        else:
            ops[t] = kernel
    if not np.isfinite(_log_initial_sum(mdp, log_h)):
        raise ValueError("the conditioning event has probability zero under the reference "
                         "policy (log_partition = -inf): there is no conditioned process")
    support = (mdp.initial > 0) & np.isfinite(log_h)
    log_w0 = np.full(S, -np.inf)
    log_w0[support] = np.log(mdp.initial[support]) + log_h[support]
    w0 = np.exp(log_w0 - log_w0[support].max())
    return FiniteMDP(ops, rewards, T, w0 / w0.sum(), mdp.terminal_rewards,
                     discount=mdp.discount, atol=1e-8)


def _doob_kernel(sites, t, site, log_h_next, log_h_now, mean_reward=None):
    """``P^h_t`` as a CSR ``(S, S)`` (a dense ndarray for a dense site): live rows normalised up
    to rounding, dead states (with ``h_t = 0``) the reference kernel ``sum_a pi0 P_t``. With
    ``mean_reward`` (an ``(S, S)`` array), also write the tilted conditional mean reward of each
    ``(s, s')``."""
    mdp = sites.mdp
    S, A = mdp.n_states, mdp.n_actions
    if site.compiled and mean_reward is None:
        return site.doob_kernel(log_h_next, log_h_now)
    weights = site.doob_weights(log_h_next, log_h_now)
    P = site.P
    if sp.issparse(P):
        summed = _sum_over_actions(S, A)
        kernel = summed @ sp.csr_array((weights, P.indices, P.indptr), shape=P.shape)
        if mean_reward is not None:
            rows = _row_of_entries(P.indptr)
            with_reward = sp.csr_array((weights * sites.entry_reward(t, rows, P.indices),
                                        P.indices, P.indptr), shape=P.shape)
            _write_mean(mean_reward, (summed @ with_reward).toarray(), kernel.toarray())
        kernel.eliminate_zeros()
        sums = np.asarray(kernel.sum(axis=1)).ravel()
        kernel.data /= np.repeat(sums, np.diff(kernel.indptr))  # rounding only: stochastic rows
    else:
        w = weights.reshape(S, A, S)
        total = w.sum(axis=1)
        if mean_reward is not None:  # a dense site: rewards on (s, a) only
            reward = np.broadcast_to(mdp.reward_slice(t)[:, :, 0], (S, A))
            _write_mean(mean_reward, np.einsum("sap,sa->sp", w, np.where(
                np.isneginf(reward), 0.0, reward)), total)
        kernel = total / total.sum(axis=1, keepdims=True)
    return kernel


def _write_mean(out, numerator, total):
    """``out = numerator / total`` where ``total > 0``, else 0 (never ``nan``)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        out[...] = np.where(total > 0, numerator / total, 0.0)


def _sum_over_actions(n_states, n_actions):
    """The ``(S, S*A)`` 0/1 matrix summing the ``A`` rows of each state."""
    return sp.csr_array((np.ones(n_states * n_actions), np.arange(n_states * n_actions),
                         np.arange(0, n_states * n_actions + 1, n_actions)),
                        shape=(n_states, n_states * n_actions))
