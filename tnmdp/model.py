"""The finite episodic MDP: validation at the boundary and compact storage.

A :class:`FiniteMDP` holds, for every time step ``t = 0..T-1``,

* the transition operator ``P_t`` as a matrix of shape ``(S*A, S)`` whose row ``s*A + a`` is
  ``P_t(. | s, a)`` -- a dense ndarray or a scipy CSR matrix (no stored zeros), shared between
  time steps when the dynamics are stationary;
* the reward ``R_t(s, a, s')`` as a 4-d array of shape ``(T|1, S|1, A|1, S|1)`` that broadcasts to
  ``(T, S, A, S)`` and is never materialised at full size.

Everything downstream (environments, sweeps, networks) reads the MDP through the per-site
accessors :meth:`FiniteMDP.transition_matrix`, :meth:`FiniteMDP.expected_reward` and
:meth:`FiniteMDP.weighted_transitions`; inner kernels trust what these return.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

from ._pydata import is_pydata_sparse, pydata_to_scipy

__all__ = ["FiniteMDP", "as_rng"]


def as_rng(rng):
    """Return a ``numpy.random.Generator`` from ``None``, an int seed or a Generator."""
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or isinstance(rng, (numbers.Integral, np.random.SeedSequence)):
        return np.random.default_rng(rng)
    raise TypeError(f"rng must be None, an int or a numpy.random.Generator, not {type(rng).__name__}")


def _check_int(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, not {type(value).__name__} ({value!r})")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def _first_index(mask):
    """Index tuple of the first True entry of a boolean array."""
    return tuple(int(i) for i in np.unravel_index(int(np.argmax(mask)), mask.shape))


def _check_real(name, array, *, allow_neg_inf=False):
    """Raise if ``array`` holds nan, +inf (or -inf unless allowed) or is not real."""
    if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)
            or array.dtype == bool):
        raise TypeError(f"{name} must hold real numbers, got dtype {array.dtype}")
    bad = np.isnan(array) | (array == np.inf)
    if not allow_neg_inf:
        bad |= array == -np.inf
    if bad.any():
        idx = _first_index(bad)
        raise ValueError(f"{name}{list(idx)} is {array[idx]}; "
                         + ("values must be finite or -inf (nan and +inf are not allowed)"
                            if allow_neg_inf else "values must be finite"))


def _identity(x):
    return x


def _check_continuing(transitions, rewards, terminal_rewards):
    """Refuse time-dependent data and terminal rewards for ``horizon=None``."""
    need = "a continuing MDP (horizon=None) needs stationary "
    if terminal_rewards is not None:
        raise ValueError("terminal_rewards is not allowed for a continuing MDP (horizon=None): "
                         "there is no final time")
    if not sp.issparse(transitions):
        if (isinstance(transitions, Sequence) and not isinstance(transitions, np.ndarray)
                and len(transitions) > 0 and sp.issparse(transitions[0])):
            raise ValueError(f"transitions is a sequence of {len(transitions)} per-time-step "
                             f"matrices; {need}transitions: one (S, A, S) array or one sparse "
                             "(S*A, S) matrix")
        if np.ndim(transitions) == 4:
            raise ValueError(f"transitions has shape {np.shape(transitions)} (time-dependent); "
                             f"{need}transitions of shape (S, A, S) or (S*A, S)")
    if np.ndim(rewards) == 4 and np.shape(rewards)[0] != 1:
        raise ValueError(f"rewards has shape {np.shape(rewards)} (time-dependent); {need}"
                         "rewards: (S, A), (S, A, S') or (1, S, A, S')")


def _from_pydata(transitions):
    """pydata ``sparse`` input (one array, or a sequence of them) as scipy CSR, converted once
    per distinct object so that a repeated operator stays shared."""
    if is_pydata_sparse(transitions):
        return pydata_to_scipy(transitions, name="transitions")
    if isinstance(transitions, (list, tuple)) and transitions and is_pydata_sparse(
            transitions[0]):
        done = {}
        for t, op in enumerate(transitions):
            if id(op) not in done:
                done[id(op)] = pydata_to_scipy(op, name=f"transitions[{t}]")
        return [done[id(op)] for op in transitions]
    return transitions


#: Dense transitions with at most this fraction of non-zero entries are stored as CSR: a CSR
#: product reads ~12 bytes and a random gather per stored entry, a dense one 8 bytes per entry
#: (``benchmarks/sparse_bandwidth.py``, S=512, A=4: CSR's CPU time is below dense's up to a
#: density of ~0.2, and 0.5-0.6x of it at 0.1, the threshold).
SPARSE_DENSITY = 0.1

#: ...for operators of at least this many entries (``S*A*S``; 8 MB): smaller ones stay dense.
SPARSE_MIN_SIZE = 2**20


class FiniteMDP:
    """A finite, episodic Markov decision process.

    Parameters
    ----------
    transitions : array_like or sparse matrix or sequence of sparse matrices
        ``P[s, a, s']`` as a dense ndarray of shape ``(S, A, S)`` (stationary) or
        ``(T, S, A, S)`` (time-dependent); or a scipy.sparse matrix of shape ``(S*A, S)`` with row
        ``s*A + a``; or a length-``T`` sequence of such sparse matrices (or of dense ``(S, A, S)``
        arrays).
    rewards : array_like
        ``R[s, a, s']`` by number of dimensions: 2 -- ``(S, A)``; 3 -- ``(S, A, S')``; 4 --
        ``(T, S, A, S')``; any axis may be 1 and broadcasts. ``-inf`` marks a forbidden transition;
        ``nan`` and ``+inf`` are rejected.
    horizon : int or None
        Number of decisions ``T >= 1``; ``None`` for a continuing MDP (stationary transitions
        and rewards, no terminal rewards; ``discount < 1`` is the discounted criterion,
        ``discount == 1`` the average-reward one; see :mod:`tnmdp.continuing`).
    initial : int or array_like, shape (S,)
        Initial state, or distribution over states.
    terminal_rewards : array_like, shape (S,), optional
        Reward ``terminal(s_T)`` collected at the end (``-inf`` allowed). Default zero.
    discount : float, optional
        Discount factor ``gamma`` in ``[0, 1]``. Default 1.
    atol : float, optional
        Absolute tolerance on the normalisation of ``transitions`` and ``initial``.
    stopping : array_like, shape (T,), optional
        A random episode length ``N``, independent of the trajectory: ``stopping[n-1] =
        Pr(N = n)``, ``n = 1..T``. The return is ``sum_{t<N} gamma^t r_t + gamma^N
        terminal(s_N)`` and ``E[G]`` averages over ``N`` too. Implemented as survival weights
        of the per-site rewards (``Pr(N > t)`` multiplies ``r_t``; ``gamma Pr(N = t+1)``
        multiplies ``terminal(s_{t+1})`` at site ``t``), so every sweep optimises and evaluates
        it unchanged; ``terminal_rewards`` then reads 0 (they are paid at the stop), ``rewards``
        the weighted array with a time axis. Only :func:`tnmdp.solve` and
        :func:`tnmdp.evaluate` accept such a model.

    Warnings
    --------
    A 3-d ``transitions`` array is read as ``P[s, a, s']``. pymdptoolbox stores ``P[a, s, s']``:
    when ``A == S`` such an array has the same shape and is silently read the wrong way round.
    Convert with :func:`tnmdp.from_mdptoolbox` (and :func:`tnmdp.from_gymnasium`,
    :func:`tnmdp.from_quantecon` for those libraries). pydata ``sparse`` arrays are accepted
    where scipy sparse ones are (and as a 3-d ``(S, A, S)`` COO), converted once to CSR.

    Notes
    -----
    Storage is ``O(nnz(P))`` per distinct transition operator plus the reward array as given:
    broadcast forms (e.g. an arrival reward ``(1, 1, S)``, or a ``np.broadcast_to`` view with a
    zero stride along time) are never expanded.
    """

    def __init__(self, transitions, rewards, horizon, initial, terminal_rewards=None, *,
                 discount=1.0, atol=1e-9, stopping=None):
        if horizon is None:  # a continuing MDP: stationary data only (tnmdp.continuing)
            _check_continuing(transitions, rewards, terminal_rewards)
        self.horizon = None if horizon is None else _check_int("horizon", horizon, 1)
        if not isinstance(atol, numbers.Real) or not atol >= 0:
            raise ValueError(f"atol must be a non-negative number, got {atol!r}")
        self.atol = float(atol)
        self._transitions, self.n_states, self.n_actions = self._read_transitions(transitions)
        self._rewards = self._read_rewards(rewards)
        self.initial = self._read_initial(initial)
        self.terminal_rewards = self._read_terminal(terminal_rewards)
        if not isinstance(discount, numbers.Real) or not 0.0 <= discount <= 1.0:
            raise ValueError(f"discount must be a number in [0, 1], got {discount!r}")
        self.discount = float(discount)
        self._reward_law = None
        self._expected_reward_cache = {}
        self._site_cache = {}
        self.stopping = None
        if stopping is not None:
            self._apply_stopping(stopping)

    def _apply_stopping(self, stopping):
        """Random episode length ``N ~ stopping`` (``stopping[n-1] = Pr(N = n)``): the reward of
        site ``t`` is weighted by ``Pr(N > t)`` and the terminal reward, paid at the stop, by
        ``gamma Pr(N = t + 1)`` at site ``t`` -- added to the site's reward per ``s'`` when that
        depends on ``s'``, else as its expectation given ``(s, a)``. Everything lives in the
        reward array, so saving and pickling keep it (not ``stopping`` itself)."""
        T, S = self.horizon, self.n_states
        if T is None:
            raise ValueError("stopping= needs a finite horizon; a continuing MDP has none")
        pmf = np.asarray(stopping, dtype=np.float64) if not isinstance(stopping, str) else None
        if pmf is None or pmf.shape != (T,):
            raise ValueError(f"stopping must be a (T,) = ({T},) distribution of the episode "
                             f"length, got {np.shape(stopping) if pmf is not None else stopping!r}")
        _check_real("stopping", pmf)
        if (pmf < 0).any():
            n = int(np.argmax(pmf < 0))
            raise ValueError(f"stopping[{n}] (Pr(length = {n + 1})) is {pmf[n]}; probabilities "
                             "must be >= 0")
        if abs(pmf.sum() - 1.0) > self.atol:
            raise ValueError(f"stopping sums to {pmf.sum():.12g}, not 1 (atol={self.atol:g})")
        if self._reward_law is not None:
            raise ValueError("stopping= is not supported with a stochastic reward law")
        survival = pmf[::-1].cumsum()[::-1]  # Pr(N > t) = sum_{n > t} pmf[n-1], t = 0..T-1
        stop = self.discount * pmf  # weight of terminal(s_{t+1}) at site t
        with np.errstate(invalid="ignore"):
            w = survival.reshape(T, 1, 1, 1)
            rewards = np.where(w > 0, w * self._rewards, 0.0)  # 0 * -inf is 0: never reached
            term = self.terminal_rewards
            if (term != 0).any() and rewards.shape[3] > 1:  # s'-dependent: add it per s'
                tw = stop.reshape(T, 1, 1, 1)
                rewards = rewards + np.where(tw > 0, tw * term, 0.0)
            elif (term != 0).any():  # state-action rewards: add its expectation given (s, a)
                from .kernels import matvec
                rewards = np.array(np.broadcast_to(rewards, (T, S, self.n_actions, 1)))
                for t in np.flatnonzero(stop > 0):
                    rewards[t, :, :, 0] += stop[t] * matvec(self.transition_matrix(t),
                                                            term).reshape(S, self.n_actions)
        self._rewards = rewards
        self.terminal_rewards = np.zeros(S)  # Pr(N > T) = 0: nothing is paid at T
        self.stopping = pmf

    def require_fixed_length(self, what):
        """Raise ``ValueError`` if the episode length is random (``stopping=``)."""
        if self.stopping is not None:
            raise ValueError(f"{what} needs a fixed episode length; this MDP has a random one "
                             "(stopping=): only solve and evaluate support it")

    # ------------------------------------------------------------------ construction
    def _read_transitions(self, transitions):
        T = self.horizon
        transitions = _from_pydata(transitions)
        if sp.issparse(transitions):
            ops = [transitions]
        elif isinstance(transitions, Sequence) and not isinstance(transitions, np.ndarray) and (
                len(transitions) > 0 and sp.issparse(transitions[0])):
            if len(transitions) != T:
                raise ValueError(f"transitions is a sequence of {len(transitions)} matrices; "
                                 f"expected one per time step (horizon={T})")
            ops = list(transitions)
        else:
            dense = np.asarray(transitions)
            if dense.dtype == object or not dense.ndim:
                raise TypeError(f"transitions must be an (S, A, S) or (T, S, A, S) array, a "
                                f"scipy or pydata sparse (S*A, S) matrix or a sequence of them; "
                                f"got {type(transitions).__name__}")
            if dense.ndim == 2 and dense.shape[1] and dense.shape[0] % dense.shape[1] == 0:
                # (S*A, S), row s*A + a: the layout sparse input uses
                dense = dense.reshape(dense.shape[1], dense.shape[0] // dense.shape[1],
                                      dense.shape[1])
            if dense.ndim == 3:
                ops = [dense]
            elif dense.ndim == 4:
                if dense.shape[0] != T:
                    raise ValueError(f"transitions has shape {dense.shape}: its first axis "
                                     f"({dense.shape[0]}) must equal horizon ({T})")
                ops = list(dense)
            else:
                raise ValueError(f"transitions must have shape (S, A, S), (S*A, S) or "
                                 f"(T, S, A, S), or be sparse (S*A, S); got shape {dense.shape}")
        matrices, shape_sa = [], None
        cache = {}
        for t, op in enumerate(ops):
            key = id(op)
            if key in cache:  # the same object reused along time: store it once
                matrices.append(cache[key])
                continue
            mat, n_states, n_actions = self._read_operator(op, t if len(ops) > 1 else None)
            if shape_sa is None:
                shape_sa = (n_states, n_actions)
            elif shape_sa != (n_states, n_actions):
                raise ValueError(f"transitions[t={t}] has S={n_states}, A={n_actions}; "
                                 f"transitions[t=0] has S={shape_sa[0]}, A={shape_sa[1]}")
            cache[key] = mat
            matrices.append(mat)
        distinct = list({id(m): m for m in matrices}.values())
        if all(not sp.issparse(m) and m.size >= SPARSE_MIN_SIZE
               and np.count_nonzero(m) <= SPARSE_DENSITY * m.size for m in distinct):
            # mostly zeros (every step): CSR products are faster; one format for all steps
            as_csr = {id(m): sp.csr_array(m) for m in distinct}
            matrices = [as_csr[id(m)] for m in matrices]
        return tuple(matrices), shape_sa[0], shape_sa[1]

    def _read_operator(self, op, t):
        """Validate one transition operator; return it as (S*A, S) ndarray or CSR, S, A."""
        where = "" if t is None else f"t={t}, "
        if sp.issparse(op):
            n_rows, n_states = op.shape
            if n_states == 0 or n_rows % n_states:
                raise ValueError(f"sparse transitions{'' if t is None else f'[t={t}]'} has shape "
                                 f"{op.shape}; expected (S*A, S)")
            n_actions = n_rows // n_states
            mat = sp.csr_array(op, dtype=np.float64, copy=True)
            mat.sum_duplicates()
            _check_real("transitions.data", mat.data)
            if (mat.data < 0).any():
                k = int(np.argmax(mat.data < 0))
                row = int(np.searchsorted(mat.indptr, k, side="right") - 1)
                raise ValueError(f"transitions[{where}s={row // n_actions}, a={row % n_actions}, "
                                 f"s'={mat.indices[k]}] is {mat.data[k]}; probabilities must be >= 0")
            mat.eliminate_zeros()
            mat.sort_indices()
            sums = np.asarray(mat.sum(axis=1)).ravel()
        else:
            arr = np.asarray(op)
            if arr.ndim != 3 or arr.shape[0] != arr.shape[2]:
                raise ValueError(f"transitions{'' if t is None else f'[t={t}]'} has shape "
                                 f"{arr.shape}; expected (S, A, S)")
            n_states, n_actions = arr.shape[0], arr.shape[1]
            _check_real("transitions" + ("" if t is None else f"[{t}]"), arr)
            if (arr < 0).any():
                s, a, s2 = _first_index(arr < 0)
                raise ValueError(f"transitions[{where}s={s}, a={a}, s'={s2}] is {arr[s, a, s2]}; "
                                 "probabilities must be >= 0")
            # a copy, read-only: editing the caller's array later changes nothing here
            mat = np.array(arr, dtype=np.float64, order="C").reshape(n_states * n_actions, n_states)
            sums = mat.sum(axis=1)
            mat.flags.writeable = False
        if n_actions == 0:
            raise ValueError("transitions must have at least one action")
        bad = np.abs(sums - 1.0) > self.atol
        if bad.any():
            row = int(np.argmax(bad))
            raise ValueError(f"transitions[{where}s={row // n_actions}, a={row % n_actions}] sums to "
                             f"{sums[row]:.12g}, not 1 (atol={self.atol:g})")
        return mat, n_states, n_actions

    def _read_rewards(self, rewards):
        S, A, T = self.n_states, self.n_actions, self.horizon
        arr = np.asarray(rewards)
        if arr.dtype == object:
            raise TypeError("rewards must be a numeric array")
        shapes = {2: ("(S, A)", (S, A)), 3: ("(S, A, S')", (S, A, S)),
                  4: ("(T, S, A, S')", (T, S, A, S))}
        if arr.ndim not in shapes:
            raise ValueError(f"rewards must have 2, 3 or 4 dimensions ((S, A), (S, A, S') or "
                             f"(T, S, A, S')), got shape {arr.shape}")
        label, full = shapes[arr.ndim]
        for axis, (n, m) in enumerate(zip(arr.shape, full)):
            if n not in (1, m):
                raise ValueError(f"rewards has shape {arr.shape}, which does not broadcast to "
                                 f"{label} = {full}: axis {axis} has length {n}")
        _check_real("rewards", arr, allow_neg_inf=True)
        if arr.ndim == 2:
            arr = arr[None, :, :, None]
        elif arr.ndim == 3:
            arr = arr[None]
        # A stride-0 axis (np.broadcast_to) holds one value: keep a single slice.
        index = tuple(slice(0, 1) if (n > 1 and st == 0) else slice(None)
                      for n, st in zip(arr.shape, arr.strides))
        arr = np.array(arr[index], dtype=np.float64)  # a copy of the compact form
        arr.flags.writeable = False
        return arr

    def _read_initial(self, initial):
        S = self.n_states
        if isinstance(initial, numbers.Integral) and not isinstance(initial, bool):
            if not 0 <= initial < S:
                raise ValueError(f"initial state {initial} is outside 0..{S - 1}")
            vec = np.zeros(S)
            vec[int(initial)] = 1.0
            vec.flags.writeable = False
            return vec
        if np.ndim(initial) == 0:
            raise TypeError(f"initial must be an int state index or a distribution of shape "
                            f"(S,) = ({S},); got {type(initial).__name__} {initial!r}")
        vec = np.array(initial, dtype=np.float64)
        if vec.shape != (S,):
            raise ValueError(f"initial must be an int state index or a distribution of shape "
                             f"(S,) = ({S},); got shape {vec.shape}")
        _check_real("initial", vec)
        if (vec < 0).any():
            s = int(np.argmax(vec < 0))
            raise ValueError(f"initial[{s}] is {vec[s]}; probabilities must be >= 0")
        if abs(vec.sum() - 1.0) > self.atol:
            raise ValueError(f"initial sums to {vec.sum():.12g}, not 1 (atol={self.atol:g})")
        vec.flags.writeable = False
        return vec

    def _read_terminal(self, terminal):
        if terminal is None:
            vec = np.zeros(self.n_states)
            vec.flags.writeable = False
            return vec
        vec = np.array(terminal, dtype=np.float64)  # a copy, read-only
        if vec.shape != (self.n_states,):
            raise ValueError(f"terminal_rewards must have shape (S,) = ({self.n_states},), "
                             f"got {vec.shape}")
        _check_real("terminal_rewards", vec, allow_neg_inf=True)
        vec.flags.writeable = False
        return vec

    @classmethod
    def from_joint(cls, p, reward_values, horizon, initial, terminal_rewards=None, *,
                   discount=1.0, atol=1e-9):
        """Build an MDP from the paper's joint law ``p_t(s', r | s, a)`` over a finite alphabet.

        Parameters
        ----------
        p : array_like, shape (S, A, S, K) or (T, S, A, S, K)
            ``p[..., s, a, s', k] = Pr(s_{t+1} = s', r_t = reward_values[k] | s, a)``.
        reward_values : array_like, shape (K,)
            The finite reward alphabet (finite values).
        horizon, initial, terminal_rewards, discount, atol
            As for :class:`FiniteMDP`.

        Notes
        -----
        Transitions are ``sum_k p``; the expected reward given ``(s, a, s')`` is kept for
        :func:`tnmdp.evaluate`, and the whole conditional law of the reward for
        :func:`tnmdp.moments`.
        """
        p = np.asarray(p, dtype=np.float64)
        values = np.asarray(reward_values, dtype=np.float64)
        if values.ndim != 1 or values.size == 0:
            raise ValueError(f"reward_values must be a non-empty 1-d array, got shape {values.shape}")
        _check_real("reward_values", values)
        if p.ndim not in (4, 5) or p.shape[-1] != values.size:
            raise ValueError(f"p must have shape (S, A, S, K) or (T, S, A, S, K) with "
                             f"K = len(reward_values) = {values.size}; got {p.shape}")
        _check_real("p", p)
        if (p < 0).any():
            idx = _first_index(p < 0)
            raise ValueError(f"p{list(idx)} is {p[idx]}; probabilities must be >= 0")
        transitions = p.sum(axis=-1)
        with np.errstate(invalid="ignore", divide="ignore"):
            law = np.where(transitions[..., None] > 0, p / transitions[..., None], 0.0)
        mean = law @ values
        if p.ndim == 4:
            law, mean = law[None], mean[None]
        mdp = cls(transitions, mean if p.ndim == 5 else mean[0], horizon, initial,
                  terminal_rewards, discount=discount, atol=atol)
        mdp._reward_law = (law, values)
        return mdp

    # ------------------------------------------------------------------ saving and pickling
    def save(self, path):
        """Save to a versioned ``.npz`` file (no pickle; compact reward and sparse forms kept).

        Parameters
        ----------
        path : str or os.PathLike or file-like
            NumPy adds ``.npz`` to a name without it. Read back with :meth:`load`.
        """
        from ._npz import mdp_state, save_state

        save_state(path, "FiniteMDP", mdp_state(self))

    @classmethod
    def load(cls, path):
        """Load a model written by :meth:`save` (revalidated as by the constructor).

        Raises
        ------
        ValueError
            A truncated, damaged or foreign file, a newer file version, or a saved Solution.
        """
        from ._npz import load_state

        return cls._from_state(load_state(path, "FiniteMDP")[1])

    @classmethod
    def _from_state(cls, state):
        from ._npz import mdp_arguments

        args, kwargs, law = mdp_arguments(state)
        mdp = cls(*args, **kwargs)
        if law is not None:
            mdp._reward_law = law
        return mdp

    def __reduce_ex__(self, protocol):
        # pickle and deepcopy through the saved state: caches keyed by id() never travel; a
        # subclass with state of its own pickles as Python does by default
        if type(self) is not FiniteMDP:
            return super().__reduce_ex__(protocol)
        from ._npz import mdp_state

        return (FiniteMDP._from_state, (mdp_state(self),))

    # ------------------------------------------------------------------ properties
    def __repr__(self):
        kind = "sparse" if self.is_sparse else "dense"
        stat = "stationary" if self.stationary_transitions else "time-dependent"
        return (f"FiniteMDP(n_states={self.n_states}, n_actions={self.n_actions}, "
                f"horizon={self.horizon}, {kind} {stat} transitions, discount={self.discount})")

    @property
    def continuing(self):
        """True for a continuing MDP (``horizon=None``): see :mod:`tnmdp.continuing`."""
        return self.horizon is None

    def require_horizon(self):
        """Raise ``ValueError`` for a continuing MDP (for finite-horizon-only functions)."""
        if self.horizon is None:
            raise ValueError("mdp is continuing (horizon=None); this function needs a finite "
                             "horizon. Continuing MDPs: tnmdp.solve, tnmdp.evaluate, "
                             "tnmdp.classify, tnmdp.scgf, doob_transform(..., stationary=True)")

    @property
    def is_sparse(self):
        """True when the transition operators are stored as CSR matrices."""
        return sp.issparse(self._transitions[0])

    @property
    def stationary_transitions(self):
        """True when one transition operator serves every time step."""
        return all(m is self._transitions[0] for m in self._transitions)

    @property
    def rewards(self):
        """Reward array of shape ``(T|1, S|1, A|1, S|1)`` broadcasting to ``(T, S, A, S)``."""
        return self._rewards

    @property
    def has_neg_inf(self):
        """True when some reward (or terminal reward) is ``-inf``."""
        return bool(np.isneginf(self._rewards).any() or np.isneginf(self.terminal_rewards).any())

    def reward_kind(self):
        """``"state_action"`` (no ``s'`` dependence), ``"arrival"`` (``s'`` only) or ``"full"``."""
        _, n_s, n_a, n_next = self._rewards.shape
        if n_next == 1:
            return "state_action"
        if n_s == 1 and n_a == 1:
            return "arrival"
        return "full"

    # ------------------------------------------------------------------ per-site accessors
    def transition_matrix(self, t):
        """``P_t`` as an ``(S*A, S)`` ndarray or CSR matrix; row ``s*A + a``."""
        return self._transitions[t if len(self._transitions) > 1 else 0]

    def reward_slice(self, t):
        """``R_t`` as an array of shape ``(S|1, A|1, S|1)``."""
        return self._rewards[t if self._rewards.shape[0] > 1 else 0]

    def _site_key(self, t):
        """A key equal for time steps whose transitions and rewards coincide."""
        return (id(self.transition_matrix(t)), t if self._rewards.shape[0] > 1 else -1)

    def cached(self, key, build):
        """``build()``, computed once per model and ``key``, kept as long as the model lives.

        The one cache of data derived from this model's operators (e.g. a transition matrix
        packed for the compiled kernels, :mod:`tnmdp.backends`): owned by the model, so it is
        freed with it and never shared between models. Keys naming a stored operator use
        ``id(self.transition_matrix(t))``, which the model keeps alive.
        """
        cache = self.__dict__.setdefault("_site_cache", {})
        if key not in cache:
            cache[key] = build()
        return cache[key]

    def expected_reward(self, t):
        """``rbar_t[s, a] = sum_s' P_t(s'|s,a) R_t(s,a,s')``, shape ``(S, A)``.

        ``-inf`` where a forbidden transition has positive probability; a ``-inf`` reward on a
        transition of probability zero contributes nothing. Cached for stationary sites.
        """
        key = self._site_key(t)
        cached = self._expected_reward_cache.get(key)
        if cached is not None:
            return cached
        S, A = self.n_states, self.n_actions
        reward = self.reward_slice(t)
        kind = self.reward_kind()
        if kind == "state_action":
            rbar = np.broadcast_to(reward[:, :, 0], (S, A)).astype(np.float64)
        elif kind == "arrival":
            from .kernels import matvec
            rbar = matvec(self.transition_matrix(t), reward[0, 0]).reshape(S, A)
        else:
            rbar = np.asarray(self.weighted_transitions(t, _identity).sum(axis=1)).reshape(S, A)
        if len(self._expected_reward_cache) > 4:
            self._expected_reward_cache.clear()
        self._expected_reward_cache[key] = rbar
        return rbar

    def reward_power_law(self, t):
        """The conditional reward law at ``t``: ``(law, values)`` or ``None`` (deterministic).

        ``law`` has shape ``(S, A, S, K)``: ``Pr(r_t = values[k] | s, a, s')``.
        """
        if self._reward_law is None:
            return None
        law, values = self._reward_law
        return law[t if law.shape[0] > 1 else 0], values

    def weighted_transitions(self, t, transform):
        """``W[s*A + a, s'] = P_t(s'|s,a) E[transform(r_t) | s, a, s']``, same format as ``P_t``.

        Parameters
        ----------
        t : int
        transform : callable
            Elementwise function of reward values (``lambda r: r ** 2``, ``np.exp``, ...).

        Entries where ``P_t`` is zero are zero even for ``-inf`` rewards. A new matrix that shares
        no array with ``P_t``. Cost ``O(nnz(P_t))``.
        """
        S, A = self.n_states, self.n_actions
        P = self.transition_matrix(t)
        law = self.reward_power_law(t)
        if law is not None:
            dist, values = law
            moment = (dist @ transform(values)).reshape(S * A, S)
        else:
            moment = None
            reward = self.reward_slice(t)
        if sp.issparse(P):
            rows = np.repeat(np.arange(S * A), np.diff(P.indptr))
            cols = P.indices
            if moment is not None:
                r = moment[rows, cols]
            else:
                s_idx = rows // A if reward.shape[0] > 1 else 0
                a_idx = rows % A if reward.shape[1] > 1 else 0
                c_idx = cols if reward.shape[2] > 1 else 0
                r = np.broadcast_to(transform(reward[s_idx, a_idx, c_idx]), cols.shape)
            # own index arrays: a caller may edit the result (eliminate_zeros) without touching P
            return sp.csr_array((P.data * r, P.indices.copy(), P.indptr.copy()), shape=P.shape)
        if moment is None:
            moment = np.broadcast_to(transform(reward), (S, A, S)).reshape(S * A, S)
        with np.errstate(invalid="ignore"):
            return np.where(P > 0, P * moment, 0.0)
