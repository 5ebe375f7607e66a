"""Transfer operator of a continuing chain: long-time large deviations and the stationary Doob
process.

Under a reference policy ``pi0`` the tilted network of DESIGN.md repeats one site for ever; its
transfer matrix is

    W[s, s'] = sum_a pi0(a|s) P(s'|s, a) E[exp(r / tau) | s, a, s'],

so that ``Z_T = E[exp(G_T / tau)] = initial^T W^T 1`` and, for an irreducible ``W`` with Perron
root ``lambda``, ``log Z_T = T log lambda + c + o(1)``: the scaled cumulant generating function
(SCGF) ``lim log Z_T / T = log lambda`` with an ``O(1/T)`` correction ``c / T``,
``c = log((initial . r)(l . 1) / (l . r))`` for right and left Perron vectors ``r``, ``l``
(Touchette 2009, Sect. 3; Chetrite & Touchette 2015 for the Doob transform).

The Perron root is the largest *real* eigenvalue (periodic chains have ``-lambda`` and other
eigenvalues of the same modulus). It is found by dense LAPACK for small chains; for large
ones by shifted power steps when the chain mixes fast, else by ARPACK
(``scipy.sparse.linalg.eigs``: shift-invert just above the root when ``W`` is banded -- every
other eigenvalue has a smaller real part, so the root is the nearest -- otherwise Arnoldi for
the largest real part); the result is then certified by the
Collatz-Wielandt bounds ``min_s (W x)_s / x_s <= lambda <= max_s (W x)_s / x_s`` for the positive
vector ``x``, refined by power iteration on ``W + lambda I`` (primitive even when ``W`` is
periodic) when ARPACK does not converge or its bracket is loose. Irreducibility comes from
networkx; a reducible ``W`` is split into strongly connected components, and its Perron root
is the largest of theirs, which must be attained by one component only (else it is not simple
and ``ValueError`` is raised).

The stationary Doob process ``P^h(s'|s) = W[s, s'] r(s') / (lambda r(s))`` is the reference
chain conditioned on an atypical time-averaged reward; its stationary law is ``l * r``; its
stationary mean reward (current) equals ``d log lambda / d(1/tau)``.
"""

from __future__ import annotations

import numbers

import numpy as np
import scipy.linalg as la
import scipy.sparse as sp
import scipy.sparse.linalg as spla

__all__ = ["scgf", "stationary_doob", "tilted_transfer", "perron_root", "PerronRoot"]

#: Chains up to this many states are diagonalised densely.
DENSE_STATES = 400
_RTOL = 1e-11


class PerronRoot:
    """Perron root and vectors of a non-negative irreducible matrix.

    Attributes
    ----------
    value : float
        ``lambda``, certified within ``[lower, upper]`` (Collatz-Wielandt).
    lower, upper : float
    right, left : ndarray, shape (n,)
        Positive Perron vectors (``W r = lambda r``, ``l W = lambda l``), ``max = 1``.
    method : str
    """

    __slots__ = ("value", "lower", "upper", "right", "left", "method")

    def __init__(self, value, lower, upper, right, left, method):
        self.value, self.lower, self.upper = value, lower, upper
        self.right, self.left, self.method = right, left, method

    def __repr__(self):
        return (f"PerronRoot(value={self.value:.15g}, bracket=[{self.lower:.15g}, "
                f"{self.upper:.15g}], method={self.method!r})")


def _bracket(W, x):
    """Collatz-Wielandt bracket of a positive ``x``: (lower, upper, W x)."""
    y = W @ x
    ratio = y / x
    return float(ratio.min()), float(ratio.max()), y


def _refine(W, x, maxiter=20000):
    """Power iteration on ``W + sigma I`` from a positive ``x``; returns (x, lo, hi, steps)."""
    lo, hi, y = _bracket(W, x)
    sigma = hi
    for k in range(maxiter):
        if hi - lo <= _RTOL * hi:
            return x, lo, hi, k
        x = y + sigma * x
        x /= x.max()
        x = np.maximum(x, np.finfo(float).tiny)
        lo, hi, y = _bracket(W, x)
    return x, lo, hi, maxiter


def _positive(vec):
    """A real Perron vector from an eigensolver's output (sign fixed), or ``None``."""
    vec = np.real(vec)
    vec = vec * np.sign(vec[np.argmax(np.abs(vec))])
    vec = vec / vec.max()
    return vec if (vec > 0).all() else None


def _one_side(W, dense):
    """Right Perron vector and certified root of an irreducible ``W``."""
    n = W.shape[0]
    if dense is not None:
        vals, vecs = la.eig(dense)
        x, method = _positive(vecs[:, int(np.argmax(vals.real))]), "LAPACK"
    else:  # fast-mixing chains converge in a few power steps
        x, lo, hi, steps = _refine(W, np.ones(n), maxiter=100)
        method = "power iteration"
        if hi - lo > _RTOL * hi:
            x = _arpack(W, lo, hi)
            method = "ARPACK"
    if x is None:
        x, method = np.ones(n), "power iteration"
    x, lo, hi, steps = _refine(W, x)
    if steps:
        method += f" + {steps} power steps"
    return x, lo, hi, method


def _arpack(W, lo, hi):
    """ARPACK's Perron vector: shift-invert just above the root when a sparse LU of
    ``W - sigma I`` is affordable (banded chains), else Arnoldi for the largest real part;
    ``None`` if it does not converge."""
    n = W.shape[0]
    rows = np.repeat(np.arange(n), np.diff(W.indptr))
    width = int(np.abs(W.indices - rows).max()) if W.nnz else 0
    try:
        if width * n <= 4 * 10**7:
            # every eigenvalue has real part <= lambda < sigma: lambda is the nearest to sigma
            sigma = hi + max(hi - lo, 1e-12 * hi)
            _, vecs = spla.eigs(W, k=1, sigma=sigma, which="LM", tol=1e-14, maxiter=1000)
        else:
            _, vecs = spla.eigs(W, k=1, which="LR", tol=1e-14, maxiter=300,
                                ncv=min(n - 1, 40))
    except (spla.ArpackNoConvergence, spla.ArpackError, RuntimeError):
        return None
    return _positive(vecs[:, 0])


def perron_root(W):
    """Certified Perron root and vectors of an irreducible non-negative ``W`` (n, n).

    Parameters
    ----------
    W : ndarray or sparse matrix, shape (n, n)
        Non-negative and irreducible (checked by the caller, :func:`scgf`).

    Returns
    -------
    PerronRoot

    Raises
    ------
    ValueError
        If the Collatz-Wielandt bracket cannot be brought within a relative ``1e-11``.

    Notes
    -----
    Dense LAPACK ``O(n^3)`` for ``n <= 400``; otherwise ARPACK, ``O(nnz)`` per Arnoldi step;
    then ``O(nnz)`` per power step of the refinement.
    """
    n = W.shape[0]
    dense = None
    if n <= DENSE_STATES:
        dense = W.toarray() if sp.issparse(W) else np.asarray(W)
    Wc = sp.csr_array(W) if sp.issparse(W) else np.asarray(W)
    right, lo, hi, method = _one_side(Wc, dense)
    WT = Wc.T.tocsr() if sp.issparse(Wc) else Wc.T
    left, lo2, hi2, _ = _one_side(WT, None if dense is None else dense.T)
    lo, hi = max(lo, lo2), min(hi, hi2)
    if not hi - lo <= 10 * _RTOL * hi:
        raise ValueError(f"the Perron root could not be certified: Collatz-Wielandt bracket "
                         f"[{lo:.15g}, {hi:.15g}] after ARPACK and power iteration")
    return PerronRoot(0.5 * (lo + hi), lo, hi, right, left, method)


def _check(mdp, temperature, reference_policy, what):
    from .stationary import as_stationary_policy, check_continuing

    check_continuing(mdp, what)
    if mdp.discount != 1:
        raise ValueError(f"{what} needs discount == 1 (the time-averaged reward of a continuing "
                         f"chain); mdp.discount is {mdp.discount}")
    if isinstance(temperature, bool) or not isinstance(temperature, numbers.Real) or not (
            np.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}")
    if reference_policy is None:
        return float(temperature), np.full((mdp.n_states, mdp.n_actions), 1.0 / mdp.n_actions)
    pol = as_stationary_policy(reference_policy, mdp, name="reference_policy")
    return float(temperature), np.asarray(pol)


def tilted_transfer(mdp, *, temperature=1.0, reference_policy=None):
    """The transfer matrix ``W`` of the tilted network, scaled: ``(W_scaled, shift)``.

    Returns
    -------
    W : csr_array, shape (S, S)
        ``exp(-shift) sum_a pi0(a|s) P(s'|s,a) E[exp(r/tau) | s,a,s']`` (``-inf`` rewards give
        zero weight).
    shift : float
        ``max finite reward / tau``, so that ``log lambda(W_true) = log lambda(W) + shift``.
    """
    return _tilted(mdp, *_check(mdp, temperature, reference_policy, "tilted_transfer"))


def _tilted(mdp, temperature, pi0):
    S, A = mdp.n_states, mdp.n_actions
    rewards = mdp.rewards
    law = mdp.reward_power_law(0)
    finite = law[1] if law is not None else rewards[np.isfinite(rewards)]
    shift = float(finite.max(initial=0.0)) / temperature if finite.size else 0.0
    with np.errstate(over="raise"):
        weighted = mdp.weighted_transitions(0, lambda r: np.exp(r / temperature - shift))
    weights = sp.csr_array((pi0.ravel(), np.arange(S * A), np.arange(0, S * A + 1, A)),
                           shape=(S, S * A))
    W = sp.csr_array(weights @ sp.csr_array(weighted))
    W.eliminate_zeros()
    return W, shift


def _dominant(W):
    """Perron root of a possibly reducible ``W``: (PerronRoot or None, class, classes)."""
    from .chains import _graph

    import networkx as nx

    comps = [np.array(sorted(c)) for c in nx.strongly_connected_components(_graph(W))]
    if len(comps) == 1:
        return perron_root(W), comps[0], comps
    roots = []
    for comp in comps:
        sub = W[comp][:, comp]
        roots.append(perron_root(sub).value if sub.nnz else 0.0)
    roots = np.array(roots)
    best = float(roots.max())
    if best == 0.0:
        return None, None, comps
    top = np.flatnonzero(roots >= best * (1 - 1e-9))
    if top.size > 1:
        names = ", ".join(str(comps[i].tolist()[:5]) for i in top[:3])
        raise ValueError(f"the tilted chain is reducible and its Perron root {best:.12g} is "
                         f"attained by {top.size} strongly connected components ({names} ...): "
                         "it is not simple, so the SCGF and the Doob transform are not defined "
                         "by one eigenvector")
    return perron_root(W[comps[top[0]]][:, comps[top[0]]]), comps[top[0]], comps


def scgf(mdp, temperature=1.0, reference_policy=None):
    """Scaled cumulant generating function ``lim_T log E_pi0[exp(G_T / tau)] / T = log lambda``.

    Parameters
    ----------
    mdp : FiniteMDP
        Continuing (``horizon=None``) with ``discount == 1``.
    temperature : float
        ``tau > 0`` (the counting field is ``1 / tau``).
    reference_policy : StationaryPolicy or array_like (S, A), optional
        ``pi0``; default uniform.

    Returns
    -------
    float
        ``log lambda`` of :func:`tilted_transfer`; ``-inf`` when every long path meets a
        forbidden (``-inf``) reward.

    Raises
    ------
    ValueError
        ``discount != 1``; a reducible chain whose Perron root is not simple; a root that
        cannot be certified.

    Notes
    -----
    Irreducibility by networkx ``O(S + nnz)``; the root by ARPACK (dense LAPACK for
    ``S <= 400``) certified by Collatz-Wielandt bounds (module docstring).

    Examples
    --------
    >>> import numpy as np, tnmdp
    >>> S, p = 5, 0.3                       # random walk on a ring, +1 right, -1 left
    >>> P = np.zeros((S, 1, S)); R = np.zeros((S, 1, S))
    >>> for s in range(S):
    ...     P[s, 0, (s + 1) % S], P[s, 0, (s - 1) % S] = p, 1 - p
    ...     R[s, 0, (s + 1) % S], R[s, 0, (s - 1) % S] = 1, -1
    >>> mdp = tnmdp.FiniteMDP(P, R, None, 0)
    >>> bool(np.isclose(tnmdp.scgf(mdp), np.log(p * np.e + (1 - p) / np.e), rtol=0, atol=1e-12))
    True
    """
    W, shift = _tilted(mdp, *_check(mdp, temperature, reference_policy, "scgf"))
    root, _, _ = _dominant(W)
    if root is None:
        return -np.inf
    return float(np.log(root.value) + shift)


def stationary_doob(mdp, temperature=1.0, reference_policy=None):
    """The stationary Doob process: the reference chain conditioned on its time-averaged reward.

    Parameters
    ----------
    mdp, temperature, reference_policy
        As for :func:`scgf`; the tilted chain must be irreducible.

    Returns
    -------
    FiniteMDP
        Continuing, one action, ``discount == 1``: transitions
        ``P^h(s'|s) = W[s, s'] r(s') / (lambda r(s))``, initial distribution the stationary law
        ``l * r / (l . r)``; rewards the MDP's own when they depend on neither the action nor a
        stochastic reward law, otherwise the conditional mean under the tilted law (dense
        ``(S, 1, S)``: ``S <= 5000``). Its stationary current -- e.g.
        ``tnmdp.evaluate(doob, [0] * S)``, the gain -- equals ``d scgf / d(1/tau)``.
    """
    from .model import FiniteMDP

    temperature, pi0 = _check(mdp, temperature, reference_policy, "stationary_doob")
    W, _ = _tilted(mdp, temperature, pi0)
    root, comp, comps = _dominant(W)
    if root is None or len(comps) > 1:
        raise ValueError("stationary_doob needs an irreducible tilted chain; this one has "
                         f"{len(comps)} strongly connected components")
    S = mdp.n_states
    r, lam = root.right, root.value
    rows = np.repeat(np.arange(S), np.diff(W.indptr))
    data = W.data * r[W.indices] / (lam * r[rows])
    sums = np.bincount(rows, weights=data, minlength=S)
    off = np.abs(sums - 1.0)
    if off.max() > 1e-8:  # the certified bracket makes this rounding-level
        s = int(np.argmax(off))
        raise ValueError(f"Doob kernel row {s} sums to {sums[s]:.12g}: the Perron vector is not "
                         f"accurate enough (bracket [{root.lower:.15g}, {root.upper:.15g}])")
    data /= sums[rows]  # remove the rounding (<= 1e-8) so that rows sum to 1
    P = sp.csr_array((data, W.indices.copy(), W.indptr.copy()), shape=(S, S))
    mu = root.left * r
    mu /= mu.sum()
    simple = mdp.rewards.shape[2] == 1 and mdp.reward_power_law(0) is None
    if simple:
        rewards = mdp.rewards
    else:
        if S > 5000:
            raise ValueError(f"stationary_doob with action-dependent or stochastic rewards builds "
                             f"dense (S, 1, S) rewards; S = {S} exceeds 5000")
        A = mdp.n_actions
        finite = mdp.rewards[np.isfinite(mdp.rewards)]
        top = float(finite.max(initial=0.0)) / temperature
        tilt = mdp.weighted_transitions(0, lambda x: np.exp(x / temperature - top))
        mean = mdp.weighted_transitions(
            0, lambda x: np.where(np.isfinite(x), x, 0.0) * np.exp(x / temperature - top))
        dense_w = sp.csr_array(tilt).toarray().reshape(S, A, S)
        dense_m = sp.csr_array(mean).toarray().reshape(S, A, S)
        num = np.einsum("sa,sat->st", pi0, dense_m)
        den = np.einsum("sa,sat->st", pi0, dense_w)
        with np.errstate(invalid="ignore", divide="ignore"):
            rewards = np.where(den > 0, num / den, 0.0)[:, None, :]
    return FiniteMDP(P, rewards, None, mu, discount=1.0, atol=1e-8)
