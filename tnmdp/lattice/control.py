"""Controlled many-body MDPs: a lattice of units, each with a local state and a local decision.

A :class:`LatticeMDP` is a factored MDP (a dynamic Bayesian network with local scopes, Guestrin,
Koller, Parr & Venkataraman, "Efficient solution algorithms for factored MDPs", JAIR 2003) on an
open chain of ``L`` sites with local dimension ``d`` and ``k`` local actions. At every time step
``t = 0..T-1`` each site ``i`` sees its *context* ``(x_{i-1}, x_i, x_{i+1})`` (a missing neighbour
at either end reads as state ``0``), draws its action ``a_i ~ pi[t, i, x_{i-1}, x_i, x_{i+1}, .]``,
collects the reward ``reward[t, i, x_{i-1}, x_i, x_{i+1}, a_i]``, and all sites update in
parallel: ``x'_i ~ kernel[t, i, x_{i-1}, x_i, x_{i+1}, a_i, .]``. The return is
``G = sum_t gamma^t sum_i r_{t,i}`` (no terminal reward); the initial state is a product
distribution ``initial[i, x_i]``.

Conventions shared with :mod:`tnmdp` (``DESIGN.md``, "Many-body (lattice) models"): the flat
index of a configuration is ``sum_i x_i d^i`` (site 0 least significant) and a joint action is
``sum_i a_i k^i``. :meth:`LatticeMDP.to_flat` returns the equivalent :class:`tnmdp.FiniteMDP`
(``S = d^L``, ``A = k^L``) and :func:`policy_to_flat` the joint policy of a local one: these are
the cross-checks of every lattice computation for small ``L``.

Shapes (``T`` horizon, ``L`` sites, ``d`` states, ``k`` actions per site):

* ``kernel``: ``(d, d, d, k, d)`` shared by all sites and times, ``(L, d, d, d, k, d)`` per site,
  or ``(T, L, d, d, d, k, d)`` per time and site;
* ``reward``: ``(d, d, d, k)``, ``(L, d, d, d, k)`` or ``(T, L, d, d, d, k)``, same rules;
* a local policy: ``(d, d, d, k)`` shared, ``(L, d, d, d, k)`` stationary or
  ``(T, L, d, d, d, k)``, each last axis a distribution.

Broadcast forms are stored as given and read through zero-stride views (never expanded).
"""

from __future__ import annotations

import numbers

import numpy as np

from ..model import FiniteMDP, _check_int, _check_real, _first_index

__all__ = ["LatticeMDP", "as_local_policy", "policy_to_flat", "context_index"]

#: Largest ``d^L * k^L`` for which :meth:`LatticeMDP.to_flat` builds the joint-action MDP.
MAX_FLAT_SIZE = 2 ** 16


def _check_distribution(name, array, atol):
    """Raise unless ``array >= 0`` and every last-axis slice sums to 1 within ``atol``."""
    _check_real(name, array)
    if (array < 0).any():
        idx = _first_index(array < 0)
        raise ValueError(f"{name}{list(idx)} is {array[idx]}; probabilities must be >= 0")
    sums = array.sum(axis=-1)
    bad = np.abs(sums - 1.0) > atol
    if bad.any():
        idx = _first_index(bad)
        raise ValueError(f"{name}{list(idx)} sums to {sums[idx]:.12g}, not 1 (atol={atol:g})")


def _full_view(name, array, base_ndim, n_sites, horizon):
    """Zero-stride ``(T, L, *local)`` view of a shared, per-site or per-time-and-site array."""
    extra = array.ndim - base_ndim
    if extra == 0:
        array = array[None, None]
    elif extra == 1:
        if array.shape[0] != n_sites:
            raise ValueError(f"{name} has shape {array.shape}: its first axis ({array.shape[0]}) "
                             f"must equal n_sites ({n_sites}) for a per-site {name}")
        array = array[None]
    elif extra == 2:
        if array.shape[:2] != (horizon, n_sites):
            raise ValueError(f"{name} has shape {array.shape}: its first two axes must be "
                             f"(horizon, n_sites) = ({horizon}, {n_sites})")
    else:
        raise ValueError(f"{name} must have {base_ndim}, {base_ndim + 1} or {base_ndim + 2} "
                         f"dimensions (shared, per-site, per-time-and-site); got shape {array.shape}")
    return np.broadcast_to(array, (horizon, n_sites) + array.shape[2:])


def context_index(n_sites, local_dim):
    """Context of every site in every configuration.

    Returns
    -------
    ndarray, shape (d^L, L, 3), int
        ``[s, i] = (x_{i-1}, x_i, x_{i+1})`` of the configuration with flat index
        ``s = sum_i x_i d^i`` (missing neighbours read as 0).
    """
    n = local_dim ** n_sites
    digits = (np.arange(n)[:, None] // local_dim ** np.arange(n_sites)[None, :]) % local_dim
    padded = np.pad(digits, ((0, 0), (1, 1)))
    return np.stack([padded[:, :-2], padded[:, 1:-1], padded[:, 2:]], axis=-1)


class LatticeMDP:
    """A factored MDP on an open chain with nearest-neighbour scopes and parallel updates.

    Parameters
    ----------
    n_sites : int
        ``L >= 1``.
    local_dim : int
        ``d >= 1`` states per site.
    n_local_actions : int
        ``k >= 1`` actions per site.
    kernel : array_like
        ``kernel[..., x_l, x, x_r, a, x']`` = probability that a site in context ``(x_l, x, x_r)``
        taking action ``a`` moves to ``x'``; shape ``(d, d, d, k, d)``, ``(L, d, d, d, k, d)`` or
        ``(T, L, d, d, d, k, d)``. Every last-axis slice must be a distribution within ``atol``.
    reward : array_like
        ``reward[..., x_l, x, x_r, a]``, shape ``(d, d, d, k)``, ``(L, d, d, d, k)`` or
        ``(T, L, d, d, d, k)``. ``-inf`` is allowed (a forbidden local action); ``nan`` and
        ``+inf`` are not.
    horizon : int
        ``T >= 1`` decisions at ``t = 0..T-1``.
    initial : array_like, shape (L, d)
        Product initial distribution, ``initial[i, x]`` = Pr(x_i(0) = x).
    discount : float, optional
        ``gamma`` in ``[0, 1]``.
    atol : float, optional
        Tolerance on the normalisation of ``kernel`` and ``initial``.

    Notes
    -----
    The arrays are copied (so the caller's arrays are never aliased) and made read-only;
    broadcast forms are kept compact. Storage ``O(size of the arrays given)``.
    """

    def __init__(self, n_sites, local_dim, n_local_actions, kernel, reward, horizon, initial, *,
                 discount=1.0, atol=1e-9):
        self.n_sites = _check_int("n_sites", n_sites, 1)
        self.local_dim = _check_int("local_dim", local_dim, 1)
        self.n_local_actions = _check_int("n_local_actions", n_local_actions, 1)
        self.horizon = _check_int("horizon", horizon, 1)
        if not isinstance(atol, numbers.Real) or not atol >= 0:
            raise ValueError(f"atol must be a non-negative number, got {atol!r}")
        self.atol = float(atol)
        if isinstance(discount, bool) or not isinstance(discount, numbers.Real) \
                or not 0.0 <= discount <= 1.0:
            raise ValueError(f"discount must be a number in [0, 1], got {discount!r}")
        self.discount = float(discount)
        d, k = self.local_dim, self.n_local_actions
        self._kernel = self._read("kernel", kernel, (d, d, d, k, d),
                                  lambda a: _check_distribution("kernel", a, self.atol))
        self._reward = self._read("reward", reward, (d, d, d, k),
                                  lambda a: _check_real("reward", a, allow_neg_inf=True))
        init = np.array(initial, dtype=np.float64)
        if init.shape != (self.n_sites, d):
            raise ValueError(f"initial must have shape (n_sites, local_dim) = ({self.n_sites}, {d}),"
                             f" got {init.shape}")
        _check_distribution("initial", init, self.atol)
        init.flags.writeable = False
        self.initial = init

    def _read(self, name, value, local_shape, check):
        """Copy, check the shape, validate the values (indices as given), broadcast."""
        try:
            array = np.array(value, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{name} must be a real array, got {type(value).__name__}") from exc
        if array.shape[array.ndim - len(local_shape):] != local_shape:
            raise ValueError(f"{name} has shape {array.shape}; its last axes must be {local_shape} "
                             "(local_dim and n_local_actions)")
        check(array)
        view = _full_view(name, array, len(local_shape), self.n_sites, self.horizon)
        array.flags.writeable = False
        return view

    @property
    def kernel(self):
        """Read-only ``(T, L, d, d, d, k, d)`` view (zero strides where shared)."""
        return self._kernel

    @property
    def reward(self):
        """Read-only ``(T, L, d, d, d, k)`` view (zero strides where shared)."""
        return self._reward

    def __repr__(self):
        return (f"LatticeMDP(n_sites={self.n_sites}, local_dim={self.local_dim}, "
                f"n_local_actions={self.n_local_actions}, horizon={self.horizon}, "
                f"discount={self.discount})")

    def to_flat(self):
        """The equivalent :class:`tnmdp.FiniteMDP` with joint actions.

        Returns
        -------
        FiniteMDP
            ``S = d^L`` states (flat index ``sum_i x_i d^i``), ``A = k^L`` joint actions
            (``sum_i a_i k^i``), transitions ``P[s, a, s'] = prod_i kernel[i, ctx_i(s), a_i,
            x'_i]`` (time-dependent when the kernel is), rewards ``R[s, a] = sum_i reward[i,
            ctx_i(s), a_i]``.

        Raises
        ------
        ValueError
            When ``d^L k^L`` exceeds ``MAX_FLAT_SIZE`` (2^16): the dense ``(S, A, S)`` operator
            would not fit comfortably.

        Notes
        -----
        Cost ``O(T' L d^{2L} k^L)`` time and memory with ``T'`` the number of distinct kernels.
        """
        L, d, k, T = self.n_sites, self.local_dim, self.n_local_actions, self.horizon
        if d ** L * k ** L > MAX_FLAT_SIZE:
            raise ValueError(f"to_flat: d^L * k^L = {d ** L * k ** L} exceeds {MAX_FLAT_SIZE} "
                             f"(n_sites={L}, local_dim={d}, n_local_actions={k}); use the lattice "
                             "methods instead")
        ctx = context_index(L, d)                          # (S, L, 3)
        actions = (np.arange(k ** L)[:, None] // k ** np.arange(L)[None, :]) % k   # (A, L)
        targets = (np.arange(d ** L)[:, None] // d ** np.arange(L)[None, :]) % d   # (S', L)
        time_kernel = self._kernel.strides[0] != 0
        time_reward = self._reward.strides[0] != 0

        def transitions_at(t):
            P = np.ones((d ** L, k ** L, d ** L))
            for i in range(L):
                ker = self._kernel[t, i][ctx[:, i, 0], ctx[:, i, 1], ctx[:, i, 2]]  # (S, k, d)
                P *= ker[:, actions[:, i]][:, :, targets[:, i]]
            return P

        def rewards_at(t):
            R = np.zeros((d ** L, k ** L))
            for i in range(L):
                rew = self._reward[t, i][ctx[:, i, 0], ctx[:, i, 1], ctx[:, i, 2]]  # (S, k)
                R += rew[:, actions[:, i]]
            return R

        P = np.stack([transitions_at(t) for t in range(T)]) if time_kernel else transitions_at(0)
        R = (np.stack([rewards_at(t) for t in range(T)])[..., None] if time_reward
             else rewards_at(0))
        p0 = np.ones(1)
        for i in range(L - 1, -1, -1):  # site 0 least significant: it varies fastest
            p0 = np.kron(p0, self.initial[i])
        return FiniteMDP(P, R, T, p0, discount=self.discount, atol=max(self.atol, 1e-12) * L)


def as_local_policy(policy, mdp, *, name="policy"):
    """Validate a local policy and return a read-only ``(T, L, d, d, d, k)`` float view.

    Parameters
    ----------
    policy : array_like
        ``(d, d, d, k)`` shared, ``(L, d, d, d, k)`` stationary or ``(T, L, d, d, d, k)``;
        every last-axis slice a distribution within ``mdp.atol``.
    mdp : LatticeMDP

    Returns
    -------
    ndarray, shape (T, L, d, d, d, k)
        A copy (never the caller's array), broadcast along the axes that were not given.
    """
    if not isinstance(mdp, LatticeMDP):
        raise TypeError(f"mdp must be a LatticeMDP, not {type(mdp).__name__}")
    d, k = mdp.local_dim, mdp.n_local_actions
    try:
        array = np.array(policy, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be a real array, got {type(policy).__name__}") from exc
    if array.shape[max(array.ndim - 4, 0):] != (d, d, d, k):
        raise ValueError(f"{name} has shape {array.shape}; its last axes must be "
                         f"(d, d, d, k) = {(d, d, d, k)}")
    _check_distribution(name, array, mdp.atol)
    view = _full_view(name, array, 4, mdp.n_sites, mdp.horizon)
    array.flags.writeable = False
    return view


def policy_to_flat(mdp, policy):
    """The joint policy ``(T, S, A)`` of a local policy, for :meth:`LatticeMDP.to_flat`.

    ``pi_flat[t, s, a] = prod_i policy[t, i, ctx_i(s), a_i]`` with the flat conventions of
    :meth:`LatticeMDP.to_flat`. Cost ``O(T L d^L k^L)``; refused above ``MAX_FLAT_SIZE``.
    """
    pi = as_local_policy(policy, mdp)
    L, d, k, T = mdp.n_sites, mdp.local_dim, mdp.n_local_actions, mdp.horizon
    if d ** L * k ** L > MAX_FLAT_SIZE:
        raise ValueError(f"policy_to_flat: d^L * k^L = {d ** L * k ** L} exceeds {MAX_FLAT_SIZE}")
    ctx = context_index(L, d)
    actions = (np.arange(k ** L)[:, None] // k ** np.arange(L)[None, :]) % k
    out = np.ones((T, d ** L, k ** L))
    for i in range(L):
        local = pi[:, i][:, ctx[:, i, 0], ctx[:, i, 1], ctx[:, i, 2]]     # (T, S, k)
        out *= local[:, :, actions[:, i]]
    return out
