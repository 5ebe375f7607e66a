"""PARAFAC (CP) low-rank policies and critics over a discretised state, as tensor networks.

Following Rozada, Paternain & Marques, "Multilinear tensor low-rank approximation for
policy-gradient methods in reinforcement learning" (arXiv 2501.04879), a state with ``D``
components is discretised to a multi-index ``(i_0, ..., i_{D-1})`` and the policy parameters form a
tensor ``Theta[i_0, ..., i_{D-1}, a]`` held in PARAFAC form::

    Theta[i_0, ..., i_{D-1}, a] = sum_k  W[a, k]  prod_d G_d[i_d, k]

    G_0        G_1   ...   G_{D-1}      W            one shared rank index k (a hyperedge):
     |s0        |s1          |s{D-1}    |a           K * (sum_d N_d + A) parameters instead
     +----------+-----k------+----------+            of A * prod_d N_d

* ``kind="softmax"``: ``pi(a|s) = softmax_a Theta[i(s), a]`` over ``A`` discrete actions.
* ``kind="gaussian"``: ``pi(.|s) = N(mu(s), diag(sigma^2))`` with ``mu_a(s) = Theta[i(s), a]``
  over an ``A``-dimensional continuous action; for ``A = 1`` the action factor ``W`` is fixed to
  ones (as in the authors' code) and ``log sigma`` is one learned number per action dimension,
  clamped to ``log_std_bounds`` (its score passes at the bounds themselves, as ``torch.clamp``'s
  gradient does). With ``action_bounds`` the policy is the clipped Gaussian
  ``clip(N(mu, sigma^2), low, high)`` and its score that of the clipped action (a deviation from
  the authors, who score the unclipped draw; off by default). With ``mean_bounds`` the mean is
  squashed into ``(low, high)``: ``mu = m + h tanh((Theta - m) / h)``, ``m, h`` the bounds'
  midpoint and half-width (slope one at ``m``; also a deviation, off by default).

The critic is the same model with one output and no action factor:
``V(s) = sum_k prod_d H_d[i_d, k]``. :meth:`ParafacCritic.fit` runs L-BFGS on all factors, or with
``block=d`` on ``H_d`` alone (the authors' block-coordinate critic update; see
``tnmdp.adapters.parafac_learn``).

Score functions factorise (the paper's Eqs. 12--14): with ``u = d log pi / d Theta[i(s), :]`` (the
distribution part) the derivative by ``G_d[i, k]`` is ``1[i = i_d] (u . W[:, k])
prod_{d' != d} G_{d'}[i_{d'}, k]`` -- only ``K * D`` state-factor entries are non-zero per sample.
:class:`ParafacScore` keeps exactly those rows, and gradients, Fisher-vector products and dense
Jacobians are formed from them in ``O(n K (D + A))``.

:meth:`ParafacPolicy.to_policy` returns the tabular ``(T, S, A)`` policy of a softmax model on a
finite MDP whose state index is the C-order multi-index over the modes, so ``tnmdp.evaluate``
gives its exact expected return by contraction.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np
import scipy.optimize
import scipy.special

from ..model import as_rng
from ._compat import UNSET, deprecated_property, renamed_argument
from .cp import _check_positive_int, cp_full, cp_network, row_products

__all__ = ["Discretiser", "ParafacPolicy", "ParafacCritic", "ParafacScore"]


def _check_state_shape(state_shape, name="state_shape"):
    if isinstance(state_shape, numbers.Integral):
        state_shape = (state_shape,)
    try:
        sizes = tuple(state_shape)
    except TypeError:
        raise TypeError(f"{name} must be a sequence of ints, got {state_shape!r}") from None
    if not sizes:
        raise ValueError(f"{name} must hold at least one mode, got ()")
    return tuple(_check_positive_int(f"{name}[{d}]", n) for d, n in enumerate(sizes))


def _required(function, **arguments):
    """The values of required arguments (``UNSET`` when not passed), in order."""
    missing = [name for name, value in arguments.items() if value is UNSET]
    if missing:
        raise TypeError(f"{function}() missing required argument(s): {', '.join(missing)}")
    return list(arguments.values())


# ---------------------------------------------------------------------------------- discretiser
class Discretiser:
    """Map continuous states to grid multi-indices with the paper's rounding rule.

    ``i_d = rint((clip(x_d, lo_d, hi_d) - lo_d) / (hi_d - lo_d) * (n_d - 1))``: the nearest of
    ``n_d`` equally spaced points from ``lo_d`` to ``hi_d`` inclusive. A periodic dimension (an
    angle on the grid ``lo_d + j * step``, ``j = 0..n_d-1``, ``hi_d = lo_d + (n_d - 1) step``) is
    not clipped: the index wraps modulo ``n_d``, so a value just below ``lo_d + n_d step`` maps
    to 0.

    Parameters
    ----------
    lows, highs : array_like, shape (D,)
        Grid bounds per dimension, ``lows < highs``.
    sizes : array_like of int, shape (D,)
        Points per dimension, each ``>= 2``.
    periodic : bool or array_like of bool, shape (D,), optional
        Which dimensions wrap around. Default none.

    Notes
    -----
    ``rint`` rounds halves to even, as ``torch.round`` does in the authors' code.

    Examples
    --------
    >>> Discretiser([-1.0], [1.0], [5])([[0.3], [-2.0]]).tolist()
    [[3], [0]]
    """

    def __init__(self, lows, highs, sizes, periodic=False):
        lows = np.atleast_1d(np.asarray(lows, dtype=float))
        highs = np.atleast_1d(np.asarray(highs, dtype=float))
        if lows.ndim != 1 or lows.shape != highs.shape:
            raise ValueError(f"lows and highs must be 1-d of equal length, got shapes "
                             f"{lows.shape} and {highs.shape}")
        sizes = _check_state_shape(sizes, "sizes")
        if len(sizes) != lows.size:
            raise ValueError(f"sizes has {len(sizes)} entries; lows has {lows.size}")
        for d, (lo, hi, n) in enumerate(zip(lows, highs, sizes)):
            if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
                raise ValueError(f"lows[{d}] = {lo} must be finite and below highs[{d}] = {hi}")
            if n < 2:
                raise ValueError(f"sizes[{d}] must be >= 2, got {n}")
        periodic = np.broadcast_to(np.asarray(periodic, dtype=bool), lows.shape).copy()
        self.lows, self.highs, self.sizes, self.periodic = lows, highs, sizes, periodic

    @property
    def n_dims(self):
        """Number of state dimensions ``D``."""
        return len(self.sizes)

    def grid(self, d):
        """The ``n_d`` grid points of dimension ``d``, shape ``(n_d,)``."""
        return np.linspace(self.lows[d], self.highs[d], self.sizes[d])

    def __call__(self, states):
        """Multi-indices of ``states``.

        Parameters
        ----------
        states : array_like, shape (n, D) or (D,)

        Returns
        -------
        ndarray of int, shape (n, D) or (D,)
        """
        x = np.asarray(states, dtype=float)
        if x.shape[-1:] != (self.n_dims,):
            raise ValueError(f"states must have last axis of length D = {self.n_dims}, "
                             f"got shape {x.shape}")
        if not np.isfinite(x).all():
            raise ValueError("states must be finite")
        n = np.asarray(self.sizes)
        scaled = (x - self.lows) / (self.highs - self.lows) * (n - 1)
        clipped = np.clip(scaled, 0, n - 1)
        idx = np.rint(np.where(self.periodic, scaled, clipped)).astype(np.int64)
        return np.where(self.periodic, idx % n, idx)


# ---------------------------------------------------------------------------------- CP core
def _check_indices(states, state_shape):
    """Validate a batch of multi-indices; return an int array of shape (n, D)."""
    idx = np.asarray(states)
    if idx.ndim == 1 and idx.shape[0] == len(state_shape):
        idx = idx[None]
    if idx.ndim != 2 or idx.shape[1] != len(state_shape):
        raise ValueError(f"states must be multi-indices of shape (n, D) with D = "
                         f"{len(state_shape)}, got shape {idx.shape}")
    if not np.issubdtype(idx.dtype, np.integer):
        raise TypeError(f"states must hold integer grid indices, got dtype {idx.dtype}")
    bad = (idx < 0) | (idx >= np.asarray(state_shape))
    if bad.any():
        n, d = np.argwhere(bad)[0]
        raise ValueError(f"states[{n}, {d}] = {idx[n, d]} is outside 0..{state_shape[d] - 1}")
    return idx


def _scatter_rows(rows, values, n_rows):
    """``g[rows[n]] += values[n]`` for a ``(n_rows, K)`` zero array, returned raveled."""
    K = values.shape[1]
    flat = (rows[:, None] * K + np.arange(K)).ravel()
    return np.bincount(flat, weights=values.ravel(), minlength=n_rows * K)


class _CPModel:
    """``out[n, o] = sum_k W[o, k] prod_d G_d[idx[n, d], k]`` with its JVP and VJP.

    ``W`` is a learned factor of shape ``(O, K)`` when ``output_factor`` is true, else fixed ones.
    """

    def __init__(self, state_shape, rank, n_outputs, output_factor, rng, init_scale):
        self.state_shape = _check_state_shape(state_shape)
        self.rank = _check_positive_int("rank", rank)
        self.n_outputs = n_outputs
        if not isinstance(init_scale, numbers.Real) or not init_scale > 0:
            raise ValueError(f"init_scale must be a positive number, got {init_scale!r}")
        rng = as_rng(rng)
        shapes = [(n, self.rank) for n in self.state_shape]
        if output_factor:
            shapes.append((n_outputs, self.rank))
        self.factors = [init_scale * rng.standard_normal(shape) for shape in shapes]
        self._output_factor = output_factor

    # -- parameters
    @property
    def n_dims(self):
        """Number of state modes ``D``."""
        return len(self.state_shape)

    @property
    def n_factor_params(self):
        return sum(f.size for f in self.factors)

    def _output_weights(self):
        return self.factors[-1] if self._output_factor else np.ones((1, self.rank))

    def _flat_factors(self):
        return np.concatenate([f.ravel() for f in self.factors])

    def _set_flat_factors(self, vec):
        start = 0
        for i, f in enumerate(self.factors):
            self.factors[i] = np.array(vec[start:start + f.size], dtype=float).reshape(f.shape)
            start += f.size

    def _split(self, vec):
        out, start = [], 0
        for f in self.factors:
            out.append(vec[start:start + f.size].reshape(f.shape))
            start += f.size
        return out

    # -- evaluation
    def _gather(self, idx):
        """Products ``prod_d G_d[idx[:, d]]`` (n, K) and leave-one-out products (n, D, K).

        ``loo[:, d] = prod_{d' != d} G_{d'}[idx[:, d']]`` (:func:`~tnmdp.adapters.cp.row_products`,
        ``O(n D K)``).
        """
        rows = [self.factors[d][idx[:, d]] for d in range(self.n_dims)]
        return row_products(rows, leave_one_out=True)

    def _forward(self, idx):
        prod, loo = self._gather(idx)
        return prod @ self._output_weights().T, prod, loo

    def _vjp(self, idx, cot, prod, loo):
        """Flat gradient of ``sum_n cot[n] . out[n]`` with respect to the factors."""
        weights = self._output_weights()
        c = cot @ weights  # (n, K)
        grads = []
        for d, n_d in enumerate(self.state_shape):
            grads.append(_scatter_rows(idx[:, d], c * loo[:, d], n_d))
        if self._output_factor:
            grads.append((cot.T @ prod).ravel())
        return np.concatenate(grads)

    def _jvp(self, idx, tangent, prod, loo):
        """Directional derivative of ``out`` (n, O) along flat factor tangent ``tangent``."""
        parts = self._split(tangent)
        dprod = sum(parts[d][idx[:, d]] * loo[:, d] for d in range(self.n_dims))
        dout = dprod @ self._output_weights().T
        if self._output_factor:
            dout = dout + prod @ parts[-1].T
        return dout

    # -- dense tensor and network
    def _full(self):
        """Dense ``(N_0, ..., N_{D-1}, O)`` tensor."""
        return cp_full(self.factors[:self.n_dims] + [self._output_weights()])

    def _network(self, output_index, state_tag="G"):
        factors = self.factors[:self.n_dims]
        names = [f"s{d}" for d in range(self.n_dims)]
        tags = [f"{state_tag}{d}" for d in range(self.n_dims)]
        if output_index is not None:
            factors = factors + [self._output_weights()]
            names.append(output_index)
            tags.append({"A"} if self._output_factor else {"A", "FIXED"})
        return cp_network(factors, names, tags)


# ---------------------------------------------------------------------------------- scores
@dataclass(frozen=True)
class ParafacScore:
    """Score functions ``d log pi(a_n|s_n) / d params`` of a batch, kept in factorised form.

    Attributes
    ----------
    states : ndarray of int, shape (n, D)
        Multi-indices ``i(s_n)``.
    dist_grad : ndarray, shape (n, A)
        ``u_n = d log pi(a_n|s_n) / d Theta[i(s_n), :]``, the distribution-dependent part.
    state_rows : ndarray, shape (n, D, K)
        The only non-zero rows of the state-factor scores: ``d log pi / d G_d[states[n, d], :]``.
    action_rows : ndarray, shape (n, A, K) or None
        ``d log pi / d W``, or None when ``W`` is fixed.
    log_std : ndarray, shape (n, A) or None
        ``d log pi / d log_std`` (Gaussian), zero where the clamp is active.

    Notes
    -----
    Flat parameter order: ``G_0.ravel(), ..., G_{D-1}.ravel(), [W.ravel()], [log_std]`` -- that of
    :attr:`ParafacPolicy.params`.
    """

    states: np.ndarray
    dist_grad: np.ndarray
    state_rows: np.ndarray
    action_rows: np.ndarray | None
    log_std: np.ndarray | None
    state_shape: tuple

    def weighted_sum(self, weights):
        """``sum_n weights[n] score_n``, shape (P,), without forming per-sample vectors."""
        w = np.asarray(weights, dtype=float)
        parts = []
        for d, n_d in enumerate(self.state_shape):
            parts.append(_scatter_rows(self.states[:, d], w[:, None] * self.state_rows[:, d], n_d))
        if self.action_rows is not None:
            parts.append(np.einsum("n,nak->ak", w, self.action_rows).ravel())
        if self.log_std is not None:
            parts.append(w @ self.log_std)
        return np.concatenate(parts)

    def to_dense(self):
        """Per-sample scores as a dense array of shape (n, P) (small cases and tests)."""
        n, _, K = self.state_rows.shape
        blocks = []
        for d, n_d in enumerate(self.state_shape):
            block = np.zeros((n, n_d, K))
            block[np.arange(n), self.states[:, d]] = self.state_rows[:, d]
            blocks.append(block.reshape(n, -1))
        if self.action_rows is not None:
            blocks.append(self.action_rows.reshape(n, -1))
        if self.log_std is not None:
            blocks.append(self.log_std)
        return np.concatenate(blocks, axis=1)


# ---------------------------------------------------------------------------------- policy
_KINDS = ("softmax", "gaussian")


def _log_softmax(logits):
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


class ParafacPolicy:
    """A stationary policy whose parameter tensor has PARAFAC rank ``rank``.

    Parameters
    ----------
    state_shape : sequence of int, shape (D,)
        Grid sizes ``N_d`` of the discretised state (the state modes). ``mode_sizes=`` is a
        deprecated alias.
    n_actions : int
        Softmax: number of discrete actions ``A >= 2``. Gaussian: action dimension ``A >= 1``.
    rank : int
        PARAFAC rank ``K``.
    kind : {"softmax", "gaussian"}
    rng : numpy.random.Generator or int or None
        Initialisation: factors ``init_scale * N(0, 1)``.
    init_scale : float, optional
        Default 0.1 (the authors').
    log_std_init : float, optional
        Gaussian: initial ``log sigma``. Default 0.
    log_std_bounds : (float, float), optional
        Gaussian: clamp of ``log sigma``. Default ``(-2.5, 1.0)``; the authors' Pendulum runs use
        ``(-2.5, 0.0)`` with ``log_std_init=0``.
    action_bounds : (array_like, array_like), optional
        Gaussian: ``(low, high)``, each of shape ``(A,)`` or scalar. When given, the policy is
        the *clipped* Gaussian ``a = clip(x, low, high)``, ``x ~ N(mu, sigma^2)``: :meth:`sample`
        returns clipped actions and :meth:`log_prob` / :meth:`score` use its mixed density (the
        normal density inside, the tail mass ``Phi`` at a bound; Fujita & Maeda, "Clipped
        action policy gradient", ICML 2018). Default None: the unclipped Gaussian.
    mean_bounds : (array_like, array_like), optional
        Gaussian: ``(low, high)``, each of shape ``(A,)`` or scalar. When given, the mean is
        ``mu = m + h tanh((Theta - m) / h)`` with ``m = (low + high) / 2``,
        ``h = (high - low) / 2``:
        always inside ``(low, high)``, equal to ``Theta`` to first order near ``m``. Without it an
        unbounded mean can drift far outside the actions the environment accepts, where the
        sampled actions are all clipped to the same bound and the score carries only noise.
        Default None: ``mu = Theta`` (the authors').

    Attributes
    ----------
    factors : list of ndarray
        ``G_d`` of shape ``(N_d, K)``; then ``W`` of shape ``(A, K)`` when learned (softmax, or
        Gaussian with ``A > 1``).
    log_std : ndarray, shape (A,) or None

    Notes
    -----
    ``K * (sum_d N_d + A)`` factor parameters (``K sum_d N_d`` for a scalar Gaussian), plus ``A``
    for ``log_std``. Every method costs ``O(n K (D + A))`` for ``n`` states.
    """

    def __init__(self, state_shape=UNSET, n_actions=UNSET, rank=UNSET, kind="softmax", *,
                 rng=None, init_scale=0.1, log_std_init=0.0, log_std_bounds=(-2.5, 1.0),
                 action_bounds=None, mean_bounds=None, mode_sizes=UNSET):
        state_shape = _required("ParafacPolicy", state_shape=renamed_argument(
            "ParafacPolicy", "mode_sizes", "state_shape", mode_sizes, state_shape, UNSET),
            n_actions=n_actions, rank=rank)[0]
        if kind not in _KINDS:
            raise ValueError(f"kind must be one of {_KINDS}, got {kind!r}")
        self.kind = kind
        self.n_actions = _check_positive_int("n_actions", n_actions,
                                             2 if kind == "softmax" else 1)
        output_factor = kind == "softmax" or self.n_actions > 1
        self._cp = _CPModel(state_shape, rank, self.n_actions, output_factor, rng, init_scale)
        self.log_std = None
        if kind == "gaussian":
            lo, hi = (float(b) for b in log_std_bounds)
            if not lo < hi:
                raise ValueError(f"log_std_bounds must be increasing, got {log_std_bounds!r}")
            self.log_std_bounds = (lo, hi)
            self.log_std = np.full(self.n_actions, float(log_std_init))
        self.action_bounds = self._check_bounds("action_bounds", action_bounds)
        self.mean_bounds = self._check_bounds("mean_bounds", mean_bounds)

    def _check_bounds(self, name, bounds):
        """``(low, high)`` arrays of shape (A,) from a Gaussian policy's bounds argument."""
        if bounds is None:
            return None
        if self.kind != "gaussian":
            raise ValueError(f"{name} needs kind='gaussian'")
        low, high = (np.broadcast_to(np.asarray(b, dtype=float), (self.n_actions,)).copy()
                     for b in bounds)
        if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high)) and np.all(low < high)):
            raise ValueError(f"{name} must be finite with low < high, got {bounds!r}")
        return low, high

    def __repr__(self):
        return (f"ParafacPolicy(state_shape={self.state_shape}, n_actions={self.n_actions}, "
                f"rank={self.rank}, kind={self.kind!r}, n_parameters={self.n_parameters})")

    # -- parameters
    state_shape = property(lambda self: self._cp.state_shape, doc="Grid sizes ``(N_0, ...)``.")
    mode_sizes = deprecated_property("mode_sizes", "state_shape")
    n_params = deprecated_property("n_params", "n_parameters")
    rank = property(lambda self: self._cp.rank, doc="PARAFAC rank ``K``.")
    factors = property(lambda self: self._cp.factors, doc="Factor matrices (see class doc).")

    @property
    def n_states(self):
        """``prod_d N_d``, the number of grid cells."""
        return int(np.prod(self.state_shape))

    @property
    def n_parameters(self):
        """Number of learned parameters ``P``."""
        return self._cp.n_factor_params + (0 if self.log_std is None else self.log_std.size)

    @property
    def params(self):
        """All learned parameters as a flat copy, shape (P,) (see :class:`ParafacScore`)."""
        flat = self._cp._flat_factors()
        return flat if self.log_std is None else np.concatenate([flat, self.log_std])

    @params.setter
    def params(self, vec):
        vec = np.asarray(vec, dtype=float)
        if vec.shape != (self.n_parameters,):
            raise ValueError(f"params must have shape ({self.n_parameters},), got {vec.shape}")
        n = self._cp.n_factor_params
        self._cp._set_flat_factors(vec[:n])
        if self.log_std is not None:
            self.log_std = vec[n:].copy()

    def copy(self):
        """An independent copy."""
        import copy

        return copy.deepcopy(self)

    def _sigma(self):
        lo, hi = self.log_std_bounds
        return np.exp(np.clip(self.log_std, lo, hi))

    def _mean(self, out):
        """Gaussian means ``mu`` (n, A) from the tensor entries ``Theta`` and ``d mu / d Theta``.

        Without ``mean_bounds``: ``mu = Theta`` and the derivative is None (one).
        """
        if self.mean_bounds is None:
            return out, None
        low, high = self.mean_bounds
        mid, half = (high + low) / 2, (high - low) / 2
        squashed = np.tanh((out - mid) / half)
        return mid + half * squashed, 1.0 - squashed ** 2

    # -- distributions
    def _check_states(self, states):
        return _check_indices(states, self.state_shape)

    def distribution(self, states):
        """Logits ``Theta[i(s), :]`` (softmax) or means ``mu(s)`` (Gaussian), shape (n, A)."""
        out = self._cp._forward(self._check_states(states))[0]
        return out if self.kind == "softmax" else self._mean(out)[0]

    def probabilities(self, states):
        """Softmax action probabilities, shape (n, A)."""
        self._require_softmax("probabilities")
        return np.exp(_log_softmax(self.distribution(states)))

    def _require_softmax(self, what):
        if self.kind != "softmax":
            raise ValueError(f"{what} needs kind='softmax', this policy has kind={self.kind!r}")

    def _check_actions(self, actions, n):
        if self.kind == "softmax":
            act = np.asarray(actions)
            if act.shape != (n,) or not np.issubdtype(act.dtype, np.integer):
                raise ValueError(f"actions must be {n} integers, got shape {act.shape} and "
                                 f"dtype {act.dtype}")
            if ((act < 0) | (act >= self.n_actions)).any():
                j = int(np.argmax((act < 0) | (act >= self.n_actions)))
                raise ValueError(f"actions[{j}] = {act[j]} is outside 0..{self.n_actions - 1}")
            return act
        act = np.asarray(actions, dtype=float)
        if act.shape == (n,) and self.n_actions == 1:
            act = act[:, None]
        if act.shape != (n, self.n_actions):
            raise ValueError(f"actions must have shape ({n}, {self.n_actions}), got {act.shape}")
        return act

    def _log_prob_and_grad(self, idx, act, out):
        """log pi (n,), d log pi / d Theta (n, A), d log pi / d log_std (n, A) or None."""
        n = idx.shape[0]
        if self.kind == "softmax":
            logp_all = _log_softmax(out)
            u = -np.exp(logp_all)
            u[np.arange(n), act] += 1.0
            return logp_all[np.arange(n), act], u, None
        sigma = self._sigma()
        out, slope = self._mean(out)
        z = (act - out) / sigma
        logp = -0.5 * z ** 2 - np.log(sigma) - 0.5 * np.log(2 * np.pi)
        d_mean, d_log_std = z / sigma, z ** 2 - 1.0
        if self.action_bounds is not None:
            # at a bound the probability is a tail mass: log Phi(t), t = -z at low, z at high
            low, high = self.action_bounds
            at_low, at_high = act <= low, act >= high
            tail = np.where(at_low, -1.0, 1.0) * (out - np.where(at_low, low, high)) / sigma
            log_mass = scipy.special.log_ndtr(tail)
            # d log Phi(t) / dt = phi(t) / Phi(t), computed in logs for large |t|
            hazard = np.exp(-0.5 * tail ** 2 - 0.5 * np.log(2 * np.pi) - log_mass)
            sign = np.where(at_low, -1.0, 1.0)
            clipped = at_low | at_high
            logp = np.where(clipped, log_mass, logp)
            d_mean = np.where(clipped, sign * hazard / sigma, d_mean)
            d_log_std = np.where(clipped, -tail * hazard, d_log_std)
        if slope is not None:
            d_mean = d_mean * slope
        lo, hi = self.log_std_bounds
        free = (self.log_std >= lo) & (self.log_std <= hi)
        return logp.sum(axis=1), d_mean, d_log_std * free

    def log_prob(self, states, actions):
        """``log pi(a_n | s_n)``, shape (n,).

        Parameters
        ----------
        states : array_like of int, shape (n, D)
        actions : array_like, shape (n,) (softmax: ints; scalar Gaussian) or (n, A) (Gaussian)
        """
        idx = self._check_states(states)
        act = self._check_actions(actions, idx.shape[0])
        out = self._cp._forward(idx)[0]
        return self._log_prob_and_grad(idx, act, out)[0]

    def sample(self, states, rng=None):
        """Draw ``a_n ~ pi(.|s_n)``: ints of shape (n,) (softmax) or floats (n, A) (Gaussian)."""
        rng = as_rng(rng)
        out = self.distribution(states)
        if self.kind == "softmax":
            cum = np.cumsum(np.exp(_log_softmax(out)), axis=1)
            draws = rng.random((out.shape[0], 1)) * cum[:, -1:]
            return np.minimum((draws > cum).sum(axis=1), self.n_actions - 1)
        draw = out + self._sigma() * rng.standard_normal(out.shape)
        if self.action_bounds is not None:
            draw = np.clip(draw, *self.action_bounds)
        return draw

    def score(self, states, actions):
        """Factorised score functions of a batch (see :class:`ParafacScore`)."""
        idx = self._check_states(states)
        act = self._check_actions(actions, idx.shape[0])
        out, prod, loo = self._cp._forward(idx)
        _, u, g_std = self._log_prob_and_grad(idx, act, out)
        c = u @ self._cp._output_weights()
        action_rows = (u[:, :, None] * prod[:, None, :]) if self._cp._output_factor else None
        return ParafacScore(idx, u, c[:, None, :] * loo, action_rows, g_std, self.state_shape)

    # -- trust-region helpers (used by the learning algorithms)
    def _snapshot(self, idx):
        """Distribution parameters at ``idx`` for KL and Fisher computations."""
        out, prod, loo = self._cp._forward(idx)
        if self.kind == "softmax":
            return {"logp": _log_softmax(out), "prod": prod, "loo": loo}
        mean, slope = self._mean(out)
        return {"mean": mean, "slope": slope, "log_sigma": np.log(self._sigma()), "prod": prod,
                "loo": loo}

    def kl_from(self, snapshot, states):
        """Mean ``KL(old || self)`` over ``states``, ``old`` given by :meth:`_snapshot`."""
        out = self._cp._forward(states)[0]
        if self.kind == "softmax":
            old = snapshot["logp"]
            return float((np.exp(old) * (old - _log_softmax(out))).sum(axis=1).mean())
        out = self._mean(out)[0]
        ls_old, ls_new = snapshot["log_sigma"], np.log(self._sigma())
        var_old, var_new = np.exp(2 * ls_old), np.exp(2 * ls_new)
        kl = ls_new - ls_old + (var_old + (snapshot["mean"] - out) ** 2) / (2 * var_new) - 0.5
        return float(kl.sum(axis=1).mean())

    def fisher_vector_product(self, snapshot, states, vector):
        """``F v`` with ``F`` the Hessian of the mean KL at the snapshot, shape (P,)."""
        cp, n = self._cp, states.shape[0]
        nf = cp.n_factor_params
        dout = cp._jvp(states, vector[:nf], snapshot["prod"], snapshot["loo"])
        if self.kind == "softmax":
            p = np.exp(snapshot["logp"])
            h = p * dout - p * (p * dout).sum(axis=1, keepdims=True)
            return cp._vjp(states, h, snapshot["prod"], snapshot["loo"]) / n
        lo, hi = self.log_std_bounds
        free = (self.log_std >= lo) & (self.log_std <= hi)
        slope = 1.0 if snapshot["slope"] is None else snapshot["slope"]
        h = slope ** 2 * dout / np.exp(2 * snapshot["log_sigma"])
        fv = cp._vjp(states, h, snapshot["prod"], snapshot["loo"]) / n
        return np.concatenate([fv, 2.0 * vector[nf:] * free])

    # -- dense tensor, network, tabular policy
    def full(self):
        """Dense parameter tensor ``Theta``, shape ``(N_0, ..., N_{D-1}, A)`` (small cases)."""
        return self._cp._full()

    def to_tensor_network(self):
        """The factors as a quimb ``TensorNetwork`` sharing one rank index ``"k"``.

        Tensors ``G_d`` carry indices ``("s{d}", "k")`` and tag ``"G{d}"``; the action factor
        carries ``("a", "k")`` and tag ``"A"`` (plus ``"FIXED"`` when it is the constant ones of a
        scalar Gaussian). ``k`` is a hyperindex; contracting to ``("s0", ..., "a")`` gives
        :meth:`full`.
        """
        return self._cp._network("a")

    def to_policy(self, mdp_or_horizon):
        """The tabular policy ``(T, S, A)`` of a softmax model, tiled over time.

        Parameters
        ----------
        mdp_or_horizon : FiniteMDP or int
            A finite MDP whose state index is the C-order multi-index over ``state_shape``
            (``s = i_0 N_1 ... N_{D-1} + ... + i_{D-1}``), or the horizon ``T``.

        Returns
        -------
        ndarray, shape (T, S, A)
        """
        self._require_softmax("to_policy")
        if isinstance(mdp_or_horizon, numbers.Integral) and not isinstance(mdp_or_horizon, bool):
            horizon = _check_positive_int("horizon", mdp_or_horizon)
        elif hasattr(mdp_or_horizon, "horizon") and hasattr(mdp_or_horizon, "n_states"):
            mdp = mdp_or_horizon
            if (mdp.n_states, mdp.n_actions) != (self.n_states, self.n_actions):
                raise ValueError(f"mdp has S={mdp.n_states}, A={mdp.n_actions}; this policy has "
                                 f"S=prod{self.state_shape}={self.n_states}, A={self.n_actions}")
            horizon = mdp.horizon
        else:
            raise TypeError(f"mdp_or_horizon must be a FiniteMDP or an int, not "
                            f"{type(mdp_or_horizon).__name__}")
        logits = self.full().reshape(self.n_states, self.n_actions)
        table = np.exp(_log_softmax(logits))
        return np.broadcast_to(table, (horizon,) + table.shape).copy()


# ---------------------------------------------------------------------------------- critic
class ParafacCritic:
    """A PARAFAC value function ``V(s) = sum_k prod_d H_d[i_d(s), k]``.

    Parameters
    ----------
    state_shape : sequence of int, shape (D,)
        ``mode_sizes=`` is a deprecated alias.
    rank : int
    rng : numpy.random.Generator or int or None
    init_scale : float, optional
        Factors start at ``init_scale * N(0, 1)``. Default 0.1.

    Notes
    -----
    ``K sum_d N_d`` parameters.
    """

    def __init__(self, state_shape=UNSET, rank=UNSET, *, rng=None, init_scale=0.1,
                 mode_sizes=UNSET):
        state_shape = _required("ParafacCritic", state_shape=renamed_argument(
            "ParafacCritic", "mode_sizes", "state_shape", mode_sizes, state_shape, UNSET),
            rank=rank)[0]
        self._cp = _CPModel(state_shape, rank, 1, False, rng, init_scale)

    state_shape = property(lambda self: self._cp.state_shape, doc="Grid sizes ``(N_0, ...)``.")
    mode_sizes = deprecated_property("mode_sizes", "state_shape")
    n_params = deprecated_property("n_params", "n_parameters")
    rank = property(lambda self: self._cp.rank)
    factors = property(lambda self: self._cp.factors)

    @property
    def n_parameters(self):
        """Number of learned parameters."""
        return self._cp.n_factor_params

    @property
    def params(self):
        """Flat copy of the factors, shape (P,)."""
        return self._cp._flat_factors()

    @params.setter
    def params(self, vec):
        vec = np.asarray(vec, dtype=float)
        if vec.shape != (self.n_parameters,):
            raise ValueError(f"params must have shape ({self.n_parameters},), got {vec.shape}")
        self._cp._set_flat_factors(vec)

    def values(self, states):
        """``V(s_n)``, shape (n,), for multi-indices of shape (n, D)."""
        return self._cp._forward(_check_indices(states, self.state_shape))[0][:, 0]

    def loss_and_grad(self, states, targets):
        """``0.5 mean (V - targets)^2`` and its gradient (P,)."""
        idx = _check_indices(states, self.state_shape)
        out, prod, loo = self._cp._forward(idx)
        resid = out[:, 0] - np.asarray(targets, dtype=float)
        n = idx.shape[0]
        return 0.5 * float(resid @ resid) / n, self._cp._vjp(idx, resid[:, None] / n, prod, loo)

    def fit(self, states, targets, *, max_iter=20, block=None):
        """Fit to ``targets`` (n,) by L-BFGS from the current factors (the authors' recipe).

        ``block=d`` fits only the factor ``H_d`` and keeps the others fixed (one step of the
        authors' block-coordinate ``bcd`` critic update); default all factors jointly.

        Returns the ``scipy.optimize.OptimizeResult``; the factors are left at the optimum
        (``result.x`` is the fitted block's, or all factors', flat vector).
        """
        idx = _check_indices(states, self.state_shape)
        targets = np.asarray(targets, dtype=float)
        if targets.shape != (idx.shape[0],):
            raise ValueError(f"targets must have shape ({idx.shape[0]},), got {targets.shape}")
        full = self.params
        if block is None:
            part = slice(0, full.size)
        else:
            n_blocks = len(self._cp.factors)
            if isinstance(block, bool) or not isinstance(block, numbers.Integral) \
                    or not 0 <= block < n_blocks:
                raise ValueError(f"block must be an int in 0..{n_blocks - 1}, got {block!r}")
            start = sum(f.size for f in self._cp.factors[:block])
            part = slice(start, start + self._cp.factors[block].size)

        def fun(sub):
            vec = full.copy()
            vec[part] = sub
            self._cp._set_flat_factors(vec)
            loss, grad = self.loss_and_grad(idx, targets)
            return loss, grad[part]

        result = scipy.optimize.minimize(fun, full[part], jac=True, method="L-BFGS-B",
                                         options={"maxiter": max_iter})
        full[part] = result.x
        self._cp._set_flat_factors(full)
        return result

    def full(self):
        """Dense value tensor, shape ``(N_0, ..., N_{D-1})``."""
        return self._cp._full()[..., 0]

    def to_tensor_network(self):
        """quimb ``TensorNetwork`` of ``H_d`` (indices ``("s{d}", "k")``, tags ``"H{d}"``)."""
        return self._cp._network(None, state_tag="H")


# ---------------------------------------------------------------------------------- CP fit
