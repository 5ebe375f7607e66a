"""Model factories: kinetically constrained models, exclusion processes and vicious walkers.

All are open chains of ``L`` two-state sites (``0`` = empty/down, ``1`` = occupied/up), flat index
``sum_i x_i 2^i``. Every factory takes ``initial=`` (an ``(L, 2)`` product distribution or a list
of MPS site arrays); the default is the product of the equilibrium marginals (up with probability
``c``) for the spin models, the empty lattice for TASEP and SSEP, and the walkers at ``starts``.

- :func:`independent_spins` -- flips up at rate ``c``, down at ``1 - c``; ``K`` = flips.
- :func:`east` -- site ``i`` flips only if site ``i-1`` is up; site 0 always facilitated
  (Jäckle & Eisinger 1991; Garrahan et al., PRL 98, 195702 (2007)); ``K`` = flips (activity).
- :func:`fa` -- Fredrickson–Andersen: facilitated if at least one neighbour is up, an up
  boundary left of site 0 and none right of site ``L-1``; ``K`` = flips.
- :func:`tasep` -- entry at site 0 (``alpha``), hops right (rate 1), exit at ``L-1`` (``beta``);
  ``K`` = entries (Derrida, Evans, Hakim & Pasquier, J. Phys. A 26, 1493 (1993)).
- :func:`ssep` -- symmetric hops, reservoirs at both ends; ``K`` = net current in at the left.
- :func:`vicious_walkers` -- discrete time, parallel update of ``D`` walkers, each moving one site
  left or right with probability 1/2; leaving the lattice, sharing a site or swapping is
  forbidden (weight 0). ``Z_n`` is the probability of ``n`` steps without a forbidden event
  (Fisher, J. Stat. Phys. 34, 667 (1984); the excursions of Gillman, Rose & Garrahan 2020, for
  ``D`` walkers).
"""

from __future__ import annotations

import numbers

import numpy as np

from .process import LatticeProcess

__all__ = ["independent_spins", "east", "fa", "tasep", "ssep", "vicious_walkers"]


def _check_L(L):
    if not isinstance(L, numbers.Integral) or isinstance(L, bool):
        raise TypeError(f"L must be an int, got {L!r}")
    if L < 1:
        raise ValueError(f"L must be >= 1, got {L}")
    return int(L)


def _check_prob(name, c):
    if not isinstance(c, numbers.Real) or not 0.0 <= c <= 1.0:
        raise ValueError(f"{name} must be a number in [0, 1], got {c!r}")
    return float(c)


def _check_rate(name, r):
    if not isinstance(r, numbers.Real) or not (np.isfinite(r) and r >= 0):
        raise ValueError(f"{name} must be a finite rate >= 0, got {r!r}")
    return float(r)


def _single(rate_up, rate_down, count_up=1.0, count_down=1.0):
    """One-site rates/counts ``[y, x]``."""
    rates = np.array([[0.0, rate_down], [rate_up, 0.0]])
    counts = np.array([[0.0, count_down], [count_up, 0.0]])
    return rates, counts


def _facilitated_flip(c, k, site, facilitated):
    """Rates/counts on ``k`` sites: flip local site ``site`` when ``facilitated(config)``."""
    n = 2 ** k
    rates, counts = np.zeros((n, n)), np.zeros((n, n))
    for x in range(n):
        bits = [(x >> j) & 1 for j in range(k)]
        if not facilitated(bits):
            continue
        y = x ^ (1 << site)
        rates[y, x] = (1.0 - c) if bits[site] else c
        counts[y, x] = 1.0
    return rates, counts


def _spin_defaults(L, c, initial):
    eq = np.tile([1.0 - c, c], (L, 1))
    return (eq if initial is None else initial), (eq if 0.0 < c < 1.0 else None)


def independent_spins(L, c, *, initial=None):
    """``L`` independent two-state spins: up at rate ``c``, down at rate ``1 - c``; ``K`` = flips.

    ``theta(s) = L (-1 + sqrt(1 - 4 c (1-c) (1 - e^{-2s}))) / 2``.
    """
    L, c = _check_L(L), _check_prob("c", c)
    rates, counts = _single(c, 1.0 - c)
    init, eq = _spin_defaults(L, c, initial)
    return LatticeProcess.from_terms(L, [(i, rates, counts) for i in range(L)], init,
                                     equilibrium=eq, name=f"independent_spins(L={L}, c={c})")


def east(L, c, *, initial=None):
    """The open East model: site ``i`` flips iff site ``i-1`` is up (site 0 always); ``K`` = flips.

    Parameters
    ----------
    L : int
    c : float in [0, 1]
        Up rate ``c``, down rate ``1 - c`` (equilibrium up-density ``c``).
    initial : (L, 2) array or MPS, optional
        Default: equilibrium product measure.
    """
    L, c = _check_L(L), _check_prob("c", c)
    rates, counts = _single(c, 1.0 - c)
    terms = [(0, rates, counts)]
    r2, c2 = _facilitated_flip(c, 2, 1, lambda b: b[0] == 1)
    terms += [(i - 1, r2, c2) for i in range(1, L)]
    init, eq = _spin_defaults(L, c, initial)
    return LatticeProcess.from_terms(L, terms, init, equilibrium=eq, name=f"east(L={L}, c={c})")


def fa(L, c, *, initial=None):
    """Fredrickson–Andersen (one-spin facilitated): flip iff a neighbour is up; ``K`` = flips.

    A facilitating (up) boundary sits left of site 0, none right of site ``L-1``.
    """
    L, c = _check_L(L), _check_prob("c", c)
    rates, counts = _single(c, 1.0 - c)
    terms = [(0, rates, counts)]  # site 0: the left boundary is up
    if L >= 3:
        r3, c3 = _facilitated_flip(c, 3, 1, lambda b: b[0] == 1 or b[2] == 1)
        terms += [(i - 1, r3, c3) for i in range(1, L - 1)]
    if L >= 2:
        r2, c2 = _facilitated_flip(c, 2, 1, lambda b: b[0] == 1)
        terms.append((L - 2, r2, c2))
    init, eq = _spin_defaults(L, c, initial)
    return LatticeProcess.from_terms(L, terms, init, equilibrium=eq, name=f"fa(L={L}, c={c})")


def _hops(right, left):
    """Two-site exclusion hops ``(1,0) -> (0,1)`` at ``right`` and back at ``left``; local x_i + 2 x_{i+1}."""
    rates = np.zeros((4, 4))
    rates[2, 1] = right
    rates[1, 2] = left
    return rates


def _empty(L, initial):
    return np.tile([1.0, 0.0], (L, 1)) if initial is None else initial


def tasep(L, alpha, beta, *, initial=None):
    """Open TASEP: entry at site 0 (rate ``alpha``), hops ``i -> i+1`` (rate 1), exit (``beta``).

    ``K`` = number of entries. Default initial state: the empty lattice.
    """
    L = _check_L(L)
    alpha, beta = _check_rate("alpha", alpha), _check_rate("beta", beta)
    entry = _single(alpha, 0.0, 1.0, 0.0)
    exit_ = _single(0.0, beta, 0.0, 0.0)
    terms = [(0,) + entry, (L - 1,) + exit_]
    terms += [(i, _hops(1.0, 0.0), None) for i in range(L - 1)]
    return LatticeProcess.from_terms(L, terms, _empty(L, initial),
                                     name=f"tasep(L={L}, alpha={alpha}, beta={beta})")


def ssep(L, alpha, gamma, delta, beta, *, initial=None):
    """Open SSEP: left reservoir (in ``alpha``, out ``gamma``), hops rate 1, right (in ``delta``, out ``beta``).

    ``K`` = entries at the left minus exits at the left (net current in). Default initial
    state: the empty lattice.
    """
    L = _check_L(L)
    alpha, gamma = _check_rate("alpha", alpha), _check_rate("gamma", gamma)
    delta, beta = _check_rate("delta", delta), _check_rate("beta", beta)
    terms = [(0,) + _single(alpha, gamma, 1.0, -1.0), (L - 1,) + _single(delta, beta, 0.0, 0.0)]
    terms += [(i, _hops(1.0, 1.0), None) for i in range(L - 1)]
    return LatticeProcess.from_terms(
        L, terms, _empty(L, initial),
        name=f"ssep(L={L}, alpha={alpha}, gamma={gamma}, delta={delta}, beta={beta})")


def _walker_tensor(left_open, right_open):
    """Site tensor ``G[l, r, y, x]`` of the parallel walker update.

    Bond values: 0 nothing crosses, 1 a walker crosses to the right, 2 a walker crosses to the
    left. A walker at ``x = 1`` leaves through exactly one bond (weight 1/2); ``y`` counts the
    arrivals, at most 1. One value per bond forbids swaps; closed end bonds forbid leaving.
    """
    g = np.zeros((3, 3, 2, 2))
    for l in range(3 if left_open else 1):
        for r in range(3 if right_open else 1):
            out = (l == 2) + (r == 1)
            arrivals = (l == 1) + (r == 2)
            if out <= 1 and arrivals <= 1:
                g[l, r, arrivals, out] = 0.5 if out else 1.0
    return g


def vicious_walkers(L, starts, *, initial=None):
    """``D`` vicious walkers on ``L`` sites, discrete time, parallel update.

    Every walker moves one site left or right with probability 1/2, all at once; leaving the
    lattice, two walkers on one site or two walkers swapping places is forbidden (weight 0).
    ``s`` plays no role; ``Z_n`` is the probability that ``n`` steps have no forbidden event.

    Parameters
    ----------
    L : int
    starts : sequence of int
        Distinct walker positions in ``0..L-1``.
    initial : optional
        Default: the walkers at ``starts``.
    """
    L = _check_L(L)
    starts = list(starts)
    if not starts:
        raise ValueError("starts is empty: give at least one walker position")
    for k, p in enumerate(starts):
        if not isinstance(p, numbers.Integral) or isinstance(p, bool):
            raise TypeError(f"starts[{k}] must be an int, got {p!r}")
        if not 0 <= p < L:
            raise ValueError(f"starts[{k}] = {p} is outside the lattice 0..{L - 1}")
    if len(set(starts)) != len(starts):
        dup = next(p for p in starts if starts.count(p) > 1)
        raise ValueError(f"starts has walker position {dup} twice; walkers must be distinct")
    if initial is None:
        initial = np.tile([1.0, 0.0], (L, 1))
        initial[starts] = [0.0, 1.0]
    tensors = []
    for i in range(L):
        g = _walker_tensor(i > 0, i < L - 1)
        tensors.append(g[: 1 if i == 0 else 3, : 1 if i == L - 1 else 3])
    return LatticeProcess.from_transfer(tensors, initial, sector=_number_sector(L, len(starts)),
                                        name=f"vicious_walkers(L={L}, D={len(starts)})")


def _number_sector(L, n):
    """MPS indicator of the configurations with exactly ``n`` particles (bond ``n + 1``)."""
    sites = []
    for i in range(L):
        a = np.zeros((1 if i == 0 else n + 1, 2, 1 if i == L - 1 else n + 1))
        for k in range(a.shape[0]):
            for x in (0, 1):
                j = k + x
                if i == L - 1:
                    if j == n:
                        a[k, x, 0] = 1.0
                elif j <= n:
                    a[k, x, j] = 1.0
        sites.append(a)
    return sites
