"""Scaled cumulant generating functions ``theta(s)`` by variational MPS methods.

``theta(s)`` is the largest real eigenvalue of the tilted generator ``W_s`` (see
:mod:`tnmdp.lattice.process`); the stationary Doob (conditioned) process has law
``rho(x) = l(x) r(x) / <l|r>`` with ``l``, ``r`` the left and right leading eigenvectors.

One two-site sweep engine (this module), two local eigensolvers, and quimb for comparison:

``"dmrg"`` (symmetric)
    When the untilted process obeys detailed balance with a product measure ``pi`` (independent
    spins, East, FA with an activity count), ``pi^(-1/2) W_s pi^(1/2)`` is symmetric with the same
    spectrum; two-site DMRG (White 1992; Bañuls & Garrahan, PRL 123, 200601 (2019)) on that
    symmetrised MPO with a Lanczos local solver (``eigsh``, ``which="LA"``, tol 1e-13; dense
    ``eigh`` for local spaces up to 64). Then ``l r = psi^2``.

``"arnoldi"`` (non-Hermitian)
    For TASEP, boundary-driven SSEP and any process without a symmetrising measure: the same
    two-site variational sweep (Gorissen, Lazarescu, Mallick & Vanderzande, PRL 109, 170601
    (2012); Helms, Ray & Chan, PRE 100, 022101 (2019)) on the right eigenvector. The MPS is kept
    in mixed-canonical form, so each local problem is the Galerkin projection of ``W_s`` onto an
    orthonormal basis; its eigenvalue of largest real part is found by ARPACK (``eigs``, tol
    1e-11, or dense ``eig``) starting from the current two-site tensor, and split by an SVD
    truncated to ``max_bond``. The left eigenvector (for densities) is the same computation on
    ``W_s^T``.

``"quimb"`` (symmetric, for comparison)
    quimb's ``DMRG2`` on the symmetrised MPO. In the East inactive phase the two top levels are
    degenerate to < 1e-8 and ``DMRG2`` fluctuates between them (measured: error ~1e-7 at
    ``L = 8``, not converged in 20 sweeps), so it is not the default.

Stopping rule (both methods): the bond dimension runs through ``8, 16, ..., max_bond``; at each
bond dimension, full sweeps are repeated until ``theta`` changes by less than
``tol * max(1, |theta|)`` between sweeps (at most ``max_sweeps`` sweeps per bond dimension).
``converged`` is true when the last bond dimension met that rule. ``residual`` is
``||(W_s - theta) r|| / ||r||`` computed exactly with the MPO (no truncation), an independent
a-posteriori check; ``bond_history`` holds ``theta`` at the end of each bond dimension, so
convergence in ``chi`` is visible (``theta(chi) - theta(2 chi)``).
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse.linalg as spla

from . import mps as _mps
from .process import LatticeProcess

__all__ = ["ScgfResult", "scgf"]


@dataclass(frozen=True)
class ScgfResult:
    """Result of :func:`scgf`.

    Attributes
    ----------
    value : float
        ``theta(s)``.
    max_bond_used : int
    converged : bool
        The stopping rule was met at the largest bond dimension.
    residual : float
        ``||(W_s - theta) r||_2 / ||r||_2`` (exact contraction of the MPO with the state).
    method : {"dmrg", "arnoldi", "quimb", "exact"}
    n_sweeps : int
        Total sweeps.
    bond_history : tuple of (int, float)
        ``(chi, theta)`` at the end of each bond dimension of the schedule.
    densities : ndarray, shape (L,) or None
        ``<n_i>`` in the stationary Doob process (``densities=True``).
    message : str
    """

    value: float
    max_bond_used: int
    converged: bool
    residual: float
    method: str
    n_sweeps: int
    bond_history: tuple
    densities: np.ndarray | None = field(default=None, repr=False)
    message: str = ""


def scgf(process, s, *, max_bond=64, tol=1e-10, method="auto", max_sweeps=30, densities=False,
         cutoff=1e-14, rng=None):
    """``theta(s)``: the leading eigenvalue of the tilted generator, by a variational MPS.

    Parameters
    ----------
    process : LatticeProcess
        Continuous time.
    s : float
        Counting field.
    max_bond : int
        Largest bond dimension.
    tol : float
        Relative change of ``theta`` between sweeps that stops a bond dimension.
    method : {"auto", "dmrg", "arnoldi", "quimb"}
        ``"auto"``: ``"dmrg"`` if :attr:`LatticeProcess.symmetrisable`, else ``"arnoldi"``
        (see the module docstring).
    max_sweeps : int
        Sweeps per bond dimension.
    densities : bool
        Also compute the stationary Doob densities ``<n_i>``.
    cutoff : float
        Relative singular-value cutoff of the two-site splits.
    rng : numpy.random.Generator or int or None
        Seeds the initial state of ``"arnoldi"``.

    Returns
    -------
    ScgfResult

    Notes
    -----
    Cost per sweep ``O(L chi^3 Dw d^2)`` times the number of local eigensolver iterations.
    """
    if not isinstance(process, LatticeProcess):
        raise TypeError(f"process must be a LatticeProcess, got {type(process).__name__}")
    process._require_continuous("scgf")
    if not isinstance(s, numbers.Real) or not np.isfinite(s):
        raise ValueError(f"s must be a finite real number, got {s!r}")
    if not isinstance(max_bond, numbers.Integral) or isinstance(max_bond, bool) or max_bond < 1:
        raise ValueError(f"max_bond must be an int >= 1, got {max_bond!r}")
    if not isinstance(tol, numbers.Real) or not tol > 0:
        raise ValueError(f"tol must be a positive number, got {tol!r}")
    if not isinstance(max_sweeps, numbers.Integral) or max_sweeps < 1:
        raise ValueError(f"max_sweeps must be an int >= 1, got {max_sweeps!r}")
    if method not in ("auto", "dmrg", "arnoldi", "quimb"):
        raise ValueError(f"method must be 'auto', 'dmrg', 'arnoldi' or 'quimb', got {method!r}")
    if method == "auto":
        method = "dmrg" if process.symmetrisable else "arnoldi"
    if method in ("dmrg", "quimb") and not process.symmetrisable:
        raise ValueError(f"method={method!r} needs a symmetrisable process; {process.name!r} is "
                         "not (use method='arnoldi')")
    s = float(s)
    schedule = _schedule(max_bond)
    if process.n_sites == 1:
        return _single_site(process, s, densities)
    if method == "quimb":
        return _scgf_quimb(process, s, schedule, tol, max_sweeps, densities, cutoff)
    rng = np.random.default_rng(rng)
    symmetric = method == "dmrg"
    mpo = process.mpo_arrays(s, kind="generator", symmetrise=symmetric)
    right = _sweeps(mpo, schedule, tol, max_sweeps, cutoff, rng, symmetric)
    theta, state = right["value"], right["mps"]
    number = np.diag(np.arange(process.local_dim, dtype=np.float64))
    dens = None
    if densities and symmetric:  # l r = psi^2
        dens = _mps.local_expectations(state, state, number)
    elif densities:
        left = _sweeps([w.transpose(0, 1, 3, 2) for w in mpo], schedule, tol, max_sweeps,
                       cutoff, rng, False)
        dens = _mps.local_expectations(left["mps"], state, number)
    shifted = process.mpo_arrays(s, kind="generator", symmetrise=symmetric, shift=-theta)
    residual = _residual(shifted, state)
    return ScgfResult(theta, _mps.max_bond_of(state), right["converged"], residual, method,
                      right["n_sweeps"], tuple(right["history"]), dens, right["message"])


def _schedule(max_bond):
    chis, chi = [], 8
    while chi < max_bond:
        chis.append(chi)
        chi *= 2
    return chis + [int(max_bond)]


def _single_site(process, s, densities):
    w = process.generator(s).toarray()
    vals, vecs = np.linalg.eig(w)
    k = int(np.argmax(vals.real))
    lvals, lvecs = np.linalg.eig(w.T)
    kl = int(np.argmax(lvals.real))
    r, l = vecs[:, k].real, lvecs[:, kl].real
    dens = np.array([(l * r)[1] / (l @ r)]) if densities else None
    return ScgfResult(float(vals[k].real), 1, True, float(np.linalg.norm(w @ r - vals[k].real * r)
                                                          / np.linalg.norm(r)),
                      "exact", 0, ((1, float(vals[k].real)),), dens, "one site: exact")


def _residual(shifted, state):
    """``||(W_s - theta) psi|| / ||psi||`` by an exact application of the shifted MPO."""
    num = _mps.apply_mpo(shifted, state).log_norm
    den = _mps.compress(state).log_norm
    return float(np.exp(num - den)) if np.isfinite(num) else 0.0


# ---------------------------------------------------------------------------- quimb DMRG2
def _scgf_quimb(process, s, schedule, tol, max_sweeps, densities, cutoff):
    import quimb.tensor as qtn

    ham = process.mpo(s, kind="generator", symmetrise=True)
    history, n_sweeps, p0, converged, theta = [], 0, None, False, None
    for chi in schedule:
        dmrg = qtn.DMRG2(ham, which="LA", bond_dims=[chi], cutoffs=cutoff, p0=p0)
        converged = bool(dmrg.solve(tol=tol, max_sweeps=max_sweeps, verbosity=0))
        n_sweeps += len(dmrg.energies)
        theta = float(np.real(dmrg.energy))
        history.append((chi, theta))
        p0 = dmrg.state
    state = _from_quimb(p0)
    dens = None
    if densities:
        dens = _mps.local_expectations(state, state, np.diag([0.0, 1.0]))
    # residual of the symmetrised problem (same spectrum; r = pi^(1/2) psi)
    residual = _residual(process.mpo_arrays(s, kind="generator", symmetrise=True, shift=-theta),
                         state)
    message = "converged" if converged else f"not converged in {max_sweeps} sweeps at chi={chi}"
    return ScgfResult(theta, _mps.max_bond_of(state), converged, residual, "quimb", n_sweeps,
                      tuple(history), dens, message)


def _from_quimb(state):
    """quimb MPS -> list of (Dl, d, Dr) arrays."""
    L = state.L
    out = []
    for i in range(L):
        t = state[i]
        left = [state.bond(i - 1, i)] if i > 0 else []
        right = [state.bond(i, i + 1)] if i < L - 1 else []
        arr = np.asarray(t.transpose(*(left + [state.site_ind(i)] + right)).data).real
        if i == 0:
            arr = arr[None]
        if i == L - 1:
            arr = arr[..., None]
        out.append(arr)
    return out


# ---------------------------------------------------------------------------- two-site sweeps
def _right_canonical(sites):
    """Right-canonical copy (sites 1..L-1 right-isometries, norm on site 0)."""
    sites = [a.copy() for a in sites]
    for i in range(len(sites) - 1, 0, -1):
        dl, d, dr = sites[i].shape
        q, r = np.linalg.qr(sites[i].reshape(dl, d * dr).T)
        sites[i] = q.T.reshape(-1, d, dr)
        sites[i - 1] = np.tensordot(sites[i - 1], r.T, axes=(2, 0))
    sites[0] /= np.linalg.norm(sites[0])
    return sites


def _grow_left(env, a, w):
    """``env'[a', m', b'] = sum env[a, m, b] A[a, y, a'] W[m, m', y, x] A[b, x, b']``."""
    t = np.tensordot(env, a, axes=(0, 0))             # m, b, y, a'
    t = np.tensordot(t, w, axes=([0, 2], [0, 2]))     # b, a', m', x
    t = np.tensordot(t, a, axes=([0, 3], [0, 1]))     # a', m', b'
    return t


def _grow_right(env, a, w):
    """``env'[a, m, b] = sum A[a, y, a'] W[m, m', y, x] A[b, x, b'] env[a', m', b']``."""
    t = np.tensordot(a, env, axes=(2, 0))             # a, y, m', b'
    t = np.tensordot(t, w, axes=([1, 2], [2, 1]))     # a, b', m, x
    t = np.tensordot(t, a, axes=([1, 3], [2, 1]))     # a, m, b
    return t


def _local_operator(left, w1, w2, right):
    """The two-site effective operator: a matvec on ``theta[b, x1, x2, b']`` and a dense builder."""
    shape = (left.shape[2], w1.shape[3], w2.shape[3], right.shape[2])

    def matvec(v):
        t = np.tensordot(left, v.reshape(shape), axes=(2, 0))   # a, m, x1, x2, b'
        t = np.tensordot(t, w1, axes=([1, 2], [0, 3]))           # a, x2, b', n, y1
        t = np.tensordot(t, w2, axes=([1, 3], [3, 0]))           # a, b', y1, o, y2
        t = np.tensordot(t, right, axes=([1, 3], [2, 1]))        # a, y1, y2, a'
        return t.ravel()

    def dense():
        h = np.einsum("amb,mnyx,nozw,coe->ayzcbxwe", left, w1, w2, right, optimize=True)
        n = int(np.prod(shape))
        return h.reshape(n, n)

    return matvec, dense, shape


def _leading(matvec, dense, n, v0, symmetric):
    """Eigenpair of largest real part of the local operator (real part of the vector)."""
    if n <= 64:
        dense = dense()
        vals, vecs = np.linalg.eigh(dense) if symmetric else np.linalg.eig(dense)
    else:
        op = spla.LinearOperator((n, n), matvec=matvec, dtype=np.float64)
        solver = spla.eigsh if symmetric else spla.eigs
        vals, vecs = solver(op, k=1, which="LA" if symmetric else "LR", v0=v0,
                            tol=1e-13 if symmetric else 1e-11,
                            maxiter=5000)
    k = int(np.argmax(vals.real))
    vec = vecs[:, k]
    vec = vec * np.exp(-1j * np.angle(vec[np.argmax(np.abs(vec))]))  # fix the phase, then real
    vec = vec.real
    if vec.sum() < 0:
        vec = -vec
    return float(vals[k].real), vec / np.linalg.norm(vec)


def _sweeps(mpo, schedule, tol, max_sweeps, cutoff, rng, symmetric):
    """Two-site variational sweeps for the right leading eigenvector of the MPO."""
    L, d = len(mpo), mpo[0].shape[2]
    sites = _right_canonical([rng.random((1 if i == 0 else 2, d, 1 if i == L - 1 else 2)) + 0.5
                              for i in range(L)])
    history, n_sweeps, theta, converged = [], 0, None, False
    message = ""
    for chi in schedule:
        rights = [None] * (L + 1)
        rights[L] = np.ones((1, 1, 1))
        for i in range(L - 1, 0, -1):
            rights[i] = _grow_right(rights[i + 1], sites[i], mpo[i])
        lefts = [None] * (L + 1)
        lefts[0] = np.ones((1, 1, 1))
        previous, converged = None, False
        for _ in range(max_sweeps):
            n_sweeps += 1
            # right sweep
            for i in range(L - 1):
                theta = _update(sites, lefts, rights, mpo, i, chi, cutoff, "right", symmetric)
            # left sweep
            for i in range(L - 2, -1, -1):
                theta = _update(sites, lefts, rights, mpo, i, chi, cutoff, "left", symmetric)
            if previous is not None and abs(theta - previous) <= tol * max(1.0, abs(theta)):
                converged = True
                break
            previous = theta
        history.append((chi, theta))
        if not converged:
            message = f"not converged in {max_sweeps} sweeps at chi={chi}"
    return {"value": float(theta), "mps": sites, "converged": converged, "n_sweeps": n_sweeps,
            "history": history, "message": message or "converged"}


def _update(sites, lefts, rights, mpo, i, chi, cutoff, direction, symmetric):
    """Optimise sites ``i, i+1``; move the orthogonality centre in ``direction``."""
    two = np.tensordot(sites[i], sites[i + 1], axes=(2, 0))  # b, x1, x2, b'
    matvec, dense, shape = _local_operator(lefts[i], mpo[i], mpo[i + 1], rights[i + 2])
    theta, vec = _leading(matvec, dense, int(np.prod(shape)), two.ravel(), symmetric)
    dl, d1, d2, dr = shape
    u, sv, vh = np.linalg.svd(vec.reshape(dl * d1, d2 * dr), full_matrices=False)
    k = max(1, min(chi, int((sv > cutoff * sv[0]).sum())))
    u, sv, vh = u[:, :k], sv[:k] / np.linalg.norm(sv[:k]), vh[:k]
    if direction == "right":
        sites[i] = u.reshape(dl, d1, k)
        sites[i + 1] = (sv[:, None] * vh).reshape(k, d2, dr)
        lefts[i + 1] = _grow_left(lefts[i], sites[i], mpo[i])
    else:
        sites[i] = (u * sv).reshape(dl, d1, k)
        sites[i + 1] = vh.reshape(k, d2, dr)
        rights[i + 1] = _grow_right(rights[i + 2], sites[i + 1], mpo[i + 1])
    return theta
