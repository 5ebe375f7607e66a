"""Stochastic processes on a chain of ``L`` sites, built from local terms, and their MPOs.

Conventions
-----------
A lattice of ``L`` sites of local dimension ``d``; configuration ``x = (x_0, ..., x_{L-1})`` with
flat index ``sum_i x_i d^i`` (site 0 least significant) in every flat output
(:meth:`LatticeProcess.generator`, :meth:`LatticeProcess.to_flat`).

*Continuous time.* The generator ``W`` has ``W[y, x]`` = rate of ``x -> y`` (``y != x``) and
columns summing to 0. It is a sum of local terms: a term on the ``k`` consecutive sites
``start..start+k-1`` holds a rate matrix ``R[y_loc, x_loc]`` over the ``d^k`` local
configurations (local index ``sum_j x_{start+j} d^j``) and counts ``c[y_loc, x_loc]``, the
increment of the counting observable ``K`` at that jump. The tilted generator is::

    W_s = sum_terms  ( R o exp(-s c)  -  diag(sum_y R[y, x]) )   (each term on its sites, I elsewhere)

so ``W_s[y, x] = W[y, x] exp(-s k(x -> y))`` off the diagonal and ``W_s[x, x] = W[x, x]``. Its
largest real eigenvalue is the SCGF ``theta(s) = lim_t (1/t) log E[exp(-s K_t)]``.

*Discrete time* by uniformisation: ``P = I + dt W``, ``P_s = I + dt W_s`` with ``dt`` defaulting
to ``1 / sum_terms max_x(exit rate of the term)``, an upper bound on the largest exit rate, so
``P`` is stochastic. ``Z_n(s) = <1| P_s^n |p0>``.

A *discrete-time* process (e.g. the parallel-update vicious walkers) is given directly by the
site tensors of its one-step transfer MPO ``P[y, x]`` (sub-stochastic: forbidden moves have
weight 0); ``s`` does not enter it and ``generator``/``dt`` do not apply.

The MPO of a sum of local terms
-------------------------------
Each term (summed over terms on the same sites) is split into a ``k``-site MPO by successive
SVDs. The MPO of the sum is the usual finite-state automaton (McCulloch, J. Stat. Mech. P10014
(2007))::

    bond channels:  ID (nothing placed yet) | term channels (a term begun, not finished) | DONE

    W_i = [[ I, start pieces, one-site terms ],
           [ 0, middle pieces, end pieces    ],
           [ 0, 0,             I             ]]

closed by ``<ID|`` on the left and ``|DONE>`` on the right (``dt |DONE> + |ID>`` for ``P_s``).
The bond dimension is 2 plus the ranks of the terms crossing a bond: independent of ``L``
(3 for East, 6 for FA, 4 for TASEP, 6 for SSEP).
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from . import mps as _mps

__all__ = ["LocalTerm", "LatticeProcess"]

_SVD_RTOL = 1e-13  # singular values of a local term below this (relative) are exact zeros


@dataclass(frozen=True)
class LocalTerm:
    """One local jump term of a continuous-time lattice process.

    Attributes
    ----------
    start : int
        First site of the term; it acts on sites ``start .. start + k - 1``.
    n_sites : int
        ``k``.
    rates : ndarray, shape (d^k, d^k)
        ``R[y_loc, x_loc] >= 0``: rate of the local jump ``x_loc -> y_loc`` (zero diagonal).
        Local index ``sum_j x_{start+j} d^j``.
    counts : ndarray, shape (d^k, d^k)
        Increment ``k(x -> y)`` of the counting observable at that jump.
    """

    start: int
    n_sites: int
    rates: np.ndarray
    counts: np.ndarray

    def tilted(self, s):
        """The term's contribution to ``W_s`` on its ``k`` sites, shape ``(d^k, d^k)``."""
        with np.errstate(over="ignore"):
            weight = self.rates * np.exp(-s * self.counts)
        weight[self.rates == 0] = 0.0
        return weight - np.diag(self.rates.sum(axis=0))

    @property
    def max_exit_rate(self):
        """``max_x sum_y R[y, x]``."""
        return float(self.rates.sum(axis=0).max())


def _make_term(start, rates, counts, d, L, index):
    """Validate one term (``index`` names it in messages)."""
    if not isinstance(start, numbers.Integral) or isinstance(start, bool):
        raise TypeError(f"terms[{index}].start must be an int, got {start!r}")
    rates = np.array(rates, dtype=np.float64)
    counts = np.zeros_like(rates) if counts is None else np.array(counts, dtype=np.float64)
    if rates.ndim != 2 or rates.shape[0] != rates.shape[1]:
        raise ValueError(f"terms[{index}].rates must be a square matrix, got shape {rates.shape}")
    size = rates.shape[0]
    k = int(round(np.log(size) / np.log(d))) if size > 1 else 0
    if k < 1 or d ** k != size:
        raise ValueError(f"terms[{index}].rates has shape {rates.shape}; expected (d^k, d^k) with "
                         f"d={d}")
    if not 0 <= start <= L - k:
        raise ValueError(f"terms[{index}] acts on sites {start}..{start + k - 1}, outside 0..{L - 1}")
    if counts.shape != rates.shape:
        raise ValueError(f"terms[{index}].counts has shape {counts.shape}; expected {rates.shape}")
    for name, arr in (("rates", rates), ("counts", counts)):
        if not np.isfinite(arr).all():
            y, x = np.argwhere(~np.isfinite(arr))[0]
            raise ValueError(f"terms[{index}].{name}[{y}, {x}] is {arr[y, x]}; must be finite")
    if (rates < 0).any():
        y, x = np.argwhere(rates < 0)[0]
        raise ValueError(f"terms[{index}].rates[{y}, {x}] is {rates[y, x]}; rates must be >= 0")
    if np.diag(rates).any():
        x = int(np.flatnonzero(np.diag(rates))[0])
        raise ValueError(f"terms[{index}].rates[{x}, {x}] is {rates[x, x]}; the diagonal must be 0 "
                         "(escape rates are implied)")
    return LocalTerm(int(start), k, rates, counts)


def _split_operator(op, d, k):
    """Split a ``k``-site operator ``(d^k, d^k)`` into MPO pieces ``(Dl, Dr, d, d)`` by SVD."""
    # tensor axes (y_0..y_{k-1}, x_0..x_{k-1}); local index has site 0 fastest -> order="F"
    t = op.reshape((d,) * (2 * k), order="F")
    t = t.transpose([a for j in range(k) for a in (j, k + j)])  # y_0, x_0, y_1, x_1, ...
    pieces = []
    rest = t.reshape(1, -1)
    for _ in range(k - 1):
        dl = rest.shape[0]
        u, s, vh = np.linalg.svd(rest.reshape(dl * d * d, -1), full_matrices=False)
        keep = max(1, int((s > _SVD_RTOL * s[0]).sum())) if s[0] > 0 else 1
        pieces.append(u[:, :keep].reshape(dl, d, d, keep).transpose(0, 3, 1, 2))
        rest = s[:keep, None] * vh[:keep]
    pieces.append(rest.reshape(rest.shape[0], d, d, 1).transpose(0, 3, 1, 2))
    return pieces


class LatticeProcess:
    """A Markov process on ``L`` sites from local terms (continuous) or a transfer MPO (discrete).

    Build one with :meth:`from_terms` or :meth:`from_transfer`, or with a model factory
    (:func:`tnmdp.lattice.east` and others).

    Attributes
    ----------
    n_sites : int
        ``L``.
    local_dim : int
        ``d``.
    time : {"continuous", "discrete"}
    terms : tuple of LocalTerm
        Continuous time only (empty otherwise).
    initial : list of ndarray
        The initial distribution as an MPS (sites ``(Dl, d, Dr)``), summing to 1.
    equilibrium : ndarray, shape (L, d) or None
        Product measure ``pi(x) = prod_i eq[i, x_i]`` under which the untilted process obeys
        detailed balance (then ``W_s`` is symmetrisable, see :meth:`symmetric_mpo`), or ``None``.
    name : str
    """

    def __init__(self, *, n_sites, local_dim, time, terms=(), transfer=None, initial=None,
                 equilibrium=None, name="lattice process", atol=1e-9, sector=None):
        self.n_sites, self.local_dim, self.time = n_sites, local_dim, time
        self.terms = tuple(terms)
        self._transfer = transfer
        self.name = name
        self.initial = _read_initial(initial, n_sites, local_dim, atol)
        self.sector = None if sector is None else [np.array(a, dtype=np.float64) for a in sector]
        self.equilibrium = None if equilibrium is None else np.array(equilibrium, dtype=np.float64)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_terms(cls, n_sites, terms, initial, *, local_dim=2, equilibrium=None,
                   name="lattice process", atol=1e-9):
        """A continuous-time process with generator the sum of local ``terms``.

        Parameters
        ----------
        n_sites : int
            ``L >= 1``.
        terms : sequence of (start, rates, counts)
            ``rates``, ``counts`` of shape ``(d^k, d^k)`` as in :class:`LocalTerm`; ``counts``
            may be ``None`` (nothing counted).
        initial : array_like (L, d) or list of MPS site arrays
            Product distribution (each row sums to 1) or an MPS summing to 1.
        local_dim : int
        equilibrium : array_like (L, d), optional
            Product measure of detailed balance, if any (checked term by term).
        """
        L = _check_int("n_sites", n_sites, 1)
        d = _check_int("local_dim", local_dim, 2)
        read = [_make_term(*(tuple(t) + (None,))[:3], d, L, i) for i, t in enumerate(terms)]
        if not read:
            raise ValueError("terms is empty: a continuous-time process needs at least one term")
        proc = cls(n_sites=L, local_dim=d, time="continuous", terms=read, initial=initial,
                   equilibrium=equilibrium, name=name, atol=atol)
        if proc.equilibrium is not None:
            if proc.equilibrium.shape != (L, d) or (proc.equilibrium <= 0).any():
                raise ValueError(f"equilibrium must be a positive (L, d) = ({L}, {d}) array")
        return proc

    @classmethod
    def from_transfer(cls, site_tensors, initial, *, name="discrete lattice process", atol=1e-9,
                      sector=None):
        """A discrete-time process given by its one-step transfer MPO.

        Parameters
        ----------
        site_tensors : sequence of ndarray, shapes (Dl, Dr, d, d)
            ``P_i[b, b', y_i, x_i] >= 0`` with ``Dl = 1`` at site 0 and ``Dr = 1`` at site
            ``L-1``; their product ``P[y, x]`` is the (sub-)stochastic one-step kernel.
        initial : array_like (L, d) or list of MPS site arrays
        sector : list of MPS site arrays, optional
            Indicator of the configurations sharing the initial state's conserved quantities,
            when the dynamics conserve them (see :meth:`final_vector`).
        """
        tensors = [np.array(t, dtype=np.float64) for t in site_tensors]
        if not tensors:
            raise ValueError("site_tensors is empty")
        d = tensors[0].shape[2]
        for i, t in enumerate(tensors):
            if t.ndim != 4 or t.shape[2:] != (d, d):
                raise ValueError(f"site_tensors[{i}] has shape {t.shape}; expected (Dl, Dr, {d}, {d})")
            if (t < 0).any() or not np.isfinite(t).all():
                raise ValueError(f"site_tensors[{i}] must be finite and >= 0")
        _check_bond_chain(tensors, "site_tensors", "site_tensors", right_axis=1)
        return cls(n_sites=len(tensors), local_dim=d, time="discrete", transfer=tensors,
                   initial=initial, name=name, atol=atol, sector=sector)

    def __repr__(self):
        return f"LatticeProcess({self.name!r}, L={self.n_sites}, d={self.local_dim}, {self.time})"

    def final_vector(self):
        """The closing vector ``<1|`` of ``Z_n = <1| P_s^n |p0>`` as an MPS.

        The all-ones product state, or, when the process declares a conserved ``sector`` (e.g.
        the number of vicious walkers), its indicator: the same ``Z_n`` because ``P_s`` never
        leaves the sector of ``p0``, but backward environments ``h_t`` then live in that sector.
        Without it ``h_t`` is dominated by other sectors (for walkers, fewer walkers survive far
        more easily: ``h`` of the 4-walker sector is ``~e^-28`` of the norm at ``L=17, n=60``),
        and double precision loses the entries that matter.
        """
        if self.sector is not None:
            return [a.copy() for a in self.sector]
        return _mps.product_mps(np.ones((self.n_sites, self.local_dim)))

    # ------------------------------------------------------------------ scalars
    @property
    def max_exit_rate_bound(self):
        """``sum_terms max_x (exit rate of the term) >= max_x (-W[x, x])``."""
        self._require_continuous("max_exit_rate_bound")
        return float(sum(t.max_exit_rate for t in self.terms))

    def default_dt(self):
        """``1 / max_exit_rate_bound``: the uniformisation step making ``P = I + dt W`` stochastic."""
        return 1.0 / self.max_exit_rate_bound

    def check_dt(self, dt):
        """``dt`` validated (``None`` -> :meth:`default_dt`)."""
        self._require_continuous("dt")
        if dt is None:
            return self.default_dt()
        bound = self.default_dt()
        if not isinstance(dt, numbers.Real) or not 0 < dt <= bound * (1 + 1e-12):
            raise ValueError(f"dt must be in (0, 1/max_exit_rate_bound] = (0, {bound:.6g}], got {dt!r}")
        return float(dt)

    def _require_continuous(self, what):
        if self.time != "continuous":
            raise ValueError(f"{what} does not apply to the discrete-time process {self.name!r} "
                             "(it has a transfer operator, not a generator)")

    @property
    def symmetrisable(self):
        """Whether ``W_s`` is symmetric after the similarity by ``equilibrium^(1/2)``, checked per term."""
        if self.time != "continuous" or self.equilibrium is None:
            return False
        return all(np.allclose(op, op.T, rtol=1e-12, atol=1e-14)  # two fields: no coincidence
                   for field in (0.0, 0.7) for op in self._symmetrised_terms(field))

    # ------------------------------------------------------------------ local operators
    def _grouped(self, s):
        """``{(start, k): summed tilted operator}``."""
        groups = {}
        for term in self.terms:
            key = (term.start, term.n_sites)
            op = term.tilted(s)
            groups[key] = groups[key] + op if key in groups else op
        return groups

    def _symmetrised_terms(self, s):
        out = []
        for (start, k), op in self._grouped(s).items():
            pi = np.ones(1)
            for j in range(k):  # local index with site `start` fastest -> kron order reversed
                pi = np.kron(self.equilibrium[start + j], pi)
            root = np.sqrt(pi)
            out.append(op * root[None, :] / root[:, None])
        return out

    # ------------------------------------------------------------------ MPOs
    def mpo_arrays(self, s=0.0, *, kind="transfer", dt=None, symmetrise=False, shift=0.0):
        """Site arrays ``(Dl, Dr, d, d)`` of the MPO of ``W_s`` or ``P_s``.

        Parameters
        ----------
        s : float
            Counting field.
        kind : {"generator", "transfer"}
            ``W_s`` or ``P_s = I + dt W_s``. A discrete-time process has only ``"transfer"``.
        dt : float, optional
            Uniformisation step (default :meth:`default_dt`).
        symmetrise : bool
            Apply the similarity ``pi^(-1/2) . pi^(1/2)`` (needs ``equilibrium``): the result is
            symmetric when :attr:`symmetrisable`.
        shift : float
            ``kind="generator"`` only: the MPO of ``W_s + shift * I`` (for residuals).

        Returns
        -------
        list of L ndarray
        """
        s = _check_s(s)
        if kind not in ("generator", "transfer"):
            raise ValueError(f"kind must be 'generator' or 'transfer', got {kind!r}")
        if self.time == "discrete":
            if kind != "transfer":
                self._require_continuous("kind='generator'")
            return [t.copy() for t in self._transfer]
        if symmetrise and self.equilibrium is None:
            raise ValueError(f"symmetrise=True needs an equilibrium measure; {self.name!r} has none")
        dt = self.check_dt(dt) if kind == "transfer" else None
        groups = self._grouped(s)
        if symmetrise:
            groups = dict(zip(groups, self._symmetrised_terms(s)))
        if kind == "transfer":
            return _automaton_mpo(self.n_sites, self.local_dim, groups, dt, 1.0)
        return _automaton_mpo(self.n_sites, self.local_dim, groups, 1.0, shift)

    def mpo(self, s=0.0, *, kind="transfer", dt=None, symmetrise=False):
        """:meth:`mpo_arrays` as a quimb ``MatrixProductOperator`` (upper index = output ``y``)."""
        return _mps.to_quimb_mpo(self.mpo_arrays(s, kind=kind, dt=dt, symmetrise=symmetrise))

    # ------------------------------------------------------------------ flat forms
    def _check_size(self, max_states):
        n = self.local_dim ** self.n_sites
        if n > max_states:
            raise ValueError(f"{self.name!r} has d^L = {self.local_dim}^{self.n_sites} = {n} states, "
                             f"more than max_states={max_states}; use the MPO methods")
        return n

    def generator(self, s=0.0, *, max_states=2 ** 20):
        """The tilted generator ``W_s`` as a sparse ``(d^L, d^L)`` CSR array, ``W[y, x]``.

        Built term by term from Kronecker products (independently of the MPO). Refused with a
        ``ValueError`` when ``d^L > max_states``.
        """
        s = _check_s(s)
        self._require_continuous("generator")
        n = self._check_size(max_states)
        d, L = self.local_dim, self.n_sites
        total = sp.csr_array((n, n))
        for (start, k), op in self._grouped(s).items():
            full = sp.kron(sp.kron(sp.identity(d ** (L - start - k)), sp.csr_array(op)),
                           sp.identity(d ** start))
            total = total + sp.csr_array(full)
        total = sp.csr_array(total)
        total.eliminate_zeros()
        return total

    def transfer_matrix(self, s=0.0, *, dt=None, max_states=2 ** 20):
        """``P_s[y, x]`` as a sparse ``(d^L, d^L)`` CSR array (discrete processes: the kernel)."""
        s = _check_s(s)
        n = self._check_size(max_states)
        if self.time == "discrete":
            return sp.csr_array(_mps.mpo_to_dense(self._transfer))
        dt = self.check_dt(dt)
        return sp.csr_array(sp.identity(n) + dt * self.generator(s, max_states=max_states))

    def initial_vector(self, *, max_states=2 ** 20):
        """The initial distribution as a flat ``(d^L,)`` vector."""
        self._check_size(max_states)
        return _mps.mps_to_dense(self.initial)

    def to_flat(self, n_steps, s=0.0, *, dt=None, max_states=2 ** 12):
        """The uniformised chain as a one-action :class:`tnmdp.FiniteMDP` with tilt rewards.

        Transitions ``P[x -> y] = P[y, x]``, reward ``R(x, y) = log(P_s[y, x] / P[y, x])``
        (``= -s k(x -> y)``; ``-inf`` for a forbidden event), horizon ``n_steps``, initial
        distribution :meth:`initial_vector`, so that ``tnmdp.log_partition(flat)`` is
        ``log Z_n(s)``. A discrete-time process's forbidden moves send their probability back to
        the current configuration with reward ``-inf``. When no reward is needed (``s = 0`` and
        nothing forbidden) the reward is a broadcast zero and ``max_states`` may be raised.

        Parameters
        ----------
        n_steps : int
        s : float
        dt : float, optional
        max_states : int
            Refuse larger lattices (the reward array is ``(d^L, 1, d^L)``); at ``s = 0`` the
            sparse limit is ``max(max_states, 2^20)``.
        """
        from ..model import FiniteMDP

        n_steps = _check_int("n_steps", n_steps, 1)
        s = _check_s(s)
        n = self.local_dim ** self.n_sites
        if self.time == "discrete":
            self._check_size(max_states)
            allowed = _mps.mpo_to_dense(self._transfer)  # [y, x]
            lost = 1.0 - allowed.sum(axis=0)
            if (lost < -1e-12).any():
                x = int(np.argmin(lost))
                raise ValueError(f"the transfer operator of {self.name!r} is not sub-stochastic: "
                                 f"column {x} sums to {1 - lost[x]:.12g}")
            lost = np.clip(lost, 0.0, None)  # rounding only: checked above
            p = allowed.T + np.diag(lost)
            rewards = np.zeros((n, 1, n))
            rewards[np.arange(n), 0, np.arange(n)] = np.where(lost > 0, -np.inf, 0.0)
            return FiniteMDP(sp.csr_array(p), rewards, n_steps, self.initial_vector())
        sparse_limit = max(max_states, 2 ** 20) if s == 0.0 else max_states  # no dense reward
        p = self.transfer_matrix(0.0, dt=dt, max_states=sparse_limit)
        if s == 0.0:
            return FiniteMDP(sp.csr_array(p.T), np.zeros((1, 1, 1)), n_steps, self.initial_vector())
        self._check_size(max_states)
        ps = self.transfer_matrix(s, dt=dt).toarray()
        dense = p.toarray()
        rewards = np.zeros((n, 1, n))
        y, x = np.nonzero(dense)
        with np.errstate(divide="ignore"):  # log 0 = -inf: a forbidden event
            rewards[x, 0, y] = np.log(ps[y, x]) - np.log(dense[y, x])
        return FiniteMDP(sp.csr_array(p.T), rewards, n_steps, self.initial_vector())


def _automaton_mpo(L, d, groups, scale, shift):
    """MPO of ``scale * sum of groups + shift * I`` (finite-state automaton, see module doc)."""
    eye = np.eye(d)
    pieces = {key: _split_operator(op, d, key[1]) for key, op in groups.items() if key[1] > 1}
    # channels of bond b (between sites b-1 and b), b = 0..L: 0 = ID, 1 = DONE, then term channels
    channels = []
    for b in range(L + 1):
        chans, offset = {}, 2
        for (start, k), ps in pieces.items():
            j = b - start  # pieces[j-1] has just been placed
            if 1 <= j <= k - 1:
                dim = ps[j - 1].shape[1]
                chans[(start, k)] = (offset, dim)
                offset += dim
        channels.append((chans, offset))
    arrays = []
    for i in range(L):
        (lch, dl), (rch, dr) = channels[i], channels[i + 1]
        w = np.zeros((dl, dr, d, d))
        w[0, 0] = eye
        w[1, 1] = eye
        for (start, k), op in groups.items():
            if k == 1 and start == i:
                w[0, 1] += op
        for (start, k), ps in pieces.items():
            j = i - start
            if not 0 <= j < k:
                continue
            piece = ps[j]
            if j == 0:
                lo = slice(0, 1)
            else:
                o, dim = lch[(start, k)]
                lo = slice(o, o + dim)
            if j == k - 1:
                ro = slice(1, 2)
            else:
                o, dim = rch[(start, k)]
                ro = slice(o, o + dim)
            w[lo, ro] += piece
        arrays.append(w)
    arrays[0] = arrays[0][0:1]
    arrays[-1] = shift * arrays[-1][:, 0:1] + scale * arrays[-1][:, 1:2]
    return arrays


def _read_initial(initial, L, d, atol):
    """An initial distribution as MPS site arrays (copied), validated."""
    if isinstance(initial, (list, tuple)) and initial and np.ndim(initial[0]) == 3:
        sites = [np.array(a, dtype=np.float64) for a in initial]
        if len(sites) != L:
            raise ValueError(f"initial MPS has {len(sites)} sites; the lattice has L={L}")
        for i, a in enumerate(sites):
            if a.shape[1] != d or not np.isfinite(a).all():
                raise ValueError(f"initial[{i}] has shape {a.shape}; expected finite (Dl, {d}, Dr)")
        _check_bond_chain(sites, "initial", "the initial MPS", right_axis=2)
        logv, sign = _mps.log_inner(_mps.product_mps(np.ones((L, d))), sites)
        if sign <= 0 or abs(np.exp(logv) - 1.0) > atol:
            total = sign * np.exp(logv)
            raise ValueError(f"initial MPS sums to {total:.12g}, not 1 (atol={atol:g})")
        return sites
    probs = np.array(initial, dtype=np.float64)
    if probs.shape != (L, d):
        raise ValueError(f"initial must be an (L, d) = ({L}, {d}) product distribution or a list "
                         f"of MPS site arrays, got shape {probs.shape}")
    if not np.isfinite(probs).all() or (probs < 0).any():
        i, x = np.argwhere(~(np.isfinite(probs) & (probs >= 0)))[0]
        raise ValueError(f"initial[{i}, {x}] is {probs[i, x]}; probabilities must be >= 0")
    sums = probs.sum(axis=1)
    bad = np.abs(sums - 1.0) > atol
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"initial[{i}] sums to {sums[i]:.12g}, not 1 (atol={atol:g})")
    return _mps.product_mps(probs)


def _check_bond_chain(arrays, name, what, *, right_axis):
    """Consecutive site arrays share their bonds (axis 0 on the left, ``right_axis`` on the
    right) and the chain ends in bonds of dimension 1; ``ValueError`` naming the site."""
    for i in range(1, len(arrays)):
        left, right = arrays[i].shape[0], arrays[i - 1].shape[right_axis]
        if left != right:
            raise ValueError(f"{name}[{i}] has left bond {left}, {name}[{i - 1}] right bond "
                             f"{right}")
    if arrays[0].shape[0] != 1 or arrays[-1].shape[right_axis] != 1:
        raise ValueError(f"the end bonds of {what} must have dimension 1")


def _check_int(name, value, minimum):
    if not isinstance(value, numbers.Integral) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def _check_s(s):
    if not isinstance(s, numbers.Real) or not np.isfinite(s):
        raise ValueError(f"s must be a finite real number, got {s!r}")
    return float(s)
