"""Multi-task Q-functions as one low-rank (CP/PARAFAC) tensor.

Rozada et al. (arXiv 2501.10529, "S-TLR-Q") collect the Q-functions of
``M`` related tasks into one tensor and keep it in CP form::

    Q[m, i_0, ..., i_{D-1}, a] = sum_k  F_task[m, k] F_0[i_0, k] ... F_{D-1}[i_{D-1}, k] F_act[a, k]

The state ``s`` of the underlying :class:`~tnmdp.FiniteMDP` is the C-order flat index of the
per-mode indices ``(i_0, ..., i_{D-1})`` (``np.ravel_multi_index(idx, state_shape)``), so a
2-d grid with state ``i * n_1 + j`` has ``state_shape = (n_0, n_1)``.

As a tensor network the CP form is a star: one matrix per mode, all sharing the rank index
``k`` (a hyperedge: the COPY tensor on ``k`` is implicit)::

              task   s0    s1  ...   a
               |     |     |         |
             F_task F_0   F_1  ...  F_act
                \\    |     |        /
                 +---------k--------+

:meth:`QTensor.to_tensor_network` builds it in quimb (open indices ``task, s0..s{D-1}, a``)
with :func:`tnmdp.adapters.cp.cp_network`, the builder every adapter uses;
:func:`tnmdp.adapters.cp.cp_als` fits the CP form to a dense tensor (alternating least
squares), e.g. to measure the rank of the exact optimal Q-tensor of a task family.
"""

from __future__ import annotations

import numbers

import numpy as np

from ..model import as_rng
from .cp import _check_positive_int, cp_full, cp_network, row_products

__all__ = ["QTensor"]


def _check_index(name, value, size):
    """Integer array of indices in ``0..size-1`` (any shape)."""
    arr = np.asarray(value)
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"{name} must hold integers, got {value!r}")
    bad = (arr < 0) | (arr >= size)
    if bad.any():
        raise ValueError(f"{name} = {arr[bad].flat[0]} is outside 0..{size - 1}")
    return arr.astype(np.intp)


class QTensor:
    """CP (PARAFAC) Q-tensor over ``(task, s_0, ..., s_{D-1}, action)``.

    Parameters
    ----------
    mode_sizes : sequence of int, length ``D + 2 >= 3``
        ``(M, n_0, ..., n_{D-1}, A)``: number of tasks, sizes of the state modes, number of
        actions. The flat state is
        ``np.ravel_multi_index((i_0, ..., i_{D-1}), (n_0, ..., n_{D-1}))``.
    rank : int
        CP rank ``K >= 1``.
    rng : numpy.random.Generator or int or None, optional
        Source of the random initial factors.
    scale : float, optional
        Initial factors are ``scale * N(0, 1)`` (the authors' code uses 0.1). Default 0.1.
    factors : sequence of array_like, optional
        Initial factors ``[(M, K), (n_0, K), ..., (A, K)]``; overrides ``rng`` and ``scale``.
        Copied.

    Attributes
    ----------
    factors : list of ndarray
        ``factors[0]`` is ``(M, K)``, ``factors[1 + d]`` is ``(n_d, K)``, ``factors[-1]`` is
        ``(A, K)``. Arrays owned by this object (learners update them in place).

    Notes
    -----
    Parameters: ``K (M + sum_d n_d + A)`` against ``M S A`` for the full table,
    ``S = prod_d n_d``. Evaluating one entry costs ``O(D K)``; one task's ``(S, A)`` table
    ``O(S A K)``.
    """

    def __init__(self, mode_sizes, rank, *, rng=None, scale=0.1, factors=None):
        sizes = tuple(mode_sizes)
        if len(sizes) < 3:
            raise ValueError(f"mode_sizes must list (M, n_0, ..., A) with at least one state "
                             f"mode, got {sizes!r}")
        sizes = tuple(_check_positive_int(f"mode_sizes[{i}]", n) for i, n in enumerate(sizes))
        rank = _check_positive_int("rank", rank)
        if factors is None:
            if not isinstance(scale, numbers.Real) or not np.isfinite(scale):
                raise ValueError(f"scale must be a finite number, got {scale!r}")
            gen = as_rng(rng)
            factors = [float(scale) * gen.standard_normal((n, rank)) for n in sizes]
        else:
            factors = [np.array(f, dtype=np.float64) for f in factors]
            if len(factors) != len(sizes):
                raise ValueError(f"factors has {len(factors)} matrices; mode_sizes has "
                                 f"{len(sizes)} modes")
            for i, (f, n) in enumerate(zip(factors, sizes)):
                if f.shape != (n, rank):
                    raise ValueError(f"factors[{i}] has shape {f.shape}, expected ({n}, {rank})")
                if not np.isfinite(f).all():
                    raise ValueError(f"factors[{i}] holds non-finite values")
        self.factors = factors

    @classmethod
    def from_factors(cls, factors):
        """QTensor with the given factors ``[(M, K), (n_0, K), ..., (A, K)]`` (copied)."""
        factors = [np.asarray(f) for f in factors]
        if any(f.ndim != 2 for f in factors):
            raise ValueError("factors must be 2-d arrays of shape (n_i, K), got shapes "
                             f"{[f.shape for f in factors]}")
        return cls([f.shape[0] for f in factors], factors[0].shape[1], factors=factors)

    # ------------------------------------------------------------------ shape
    @property
    def mode_sizes(self):
        """``(M, n_0, ..., n_{D-1}, A)``."""
        return tuple(f.shape[0] for f in self.factors)

    @property
    def rank(self):
        """CP rank ``K``."""
        return self.factors[0].shape[1]

    @property
    def n_tasks(self):
        """Number of tasks ``M``."""
        return self.factors[0].shape[0]

    @property
    def state_shape(self):
        """``(n_0, ..., n_{D-1})``."""
        return tuple(f.shape[0] for f in self.factors[1:-1])

    @property
    def n_states(self):
        """``S = prod(state_shape)``."""
        return int(np.prod(self.state_shape))

    @property
    def n_actions(self):
        """Number of actions ``A``."""
        return self.factors[-1].shape[0]

    @property
    def n_parameters(self):
        """``K (M + sum_d n_d + A)``."""
        return sum(f.size for f in self.factors)

    def __repr__(self):
        return (f"QTensor(mode_sizes={self.mode_sizes}, rank={self.rank}, "
                f"n_parameters={self.n_parameters})")

    def copy(self):
        """An independent copy."""
        return QTensor.from_factors(self.factors)

    # ------------------------------------------------------------------ evaluation
    def _rows(self, task, state):
        """Product of the task and state rows, shape ``broadcast(task, state).shape + (K,)``."""
        task = _check_index("task", task, self.n_tasks)
        state = _check_index("state", state, self.n_states)
        task, state = np.broadcast_arrays(task, state)
        modes = np.unravel_index(state, self.state_shape)
        return row_products([self.factors[0][task]]
                            + [f[idx] for f, idx in zip(self.factors[1:-1], modes)])

    def q_values(self, task, state):
        """``Q[task, state, :]``.

        Parameters
        ----------
        task, state : int or array_like of int
            Task index in ``0..M-1`` and flat state index in ``0..S-1``; broadcast together.

        Returns
        -------
        ndarray, shape ``broadcast(task, state).shape + (A,)``
        """
        return self._rows(task, state) @ self.factors[-1].T

    def value(self, task, state, action):
        """``Q[task, state, action]`` (arguments broadcast together).

        Parameters
        ----------
        task, state, action : int or array_like of int
            Task in ``0..M-1``, flat state in ``0..S-1``, action in ``0..A-1``.

        Returns
        -------
        float or ndarray of the broadcast shape
        """
        action = _check_index("action", action, self.n_actions)
        rows = self._rows(*np.broadcast_arrays(task, state, action)[:2])
        rows, action = np.broadcast_arrays(rows, np.asarray(action)[..., None])
        out = (rows * self.factors[-1][action[..., 0]]).sum(axis=-1)
        return out[()] if out.ndim == 0 else out

    def task_table(self, task):
        """One task's Q-table ``Q[task]``, shape ``(S, A)``."""
        return self.q_values(task, np.arange(self.n_states))

    def greedy(self, task, state=None):
        """Greedy actions ``argmax_a Q[task, state, a]`` (ties to the lowest action).

        Parameters
        ----------
        task : int or array_like of int
        state : int or array_like of int, optional
            Default: every state, ``0..S-1``.

        Returns
        -------
        ndarray of int, shape ``broadcast(task, state).shape``
        """
        if state is None:
            state = np.arange(self.n_states)
        return np.argmax(self.q_values(task, state), axis=-1)

    def full(self):
        """The dense tensor, shape ``(M, n_0, ..., n_{D-1}, A)``.

        Notes
        -----
        Cost and memory ``O(M S A K)``; for small problems, tests and plots.
        """
        return cp_full(self.factors)

    def to_policy(self, task, horizon, *, epsilon=0.0):
        """Tabular policy of one task for :func:`tnmdp.evaluate`: greedy, tiled over time.

        Parameters
        ----------
        task : int
            Task index in ``0..M-1``.
        horizon : int
            Number of time steps ``T``; the stationary policy is repeated at every step.
        epsilon : float, optional
            Epsilon-greedy mixing: ``pi(a|s) = (1 - epsilon) [a = greedy(s)] + epsilon / A``.
            Default 0 (greedy).

        Returns
        -------
        ndarray, shape (T, S, A)
        """
        task = int(_check_index("task", task, self.n_tasks))
        horizon = _check_positive_int("horizon", horizon)
        if not isinstance(epsilon, numbers.Real) or not 0.0 <= epsilon <= 1.0:
            raise ValueError(f"epsilon must be a number in [0, 1], got {epsilon!r}")
        n_actions = self.n_actions
        pol = np.full((self.n_states, n_actions), epsilon / n_actions)
        pol[np.arange(self.n_states), self.greedy(task)] += 1.0 - epsilon
        return np.broadcast_to(pol, (horizon,) + pol.shape).copy()

    # ------------------------------------------------------------------ network
    def index_names(self):
        """Open index names of the network: ``("task", "s0", ..., "s{D-1}", "a")``."""
        return ("task",) + tuple(f"s{d}" for d in range(len(self.state_shape))) + ("a",)

    def to_tensor_network(self):
        """The CP form as a quimb TensorNetwork (a star on the shared rank index ``"k"``).

        Returns
        -------
        quimb.tensor.TensorNetwork
            Tensors tagged ``"TASK"``, ``"S0"``, ..., ``"ACTION"`` with indices
            ``(name, "k")`` (:func:`~tnmdp.adapters.cp.cp_network`); open indices
            ``task, s0, ..., s{D-1}, a``. ``tn.contract(output_inds=qt.index_names())`` equals
            :meth:`full` element by element.
        """
        tags = ["TASK"] + [f"S{d}" for d in range(len(self.state_shape))] + ["ACTION"]
        return cp_network(self.factors, self.index_names(), tags)
