"""Row-block models: an MDP whose transition operator exists only as blocks on workers.

A :class:`BlockMDP` is a *description*: sizes, the initial distribution, terminal rewards and a
picklable ``block_fn(lo, hi)`` that returns the transitions and expected rewards of the states
``lo..hi-1``. The blocks are built by calling ``block_fn`` on the Dask workers
(:meth:`BlockMDP.blocks`), validated there, and stay there: the client never holds the operator.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

__all__ = ["BlockMDP", "Block", "build_block"]


def _check_int(name, value, minimum, maximum=None):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} ({value!r})")
    if value < minimum or (maximum is not None and value > maximum):
        bound = f">= {minimum}" if maximum is None else f"in {minimum}..{maximum}"
        raise ValueError(f"{name} must be {bound}, got {value}")
    return int(value)


def _check_vector(name, vec, n_states, *, allow_neg_inf):
    vec = np.array(vec, dtype=np.float64)  # a copy: never alias the caller's array
    if vec.shape != (n_states,):
        raise ValueError(f"{name} must have shape (S,) = ({n_states},), got {vec.shape}")
    bad = np.isnan(vec) | (vec == np.inf) | ((vec == -np.inf) & (not allow_neg_inf))
    if bad.any():
        s = int(np.argmax(bad))
        raise ValueError(f"{name}[{s}] is {vec[s]}; "
                         + ("nan and +inf are" if allow_neg_inf else "only finite values are")
                         + " not allowed")
    return vec


class BlockMDP:
    """A finite MDP given by a function of row blocks, built on Dask workers.

    Construct with :meth:`from_function`. The model is the one a :class:`tnmdp.FiniteMDP` with
    stacked transitions ``(S*A, S)`` and expected rewards ``(S, A)`` (or ``(T, S, A, 1)``)
    would hold.

    Attributes
    ----------
    n_states, n_actions, horizon : int
    n_blocks : int
    bounds : tuple of (int, int)
        ``(lo, hi)`` of each block: ``lo = b S // n_blocks``.
    initial : ndarray, shape (S,)
    terminal_rewards : ndarray, shape (S,)
    discount, atol : float
    block_fn : callable
    """

    def __init__(self, n_states, n_actions, horizon, block_fn, n_blocks, initial,
                 terminal_rewards, discount, atol):
        self.n_states, self.n_actions, self.horizon = n_states, n_actions, horizon
        self.block_fn, self.n_blocks = block_fn, n_blocks
        self.bounds = tuple((b * n_states // n_blocks, (b + 1) * n_states // n_blocks)
                            for b in range(n_blocks))
        self.initial, self.terminal_rewards = initial, terminal_rewards
        self.discount, self.atol = discount, atol
        self._built = {}  # client id -> list of futures of Block

    @classmethod
    def from_function(cls, n_states, n_actions, horizon, block_fn, *, n_blocks, initial,
                      terminal_rewards=None, discount=1.0, atol=1e-9):
        """Describe an MDP by ``block_fn(lo, hi) -> (transitions, rewards)``.

        Parameters
        ----------
        n_states, n_actions, horizon : int
            ``S >= 1``, ``A >= 1``, ``T >= 1``.
        block_fn : callable
            Picklable (cloudpickle: closures and lambdas are fine); called on the workers with
            ``0 <= lo < hi <= S``. Returns ``(transitions, rewards)``:

            * ``transitions``: the rows ``s*A + a`` for ``lo <= s < hi`` -- a scipy.sparse
              matrix (CSR preferred) or ndarray of shape ``((hi - lo) A, S)`` with
              ``transitions[(s - lo) A + a, s'] = P(s'|s, a)``; or a length-``T`` sequence of
              them (time-dependent dynamics);
            * ``rewards``: expected rewards ``rbar[s - lo, a] = E[r_t | s, a]``, shape
              ``(hi - lo, A)``, or ``(T, hi - lo, A)`` time-dependent; ``-inf`` marks a
              forbidden pair, ``nan`` and ``+inf`` are rejected.

            It must return the same block whenever it is called with the same bounds: Dask
            may call it again on another worker after a failure.
        n_blocks : int
            Number of row blocks, ``1 <= n_blocks <= S``.
        initial : int or array_like, shape (S,)
            Initial state or distribution.
        terminal_rewards : array_like, shape (S,), optional
            ``-inf`` allowed; default zero.
        discount : float
            ``gamma`` in ``[0, 1]``.
        atol : float
            Tolerance on the normalisation of each transition row and of ``initial``.

        Returns
        -------
        BlockMDP

        Notes
        -----
        Nothing is built here: the blocks are built and validated on the workers by the first
        :func:`tnmdp.distributed.solve` or :func:`tnmdp.distributed.evaluate` with a client.
        """
        S = _check_int("n_states", n_states, 1)
        A = _check_int("n_actions", n_actions, 1)
        T = _check_int("horizon", horizon, 1)
        nb = _check_int("n_blocks", n_blocks, 1, S)
        if not callable(block_fn):
            raise TypeError(f"block_fn must be callable, got {type(block_fn).__name__}")
        if isinstance(atol, bool) or not isinstance(atol, numbers.Real) or not atol >= 0:
            raise ValueError(f"atol must be a number >= 0, got {atol!r}")
        if isinstance(discount, bool) or not isinstance(discount, numbers.Real) or not (
                0.0 <= discount <= 1.0):
            raise ValueError(f"discount must be a number in [0, 1], got {discount!r}")
        if isinstance(initial, numbers.Integral) and not isinstance(initial, bool):
            if not 0 <= initial < S:
                raise ValueError(f"initial state {initial} is outside 0..{S - 1}")
            init = np.zeros(S)
            init[int(initial)] = 1.0
        else:
            init = _check_vector("initial", initial, S, allow_neg_inf=False)
            if (init < 0).any():
                s = int(np.argmax(init < 0))
                raise ValueError(f"initial[{s}] is {init[s]}; probabilities must be >= 0")
            if abs(init.sum() - 1.0) > atol:
                raise ValueError(f"initial sums to {init.sum():.12g}, not 1 (atol={atol:g})")
        terminal = (np.zeros(S) if terminal_rewards is None else
                    _check_vector("terminal_rewards", terminal_rewards, S, allow_neg_inf=True))
        init.flags.writeable = terminal.flags.writeable = False
        return cls(S, A, T, block_fn, nb, init, terminal, float(discount), float(atol))

    def __repr__(self):
        return (f"BlockMDP(n_states={self.n_states}, n_actions={self.n_actions}, "
                f"horizon={self.horizon}, n_blocks={self.n_blocks}, discount={self.discount})")

    def blocks(self, client):
        """Futures of the built blocks on ``client``'s cluster (built and validated once).

        Block ``b`` is placed (loosely: any worker if that one is gone) on the ``b``-th worker
        in address order modulo the number of workers. Raises what ``block_fn`` or the
        validation raised on the worker (``ValueError`` naming the global ``(t, s, a)``,
        ``TypeError``).

        Returns
        -------
        list of distributed.Future, length n_blocks
        """
        from distributed import wait

        key = client.id
        futures = self._built.get(key)
        if futures is None:
            import uuid

            workers = sorted(client.nthreads())  # every worker (scheduler_info may truncate)
            token = uuid.uuid4().hex[:12]
            futures = [client.submit(build_block, self.block_fn, lo, hi, self.n_states,
                                     self.n_actions, self.horizon, self.atol,
                                     key=f"tnmdp-block-{token}-b{b}",
                                     workers=[workers[b % len(workers)]] if workers else None,
                                     allow_other_workers=True, pure=False)
                       for b, (lo, hi) in enumerate(self.bounds)]
            wait(futures)
            for future in futures:
                if future.status == "error":
                    future.result()  # raises the worker's exception, with its type
            self._built[key] = futures
        return futures

    def release(self, client=None):
        """Drop the blocks built on ``client``'s cluster (all clients when ``None``)."""
        for key in list(self._built) if client is None else [client.id]:
            for future in self._built.pop(key, ()):
                future.release()


class Block:
    """One built row block, held by a worker.

    Attributes
    ----------
    lo, hi : int
        The block's states.
    n_states : int
        ``S``, the number of columns.
    operators : tuple of tuple
        ``Operator.args`` (compiled form, shape ``((hi - lo) A, S)``) of each distinct
        transition matrix.
    index : ndarray of int, shape (T,) or None
        Operator of each time step (``None``: one operator for all).
    rewards : ndarray, shape (T|1, hi - lo, A)
    """

    def __init__(self, lo, hi, n_states, operators, index, rewards):
        self.lo, self.hi, self.n_states = lo, hi, n_states
        self.operators, self.index, self.rewards = operators, index, rewards
        self.nbytes = rewards.nbytes + sum(a.nbytes for args in operators for a in args[1:])

    def site(self, t):
        """``(Operator.args, rbar_t)`` of time step ``t``."""
        op = self.operators[0 if self.index is None else self.index[t]]
        return op, self.rewards[t if self.rewards.shape[0] > 1 else 0]

    def __sizeof__(self):  # what Dask counts for memory management and transfer costs
        return self.nbytes + 256


def _where(lo, hi):
    return f" (from block_fn(lo={lo}, hi={hi}))"


def _check_matrix(P, lo, hi, S, A, atol, t):
    """Validate one transition block; return its compiled operator arguments."""
    from .kernels import Operator

    n = hi - lo
    at = "" if t is None else f"t={t}, "
    name = "transitions" if t is None else f"transitions[{t}]"
    if sp.issparse(P):
        if P.shape != (n * A, S):
            raise ValueError(f"{name} has shape {P.shape}; the block needs ((hi - lo) * A, S) = "
                             f"({n * A}, {S}){_where(lo, hi)}")
        if not (np.issubdtype(P.dtype, np.floating) or np.issubdtype(P.dtype, np.integer)):
            raise TypeError(f"{name} must hold real numbers, got dtype {P.dtype}{_where(lo, hi)}")
        csr = sp.csr_matrix(P)  # shares the caller's arrays when P is CSR: edit a copy only
        if csr.dtype != np.float64:
            csr = csr.astype(np.float64)
        if not csr.has_canonical_format or not csr.data.all():
            csr = csr.copy()
            csr.sum_duplicates()
            csr.eliminate_zeros()
        data = csr.data
        bad = ~np.isfinite(data) | (data < 0)
        if bad.any():
            k = int(np.argmax(bad))
            row = int(np.searchsorted(csr.indptr, k, side="right") - 1)
            raise ValueError(f"transitions[{at}s={lo + row // A}, a={row % A}, "
                             f"s'={csr.indices[k]}] is {data[k]}; probabilities must be finite "
                             f"and >= 0{_where(lo, hi)}")
        sums = csr @ np.ones(S)
        matrix = csr
    else:
        arr = np.asarray(P)
        if arr.shape != (n * A, S):
            raise ValueError(f"{name} has shape {arr.shape}; the block needs ((hi - lo) * A, S) "
                             f"= ({n * A}, {S}){_where(lo, hi)}")
        if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
            raise TypeError(f"{name} must hold real numbers, got dtype {arr.dtype}"
                            f"{_where(lo, hi)}")
        bad = ~np.isfinite(arr) | (arr < 0)
        if bad.any():
            row, col = (int(i) for i in np.unravel_index(int(np.argmax(bad)), arr.shape))
            raise ValueError(f"transitions[{at}s={lo + row // A}, a={row % A}, s'={col}] is "
                             f"{arr[row, col]}; probabilities must be finite and >= 0"
                             f"{_where(lo, hi)}")
        matrix = np.array(arr, dtype=np.float64)
        sums = matrix.sum(axis=1)
    off = np.abs(sums - 1.0) > atol
    if off.any():
        row = int(np.argmax(off))
        raise ValueError(f"transitions[{at}s={lo + row // A}, a={row % A}] sums to "
                         f"{sums[row]:.12g}, not 1 (atol={atol:g}){_where(lo, hi)}")
    return Operator(matrix).args


def _check_rewards(rewards, lo, hi, A, T):
    arr = np.asarray(rewards)
    n = hi - lo
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.floating)
                                   or np.issubdtype(arr.dtype, np.integer)):
        raise TypeError(f"rewards must hold real numbers, got dtype {arr.dtype}{_where(lo, hi)}")
    if arr.shape not in ((n, A), (T, n, A)):
        raise ValueError(f"rewards has shape {arr.shape}; the block needs (hi - lo, A) = "
                         f"({n}, {A}) or (T, hi - lo, A) = ({T}, {n}, {A}){_where(lo, hi)}")
    arr = np.array(arr, dtype=np.float64).reshape((-1, n, A))
    bad = np.isnan(arr) | (arr == np.inf)
    if bad.any():
        t, s, a = (int(i) for i in np.unravel_index(int(np.argmax(bad)), arr.shape))
        at = "" if rewards.ndim == 2 else f"t={t}, "
        raise ValueError(f"rewards[{at}s={lo + s}, a={a}] is {arr[t, s, a]}; nan and +inf are "
                         f"not allowed{_where(lo, hi)}")
    return arr


def build_block(block_fn, lo, hi, n_states, n_actions, horizon, atol):
    """Call ``block_fn(lo, hi)`` (on a worker), validate its output and compile it.

    Returns
    -------
    Block

    Raises
    ------
    TypeError, ValueError
        Naming the global ``(t, s, a)`` (``t`` for time-dependent blocks) and the block.
    """
    out = block_fn(lo, hi)
    if not isinstance(out, tuple) or len(out) != 2:
        raise TypeError(f"block_fn(lo={lo}, hi={hi}) must return a tuple (transitions, "
                        f"rewards), got {type(out).__name__}")
    transitions, rewards = out
    rewards = np.asarray(rewards) if not isinstance(rewards, np.ndarray) else rewards
    if sp.issparse(transitions) or isinstance(transitions, np.ndarray):
        operators = (_check_matrix(transitions, lo, hi, n_states, n_actions, atol, None),)
        index = None
    elif isinstance(transitions, Sequence) and not isinstance(transitions, str):
        if len(transitions) != horizon:
            raise ValueError(f"transitions is a sequence of {len(transitions)} matrices; expected "
                             f"one per time step (horizon={horizon}){_where(lo, hi)}")
        seen, ops, index = {}, [], np.empty(horizon, dtype=np.int64)
        for t, P in enumerate(transitions):
            if id(P) not in seen:  # the same matrix reused along time: compiled once
                seen[id(P)] = len(ops)
                ops.append(_check_matrix(P, lo, hi, n_states, n_actions, atol, t))
            index[t] = seen[id(P)]
        operators = tuple(ops)
    else:
        raise TypeError(f"transitions must be a sparse matrix, an ndarray or a sequence of them, "
                        f"got {type(transitions).__name__}{_where(lo, hi)}")
    return Block(lo, hi, n_states, operators, index,
                 _check_rewards(rewards, lo, hi, n_actions, horizon))
