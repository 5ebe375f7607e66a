"""First-order optimisers shared by the adapters: SGD, Adam and Adamax on named parameters.

One convention for every learner in :mod:`tnmdp.adapters`: **descent**. Parameters and
gradients are dicts ``name -> array`` and a step returns new parameters::

    params <- params - step(grads)

A learner that *maximises* a return passes the negated gradient. Keys missing from ``grads``
are not touched and their moments and step counts do not advance (as ``torch.optim`` skips a
parameter whose ``grad`` is ``None``); a key whose gradient is zero still moves by its momentum
(as torch does for a zeroed gradient). That covers both block schemes the adapters use: one
optimiser with per-block gradients given one key at a time (per-key moments and counts, as one
torch optimiser per factor), and one optimiser with the other blocks' gradients zeroed.

The updates follow ``torch.optim`` without weight decay (Kingma & Ba, "Adam: A Method for
Stochastic Optimization", ICLR 2015, Algorithm 1 and Sect. 7.1 for Adamax):

* SGD:    ``step = lr * g``
* Adam:   ``m <- b1 m + (1-b1) g``, ``v <- b2 v + (1-b2) g^2``,
  ``step = lr * (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps)``
* Adamax: ``m`` as Adam, ``u <- max(b2 u, |g| + eps)``, ``step = lr / (1-b1^t) * m / u``

The moments are computed with array arithmetic only (``max`` and ``abs`` through the array's
own namespace, ``__array_namespace__``), so the same object steps numpy or jax arrays. The
optimiser holds its state (``state[name]``: step count and moments); :meth:`Optimizer.step`
never modifies the arrays it is given. Each step costs ``O(P)`` for ``P`` parameters.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

__all__ = ["Optimizer", "SGD", "Adam", "Adamax", "OPTIMIZERS", "make_optimizer"]


def _check_rate(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (
            math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def _check_beta(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must be a number in [0, 1), got {value!r}")
    return float(value)


def _namespace(x):
    """The array-API namespace of ``x`` (numpy for numpy arrays and scalars)."""
    get = getattr(x, "__array_namespace__", None)
    return get() if get is not None else np


class Optimizer:
    """Base class: state per parameter name, descent steps on dicts of arrays.

    Parameters
    ----------
    learning_rate : float
        Step size ``lr > 0``.
    check_finite : bool, optional
        Refuse non-finite numpy gradients (ValueError naming the entry). Default True; a
        learner that tracks divergence itself (batched runs, some of which may overflow)
        passes False.

    Attributes
    ----------
    state : dict
        ``state[name]`` holds ``"step"`` (int, steps taken on that name), ``"shape"`` and the
        moments (``"m"``, ``"v"``).
    """

    def __init__(self, learning_rate, *, check_finite=True):
        self.learning_rate = _check_rate("learning_rate", learning_rate)
        self.check_finite = bool(check_finite)
        self.state = {}

    def __repr__(self):
        return f"{type(self).__name__}(learning_rate={self.learning_rate!r})"

    def reset(self):
        """Forget all moments and step counts."""
        self.state = {}

    def _check(self, params, grads):
        if not isinstance(grads, dict):
            raise TypeError(f"grads must be a dict name -> array, not {type(grads).__name__}")
        if params is not None and not isinstance(params, dict):
            raise TypeError(f"params must be a dict name -> array, not {type(params).__name__}")
        for name, g in grads.items():
            if params is not None and name not in params:
                raise ValueError(f"grads[{name!r}] has no parameter; params has "
                                 f"{sorted(map(str, params))}")
            shape = tuple(np.shape(g))
            if params is not None and tuple(np.shape(params[name])) != shape:
                raise ValueError(f"grads[{name!r}] has shape {shape}, params[{name!r}] has "
                                 f"{tuple(np.shape(params[name]))}")
            known = self.state.get(name, {}).get("shape", shape)
            if known != shape:
                raise ValueError(f"grads[{name!r}] has shape {shape}, but the optimiser state "
                                 f"for it has {known}")
            if self.check_finite and isinstance(g, (np.ndarray, numbers.Number)) \
                    and not np.all(np.isfinite(g)):
                bad = np.argwhere(~np.isfinite(np.asarray(g)))[0]
                raise ValueError(f"grads[{name!r}][{tuple(int(i) for i in bad)}] is "
                                 f"{float(np.asarray(g)[tuple(bad)])}; gradients must be finite")

    def _direction(self, name, grad):  # pragma: no cover - abstract
        raise NotImplementedError

    def steps(self, grads):
        """Advance the state by one step for each name in ``grads`` and return the steps.

        Parameters
        ----------
        grads : dict of str -> array
            Gradients of the loss to minimise, any shapes.

        Returns
        -------
        dict of str -> array
            ``steps[name]``, the same shape as ``grads[name]``; the new parameters are
            ``params[name] - steps[name]``.
        """
        self._check(None, grads)
        return {name: self._direction(name, g) for name, g in grads.items()}

    def step(self, params, grads):
        """One descent step: ``params[name] - steps(grads)[name]`` for each name in ``grads``.

        Parameters
        ----------
        params : dict of str -> array
            Current parameters (not modified).
        grads : dict of str -> array
            Gradients of the loss to minimise; keys a subset of ``params``, same shapes.

        Returns
        -------
        dict of str -> array
            New parameters: every key of ``params``; those absent from ``grads`` unchanged
            (the same objects).
        """
        self._check(params, grads)
        new = dict(params)
        for name, g in grads.items():
            new[name] = params[name] - self._direction(name, g)
        return new


class SGD(Optimizer):
    """Plain gradient descent: ``step = learning_rate * grad`` (no state but the step count)."""

    def _direction(self, name, grad):
        st = self.state.setdefault(name, {"step": 0, "shape": tuple(np.shape(grad))})
        st["step"] += 1
        return self.learning_rate * grad


class Adam(Optimizer):
    """Adam as ``torch.optim.Adam`` without weight decay (see the module docstring).

    Parameters
    ----------
    learning_rate : float
        Step size ``lr > 0``.
    betas : (float, float)
        Decay rates ``(b1, b2)`` of the first and second moments, each in ``[0, 1)``.
    eps : float
        Added to the denominator, ``> 0``.
    check_finite : bool, optional
        As :class:`Optimizer`.
    """

    def __init__(self, learning_rate, betas=(0.9, 0.999), eps=1e-8, *, check_finite=True):
        super().__init__(learning_rate, check_finite=check_finite)
        if not hasattr(betas, "__len__") or len(betas) != 2:
            raise ValueError(f"betas must be a pair (b1, b2), got {betas!r}")
        self.betas = (_check_beta("betas[0]", betas[0]), _check_beta("betas[1]", betas[1]))
        self.eps = _check_rate("eps", eps)

    def __repr__(self):
        return (f"{type(self).__name__}(learning_rate={self.learning_rate!r}, "
                f"betas={self.betas!r}, eps={self.eps!r})")

    def _first_moment(self, name, grad):
        b1 = self.betas[0]
        st = self.state.get(name)
        if st is None:
            st = self.state[name] = {"step": 0, "shape": tuple(np.shape(grad)), "m": grad * 0,
                                     "v": None}
        st["step"] += 1
        st["m"] = b1 * st["m"] + (1.0 - b1) * grad
        return st, st["m"] / (1.0 - b1 ** st["step"])

    def _direction(self, name, grad):
        st, m_hat = self._first_moment(name, grad)
        b2 = self.betas[1]
        sq = grad * grad
        st["v"] = (1.0 - b2) * sq if st["v"] is None else b2 * st["v"] + (1.0 - b2) * sq
        v_hat = st["v"] / (1.0 - b2 ** st["step"])
        return self.learning_rate * m_hat / (v_hat ** 0.5 + self.eps)


class Adamax(Adam):
    """Adamax as ``torch.optim.Adamax``: ``state[name]["v"]`` holds the decayed infinity norm.

    Parameters as :class:`Adam`.
    """

    def _direction(self, name, grad):
        st, m_hat = self._first_moment(name, grad)
        xp = _namespace(grad)
        norm = xp.abs(grad) + self.eps
        st["v"] = norm if st["v"] is None else xp.maximum(self.betas[1] * st["v"], norm)
        return self.learning_rate * m_hat / st["v"]


OPTIMIZERS = {"sgd": SGD, "adam": Adam, "adamax": Adamax}


def make_optimizer(name, learning_rate, **options):
    """An optimiser by name.

    Parameters
    ----------
    name : {"sgd", "adam", "adamax"}
    learning_rate : float
    **options
        Passed to the class (``check_finite``; ``betas``, ``eps`` for Adam and Adamax).

    Returns
    -------
    Optimizer
    """
    if name not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {sorted(OPTIMIZERS)}, got {name!r}")
    return OPTIMIZERS[name](learning_rate, **options)
