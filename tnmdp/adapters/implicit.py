"""Implicit value parameterisation: linear weights as the values of a learned Markov reward chain.

Gehring, Kawaguchi, Huang & Kaelbling, "Understanding End-to-End Model-Based Reinforcement
Learning Methods as Implicit Parameterization" (NeurIPS 2021; code: gehring/implicit-estimators)
fit a linear value function ``V(s) = phi(s) @ theta`` in two ways:

- **explicit**: ``theta`` is the parameter;
- **implicit**: ``theta`` is the value vector of a one-action Markov reward chain with rewards
  ``w`` (shape ``(K,)``), transition matrix ``softmax_rows(F)`` (``F`` shape ``(K, K)``) and an
  internal discount ``eta``::

      theta = w + eta softmax(F) theta      <=>      theta = (I - eta softmax(F))^{-1} w.

Gradients of a loss ``L(theta)`` with respect to ``(w, F)`` follow from the implicit function
theorem applied to the constraint ``h(theta; w, F) = w + eta P theta - theta = 0``
(``P = softmax_rows(F)``): with ``g = dL/dtheta`` and the **adjoint** ``lam = A^{-T} g``
(``A = I - eta P``; one transposed solve),::

      dL/dw = lam,      dL/dP = eta lam theta^T,
      dL/dF[i, j] = eta lam[i] P[i, j] (theta[j] - (P theta)[i])      (row-softmax backward).

In the language of :mod:`tnmdp.network`, ``theta`` is the right environment of the chain (the value
from each state) and ``lam`` is its left environment: the discounted occupancy of the chain started
from the loss-weighted distribution ``g`` -- the same pair of environments whose product gives the
linear response of a tnmdp network to a change of one site.

:meth:`ImplicitValue.to_tensor_network` writes the ``H``-step truncation
``theta_H = sum_{t<H} eta^t P^t w`` as a chain of ``H`` transfer tensors on an augmented bond of
size ``K + 1`` (the chain state plus one "accumulated" channel, the operator-valued matrix
``[[eta P, w], [0, 1]]`` -- the tnmdp return MPO ``[[I, R], [0, I]]`` merged with the dynamics),
closed on the right by ``e_K`` (start from ``V_H = 0``). ``theta - theta_H = eta^H P^H theta``, so
the truncation error is at most ``eta^H ||theta||_inf``.

Notes
-----
The theory of the paper (its Theorem 1) is that gradient descent on ``(w, F)`` moves ``theta``
as preconditioned gradient descent, ``d theta/dt = -P_pre grad L`` with
``P_pre = A^{-1} (eta^2 D + I) A^{-T}`` (:meth:`ImplicitValue.preconditioner`); along the all-ones
direction ``P_pre`` is of order ``1 / (1 - eta)^2`` (its Theorem 4), so a residual common to all
states is removed much faster than with the explicit parameterisation.

Costs: ``theta`` is a dense ``K x K`` LU solve, ``O(K^3)``; ``loss_and_grad`` adds the adjoint
solve (the LU is reused) and ``O(n K + K^2)`` for the ``n`` samples.
"""

from __future__ import annotations

import numbers

import numpy as np
import scipy.linalg as sla

from ..model import _check_int, as_rng

__all__ = ["ImplicitValue", "ExplicitValue", "softmax_rows", "init_implicit_parameters"]


def softmax_rows(logits):
    """Row-wise softmax of a 2-d array (max-shifted, so large logits do not overflow)."""
    z = np.asarray(logits, dtype=float)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _check_eta(eta):
    if isinstance(eta, bool) or not isinstance(eta, numbers.Real) or not 0.0 <= eta < 1.0:
        raise ValueError(f"eta must be a real number in [0, 1), got {eta!r}")
    return float(eta)


def init_implicit_parameters(n_features, rng=None):
    """The authors' initialisation: ``w ~ 0.1 N(0, 1)``, ``F = log(Dirichlet(1) + 2 I) - row max``.

    Returns
    -------
    w : ndarray, shape (K,)
    F : ndarray, shape (K, K)
        Each row's maximum is 0 (the diagonal, since ``2 I`` dominates a Dirichlet draw).
    """
    n = _check_int("n_features", n_features, 1)
    rng = as_rng(rng)
    w = 0.1 * rng.standard_normal(n)
    logits = np.log(rng.dirichlet(np.ones(n), size=n) + 2.0 * np.eye(n))
    return w, logits - logits.max(axis=1, keepdims=True)


def _check_batch(features, targets, n_features):
    X = np.asarray(features, dtype=float)
    y = np.asarray(targets, dtype=float)
    if X.ndim != 2 or X.shape[1] != n_features:
        raise ValueError(f"features must have shape (n, {n_features}), got {X.shape}")
    if y.shape != (X.shape[0],):
        raise ValueError(f"targets must have shape ({X.shape[0]},), got {y.shape}")
    if X.shape[0] == 0:
        raise ValueError("features must hold at least one row")
    for name, arr in (("features", X), ("targets", y)):
        bad = ~np.isfinite(arr)
        if bad.any():
            idx = tuple(int(i) for i in np.argwhere(bad)[0])
            raise ValueError(f"{name}[{', '.join(map(str, idx))}] = {arr[idx]} is not finite")
    return X, y


def _set_params(model, new, shapes):
    """Replace the parameters named in ``new`` (a dict; e.g. an optimiser's step result)."""
    if not isinstance(new, dict):
        raise TypeError(f"params must be a dict name -> array, not {type(new).__name__}")
    for name, value in new.items():
        if name not in shapes:
            raise ValueError(f"params[{name!r}] is not a parameter; expected {sorted(shapes)}")
        arr = np.array(value, dtype=float)
        if arr.shape != shapes[name]:
            raise ValueError(f"params[{name!r}] has shape {arr.shape}, expected {shapes[name]}")
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"params[{name!r}] holds a non-finite value")
        setattr(model, name, arr)


def _predict(features, theta):
    """``features @ theta`` after checking ``features`` is ``(n, K)``."""
    X = np.asarray(features, dtype=float)
    if X.ndim != 2 or X.shape[1] != theta.shape[0]:
        raise ValueError(f"features must have shape (n, {theta.shape[0]}), got {X.shape}")
    return X @ theta


def _loss_and_theta_grad(X, y, theta):
    resid = X @ theta - y
    return 0.5 * float(np.mean(resid ** 2)), X.T @ resid / X.shape[0]


class ImplicitValue:
    """``V(s) = phi(s) @ theta`` with ``theta = (I - eta softmax_rows(F))^{-1} w``.

    Parameters
    ----------
    n_features : int
        ``K``, the length of ``phi(s)`` and the number of chain states.
    eta : float in [0, 1)
        Internal discount of the chain.
    rng : numpy.random.Generator or int or None
        Initialisation (:func:`init_implicit_parameters`).

    Attributes
    ----------
    w : ndarray, shape (K,)
        Chain rewards.
    F : ndarray, shape (K, K)
        Unnormalised log transition probabilities; ``softmax_rows(F)[i, j] = P(i -> j)``.
    """

    param_names = ("w", "F")

    def __init__(self, n_features, eta, rng=None):
        self.n_features = _check_int("n_features", n_features, 1)
        self.eta = _check_eta(eta)
        self.w, self.F = init_implicit_parameters(self.n_features, rng)

    def __repr__(self):
        return f"ImplicitValue(n_features={self.n_features}, eta={self.eta})"

    @property
    def params(self):
        """The parameters as a dict ``{"w": w, "F": F}`` (the arrays themselves, not copies)."""
        return {"w": self.w, "F": self.F}

    @params.setter
    def params(self, new):
        _set_params(self, new, {"w": (self.n_features,), "F": (self.n_features,) * 2})

    @property
    def transitions(self):
        """``softmax_rows(F)``, shape (K, K), row-stochastic."""
        return softmax_rows(self.F)

    def _system(self):
        return np.eye(self.n_features) - self.eta * self.transitions

    @property
    def theta(self):
        """Linear weights, shape (K,): the chain's values, one dense solve ``O(K^3)``."""
        return np.linalg.solve(self._system(), self.w)

    def predict(self, features):
        """``features @ theta`` for features of shape ``(n, K)``."""
        return _predict(features, self.theta)

    def loss_and_grad(self, features, targets):
        """Loss ``0.5 mean((features @ theta - targets)^2)`` and its gradient.

        Parameters
        ----------
        features : array_like, shape (n, K)
        targets : array_like, shape (n,)

        Returns
        -------
        loss : float
        grads : dict
            ``"w"`` shape (K,) and ``"F"`` shape (K, K), by the implicit function theorem (one
            adjoint solve ``A^T lam = dL/dtheta``, reusing the LU factors of ``A``).
        """
        X, y = _check_batch(features, targets, self.n_features)
        P = self.transitions
        lu = sla.lu_factor(np.eye(self.n_features) - self.eta * P)
        theta = sla.lu_solve(lu, self.w)
        loss, g = _loss_and_theta_grad(X, y, theta)
        lam = sla.lu_solve(lu, g, trans=1)  # left environment of the chain
        Ptheta = P @ theta
        dF = self.eta * lam[:, None] * P * (theta[None, :] - Ptheta[:, None])
        return loss, {"w": lam, "F": dF}

    def preconditioner(self):
        """The paper's ``P_pre = A^{-1} (eta^2 D + I) A^{-T}`` (Theorem 1), shape (K, K).

        ``D = diag(d)``, ``d[k] = sum_i (sum_j dsoftmax(F)[k, i] / dF[k, j] theta_j)^2``; under
        gradient flow on ``(w, F)``, ``d theta / dt = -P_pre dL/dtheta``.
        """
        P = self.transitions
        A = np.eye(self.n_features) - self.eta * P
        theta = np.linalg.solve(A, self.w)
        # dP[k, i] / dF[k, j] = P[k, i] (delta_ij - P[k, j]), so
        # sum_j dP[k, i] / dF[k, j] theta_j = P[k, i] (theta_i - (P theta)_k)
        jac_theta = P * (theta[None, :] - (P @ theta)[:, None])
        d = np.sum(jac_theta ** 2, axis=1)
        Ainv = np.linalg.inv(A)
        return Ainv @ np.diag(self.eta ** 2 * d + 1.0) @ Ainv.T

    def stationary_distribution(self):
        """The chain's stationary distribution ``v`` (``v^T softmax(F) = v^T``), shape (K,)."""
        P = self.transitions
        vals, vecs = np.linalg.eig(P.T)
        v = np.real(vecs[:, np.argmin(np.abs(vals - 1.0))])
        return v / v.sum()

    def to_tensor_network(self, horizon):
        """The ``horizon``-step value ``sum_{t<H} eta^t softmax(F)^t w`` as a quimb network.

        ::

            s ── Pi ──b0── K ──b1── K ── ... ──b{H-1}── K ──bH── e_K

        ``K`` is the ``(K+1) x (K+1)`` transfer matrix ``[[eta P, w], [0, 1]]``, ``e_K`` the unit
        vector of the accumulated channel (``V_H = 0``), ``Pi`` the ``K x (K+1)`` projection onto
        the chain states (open index ``s``). Contracting gives ``theta_H``, shape (K,), with
        ``theta - theta_H = eta^H P^H theta``.

        Parameters
        ----------
        horizon : int >= 1

        Returns
        -------
        quimb.tensor.TensorNetwork
            Open index ``"s"``; ``H + 2`` tensors.
        """
        import quimb.tensor as qtn

        H = _check_int("horizon", horizon, 1)
        n = self.n_features
        transfer = np.zeros((n + 1, n + 1))
        transfer[:n, :n] = self.eta * self.transitions
        transfer[:n, n] = self.w
        transfer[n, n] = 1.0
        close = np.zeros(n + 1)
        close[n] = 1.0
        tensors = [qtn.Tensor(np.eye(n, n + 1), inds=("s", "b0"), tags={"PROJ"})]
        tensors += [qtn.Tensor(transfer.copy(), inds=(f"b{t}", f"b{t + 1}"), tags={f"T{t}"})
                    for t in range(H)]
        tensors.append(qtn.Tensor(close, inds=(f"b{H}",), tags={"CLOSE"}))
        return qtn.TensorNetwork(tensors)


class ExplicitValue:
    """``V(s) = phi(s) @ theta`` with ``theta`` the parameter.

    Parameters
    ----------
    n_features : int
    rng : numpy.random.Generator or int or None
        ``theta`` starts at ``ImplicitValue(n_features, eta, rng).theta``: the same seed gives the
        same initial linear weights under both parameterisations (as in the paper).
    eta : float in [0, 1), optional
        Internal discount used only for that initial ``theta``. Default 0.95.

    Attributes
    ----------
    theta : ndarray, shape (K,)
    """

    param_names = ("theta",)

    def __init__(self, n_features, rng=None, eta=0.95):
        self.n_features = _check_int("n_features", n_features, 1)
        self.eta = _check_eta(eta)
        self.theta = ImplicitValue(self.n_features, self.eta, rng).theta

    def __repr__(self):
        return f"ExplicitValue(n_features={self.n_features})"

    @property
    def params(self):
        """``{"theta": theta}`` (the array itself)."""
        return {"theta": self.theta}

    @params.setter
    def params(self, new):
        _set_params(self, new, {"theta": (self.n_features,)})

    def predict(self, features):
        """``features @ theta`` for features of shape ``(n, K)``."""
        return _predict(features, self.theta)

    def loss_and_grad(self, features, targets):
        """Loss ``0.5 mean((features @ theta - targets)^2)`` and ``{"theta": dL/dtheta}``."""
        X, y = _check_batch(features, targets, self.n_features)
        loss, g = _loss_and_theta_grad(X, y, self.theta)
        return loss, {"theta": g}
