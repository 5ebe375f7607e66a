"""Models in and out: gymnasium, pymdptoolbox and QuantEcon.

Each converter reads the other library's model *exactly* and returns a :class:`tnmdp.FiniteMDP`
(or hands one out in the other library's layout); the other libraries are optional and are
imported only inside the functions that need them.

========================  ===================================================================
``from_gymnasium``        a toy-text style ``gymnasium`` env (its model ``env.unwrapped.P``)
``to_gymnasium``          a ``gymnasium.Env`` that samples a ``FiniteMDP``
``from_mdptoolbox``       pymdptoolbox ``(P, R)``: ``P[a, s, s']`` -- note: action first
``to_mdptoolbox``         ``(P, R)`` in that layout
``from_quantecon``        ``quantecon.markov.DiscreteDP`` (product or state-action-pair form)
``to_quantecon``          a ``DiscreteDP``
========================  ===================================================================

Layout trap: pymdptoolbox stores transitions as ``(A, S, S)``; :class:`tnmdp.FiniteMDP` reads a
3-d array as ``(S, A, S)``. When ``A == S`` both shapes agree and a raw array passed to
``FiniteMDP`` is silently read the wrong way round: use :func:`from_mdptoolbox`.

Conventions of the finite-horizon values match the other libraries: pymdptoolbox's
``FiniteHorizon(P, R, discount, N, h).V[:, t]`` and QuantEcon's
``backward_induction(ddp, T, v_term)[0][t]`` are both :attr:`tnmdp.Solution.value_function` ``[t]``
of the converted model (with ``terminal_rewards = h`` or ``v_term``).
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

from ._pydata import is_pydata_sparse, pydata_to_scipy
from .model import FiniteMDP

__all__ = ["from_gymnasium", "to_gymnasium", "from_mdptoolbox", "to_mdptoolbox",
           "from_quantecon", "to_quantecon"]


# --------------------------------------------------------------------------- gymnasium
def _discrete_size(space, name):
    """``(n, start)`` of a ``gymnasium.spaces.Discrete`` space; ``ValueError`` otherwise."""
    from gymnasium.spaces import Discrete

    if not isinstance(space, Discrete):
        raise ValueError(f"env.{name} is {space!r}, not gymnasium.spaces.Discrete: tnmdp needs "
                         "finite, flat state and action sets")
    return int(space.n), int(space.start)


def from_gymnasium(env, horizon=None, *, discount=1.0, initial=None, **make_kwargs):
    """A :class:`tnmdp.FiniteMDP` from a gymnasium environment's model ``env.unwrapped.P``.

    Parameters
    ----------
    env : gymnasium.Env or str
        An environment, or an id for ``gymnasium.make(env, **make_kwargs)``. Wrappers
        (``TimeLimit`` included) are looked through: the model is ``env.unwrapped.P``, the dict
        of toy-text environments, ``P[s][a] = [(prob, next_state, reward, terminated), ...]``.
    horizon : int, optional
        Number of decisions ``T``. Default: the env's ``spec.max_episode_steps`` (its
        ``TimeLimit``), e.g. 100 for ``FrozenLake-v1``.
    discount : float
        ``gamma`` in ``[0, 1]``.
    initial : int or array_like (S,), optional
        Initial state or distribution over the env's ``S`` states. Default: the env's
        ``initial_state_distrib`` (toy-text envs) or ``isd`` (older envs); an env with neither
        needs ``initial``.
    **make_kwargs
        Passed to ``gymnasium.make`` when ``env`` is an id (``map_name="8x8"``, ``is_slippery``).

    Returns
    -------
    FiniteMDP
        ``S + 1`` states: the env's states ``0..S-1`` (observation ``o`` is state
        ``o - observation_space.start``) and one absorbing state ``S`` with zero reward. A
        transition with ``terminated=True`` goes to state ``S`` and keeps its reward, so the
        episode's return is the env's. Duplicate entries of ``P[s][a]`` (slippery FrozenLake
        lists some twice) are summed; transitions are CSR (dense when the reward law is kept:
        :meth:`FiniteMDP.from_joint` takes a dense ``(S, A, S, K)`` law). Rewards are ``(S+1, A)`` when they
        depend on ``(s, a)`` only, otherwise ``(S+1, A, S+1)`` (exactly ``R(s, a, s')``); where
        one ``(s, a, s')`` lists several rewards the reward law is kept
        (:meth:`FiniteMDP.from_joint`).

    Raises
    ------
    ValueError
        For spaces that are not ``Discrete`` (Blackjack's ``Tuple``, continuous ``Box``), for
        an env without ``P`` (naming what is missing), for probabilities that do not sum to 1.

    Notes
    -----
    Cost ``O(sum_{s,a} len(P[s][a]))`` Python steps.

    Examples
    --------
    >>> import tnmdp
    >>> mdp = tnmdp.from_gymnasium("FrozenLake-v1", 100)      # doctest: +SKIP
    >>> tnmdp.solve(mdp).expected_return                       # doctest: +SKIP
    """
    try:
        import gymnasium
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("from_gymnasium needs gymnasium: pip install 'tnmdp[gym]'") from err
    if isinstance(env, str):
        env = gymnasium.make(env, **make_kwargs)
    elif make_kwargs:
        raise TypeError(f"keyword arguments {sorted(make_kwargs)} are for gymnasium.make and "
                        "need env to be an id string")
    if not isinstance(env, gymnasium.Env):
        raise TypeError(f"env must be a gymnasium.Env or an env id, got {type(env).__name__}")
    if horizon is None:
        spec = getattr(env, "spec", None)
        horizon = getattr(spec, "max_episode_steps", None)
        if horizon is None:
            raise ValueError("horizon is None and the env has no spec.max_episode_steps: "
                             "pass horizon")
    base = env.unwrapped
    n_states, s0 = _discrete_size(base.observation_space, "observation_space")
    n_actions, a0 = _discrete_size(base.action_space, "action_space")
    model = getattr(base, "P", None)
    if model is None:
        raise ValueError(f"{type(base).__name__} has no transition model: from_gymnasium reads "
                         "env.unwrapped.P, a dict P[s][a] = [(prob, next_state, reward, "
                         "terminated), ...] as the toy-text envs have")
    if initial is None:
        initial = _gym_initial(base, n_states)
    initial = np.asarray(initial, dtype=np.float64) if not isinstance(initial, numbers.Integral) \
        else initial
    if not isinstance(initial, numbers.Integral):
        if initial.shape != (n_states,):
            raise ValueError(f"initial must be a state or have shape (S,) = ({n_states},), got "
                             f"shape {initial.shape}")
        initial = np.append(initial, 0.0)  # the absorbing state starts empty
    return _from_entries(_gym_entries(model, n_states, n_actions, s0, a0), n_states + 1,
                         n_actions, horizon, initial, discount)


def _gym_initial(base, n_states):
    for name in ("initial_state_distrib", "isd"):
        isd = getattr(base, name, None)
        if isd is not None:
            isd = np.asarray(isd, dtype=np.float64).ravel()
            if isd.shape != (n_states,):
                raise ValueError(f"env.unwrapped.{name} has shape {isd.shape}, expected "
                                 f"({n_states},)")
            return isd
    raise ValueError(f"{type(base).__name__} has neither initial_state_distrib nor isd: pass "
                     "initial (a state or a distribution over states)")


def _gym_entries(model, n_states, n_actions, s0, a0):
    """Yield ``(s, a, next, prob, reward)`` with terminated moves sent to state ``n_states``."""
    for s in range(n_states):
        row = model.get(s + s0) if hasattr(model, "get") else model[s + s0]
        if row is None:
            raise ValueError(f"env.unwrapped.P has no entry for state {s + s0}")
        for a in range(n_actions):
            try:
                outcomes = row[a + a0]
            except (KeyError, IndexError):
                raise ValueError(f"env.unwrapped.P[{s + s0}] has no entry for action "
                                 f"{a + a0}") from None
            for k, entry in enumerate(outcomes):
                if len(entry) != 4:
                    raise ValueError(f"env.unwrapped.P[{s + s0}][{a + a0}][{k}] = {entry!r}; "
                                     "expected (prob, next_state, reward, terminated)")
                prob, nxt, reward, terminated = entry
                nxt = int(nxt) - s0
                if not 0 <= nxt < n_states:
                    raise ValueError(f"env.unwrapped.P[{s + s0}][{a + a0}][{k}] goes to state "
                                     f"{nxt + s0}, outside the observation space")
                yield s, a, (n_states if terminated else nxt), float(prob), float(reward)
    for a in range(n_actions):  # the absorbing state
        yield n_states, a, n_states, 1.0, 0.0


def _from_entries(entries, n_states, n_actions, horizon, initial, discount):
    """Build a FiniteMDP from ``(s, a, next, prob, reward)`` tuples (duplicates summed)."""
    merged = {}
    for s, a, nxt, prob, reward in entries:
        if prob == 0.0:
            continue
        key = (s, a, nxt)
        by_reward = merged.setdefault(key, {})
        by_reward[reward] = by_reward.get(reward, 0.0) + prob
    rows, cols, probs = [], [], []
    for (s, a, nxt), by_reward in merged.items():
        rows.append(s * n_actions + a)
        cols.append(nxt)
        probs.append(sum(by_reward.values()))
    P = sp.csr_array((probs, (rows, cols)), shape=(n_states * n_actions, n_states))
    stochastic = any(len(r) > 1 for r in merged.values())
    if stochastic:  # some (s, a, s') lists several rewards: keep the law
        values = np.array(sorted({r for by in merged.values() for r in by}))
        index = {v: k for k, v in enumerate(values)}
        p = np.zeros((n_states, n_actions, n_states, values.size))
        for (s, a, nxt), by_reward in merged.items():
            for r, prob in by_reward.items():
                p[s, a, nxt, index[r]] += prob
        return FiniteMDP.from_joint(p, values, horizon, initial, discount=discount)
    # one reward per (s, a, s'): (S, A) when it does not depend on s', else (S, A, S')
    by_sa = {}
    for (s, a, _), by_reward in merged.items():
        by_sa.setdefault((s, a), set()).update(by_reward)
    if all(len(r) == 1 for r in by_sa.values()):
        rewards = np.zeros((n_states, n_actions))
        for (s, a), r in by_sa.items():
            rewards[s, a] = next(iter(r))
    else:
        rewards = np.zeros((n_states, n_actions, n_states))
        for (s, a, nxt), by_reward in merged.items():
            rewards[s, a, nxt] = next(iter(by_reward))
    return FiniteMDP(P, rewards, horizon, initial, discount=discount)


def to_gymnasium(mdp):
    """A ``gymnasium.Env`` that samples ``mdp``: train any RL library on a tnmdp model.

    Parameters
    ----------
    mdp : FiniteMDP

    Returns
    -------
    gymnasium.Env
        ``observation_space = Discrete(S)``, ``action_space = Discrete(A)``. ``reset(seed=)``
        draws ``s_0 ~ mdp.initial`` from the env's seeded ``np_random``; ``step(a)`` draws
        ``s' ~ P_t(.|s, a)`` and returns the undiscounted ``r_t = R_t(s, a, s')`` (drawn from
        its law for :meth:`FiniteMDP.from_joint` models); the episode ends after ``T`` steps
        with ``truncated=True`` (never ``terminated``), and the terminal reward
        ``terminal(s_T)`` is added to the last step's reward. ``info`` holds ``{"t": t}``, the
        time step of the returned observation. Passes
        ``gymnasium.utils.env_checker.check_env``. The return of an episode, discounted by the
        learner with ``mdp.discount``, has mean ``tnmdp.evaluate(mdp, policy)``.
    """
    from ._gym_env import FiniteMDPEnv

    if not isinstance(mdp, FiniteMDP):
        raise TypeError(f"mdp must be a tnmdp.FiniteMDP, got {type(mdp).__name__}")
    return FiniteMDPEnv(mdp)


# --------------------------------------------------------------------------- pymdptoolbox
def _action_matrices(x, name, n_states=None):
    """A length-A list of ``(S, S)`` CSR or dense matrices from ``(A, S, S)`` or a sequence."""
    if sp.issparse(x) or is_pydata_sparse(x):
        raise TypeError(f"{name} must be an (A, S, S) array or a sequence of A (S, S) matrices, "
                        f"got one {type(x).__name__} matrix")
    if isinstance(x, np.ndarray) and x.dtype != object:
        arr = x
        if arr.ndim != 3 or arr.shape[1] != arr.shape[2]:
            raise ValueError(f"{name} must have shape (A, S, S), got {arr.shape}")
        return list(arr)
    if not isinstance(x, (Sequence, np.ndarray)) or len(x) == 0:
        raise TypeError(f"{name} must be an (A, S, S) array or a sequence of A (S, S) matrices, "
                        f"got {type(x).__name__}")
    out = []
    for a, m in enumerate(x):
        if is_pydata_sparse(m):
            m = pydata_to_scipy(m, name=f"{name}[{a}]")
        if not sp.issparse(m):
            m = np.asarray(m)
            if m.dtype == object:
                raise TypeError(f"{name}[{a}] is {type(x[a]).__name__}, not a matrix")
        if m.ndim != 2 or m.shape[0] != m.shape[1] or (
                n_states is not None and m.shape[0] != n_states):
            want = "(S, S)" if n_states is None else f"(S, S) = ({n_states}, {n_states})"
            raise ValueError(f"{name}[{a}] has shape {m.shape}; expected {want}")
        out.append(m)
    return out


def _interleave(mats):
    """``(S*A, S)`` operator with row ``s*A + a`` from per-action ``(S, S)`` matrices."""
    n_actions, n_states = len(mats), mats[0].shape[0]
    if all(not sp.issparse(m) for m in mats):
        return np.stack([np.asarray(m, dtype=np.float64) for m in mats], axis=1)  # (S, A, S)
    stacked = sp.vstack([sp.csr_array(m) for m in mats], format="csr")  # row a*S + s
    order = (np.arange(n_states)[:, None] + n_states * np.arange(n_actions)[None, :]).ravel()
    return stacked[order]


def from_mdptoolbox(P, R, horizon, *, discount=1.0, initial=None, terminal_rewards=None):
    """A :class:`tnmdp.FiniteMDP` from pymdptoolbox's ``(P, R)`` layout (action axis first).

    Parameters
    ----------
    P : ndarray, shape (A, S, S), or sequence of A (S, S) matrices
        ``P[a][s, s']``, dense or scipy/pydata sparse -- what
        ``mdptoolbox.example.rand(S, A, is_sparse=...)`` and ``forest()`` return.
    R : array_like
        ``(S,)``: reward of the current state, whatever the action; ``(S, A)``: ``R[s, a]``;
        ``(A, S, S)`` or a sequence of ``A`` (sparse) ``(S, S)``: ``R[a][s, s']``.
    horizon : int
        ``N`` of ``mdptoolbox.mdp.FiniteHorizon``.
    discount : float
        ``gamma`` in ``[0, 1]``.
    initial : int or array_like (S,), optional
        pymdptoolbox has no initial distribution; default uniform over the states (the values
        per state are :attr:`Solution.values` and :attr:`Solution.value_function`).
    terminal_rewards : array_like (S,), optional
        ``h`` of ``FiniteHorizon`` (default zero).

    Returns
    -------
    FiniteMDP
        Sparse (CSR) transitions when any ``P[a]`` is sparse, else dense. ``R[a][s, s']`` is
        kept as the 3-d reward ``(S, A, S')`` when dense; a sparse one is reduced to the
        expected reward ``(S, A)`` (as pymdptoolbox itself does), which leaves ``E[G]`` and the
        values exact.

    Notes
    -----
    This is the documented way in: :class:`FiniteMDP` reads a raw 3-d array as ``(S, A, S)``
    and cannot tell an ``(A, S, S)`` array apart when ``A == S``.
    """
    mats = _action_matrices(P, "P")
    n_states, n_actions = mats[0].shape[0], len(mats)
    for a, m in enumerate(mats[1:], 1):
        if m.shape != mats[0].shape:
            raise ValueError(f"P[{a}] has shape {m.shape}; P[0] has {mats[0].shape}")
    transitions = _interleave(mats)
    rewards = _mdptoolbox_rewards(R, mats, n_states, n_actions)
    if initial is None:
        initial = np.full(n_states, 1.0 / n_states)
    return FiniteMDP(transitions, rewards, horizon, initial, terminal_rewards, discount=discount)


def _mdptoolbox_rewards(R, mats, n_states, n_actions):
    if not sp.issparse(R) and not is_pydata_sparse(R) and not (
            isinstance(R, (list, tuple)) or (isinstance(R, np.ndarray) and R.dtype == object)):
        arr = np.asarray(R)
        if arr.shape == (n_states,):
            return arr[:, None]  # (S, 1): the state's reward under every action
        if arr.shape == (n_states, n_actions):
            return arr
        if arr.shape == (n_actions, n_states, n_states):
            return np.moveaxis(arr, 0, 1)  # (S, A, S')
        raise ValueError(f"R has shape {arr.shape}; expected (S,) = ({n_states},), (S, A) = "
                         f"({n_states}, {n_actions}) or (A, S, S) = ({n_actions}, {n_states}, "
                         f"{n_states})")
    rmats = _action_matrices(R, "R", n_states)
    if len(rmats) != n_actions:
        raise ValueError(f"R is a sequence of {len(rmats)} matrices; P has A = {n_actions}")
    if all(not sp.issparse(m) for m in rmats):
        return np.stack([np.asarray(m, dtype=np.float64) for m in rmats], axis=1)
    expected = np.empty((n_states, n_actions))
    for a, (p, r) in enumerate(zip(mats, rmats)):
        prod = sp.csr_array(p).multiply(sp.csr_array(r))
        expected[:, a] = np.asarray(prod.sum(axis=1)).ravel()
    return expected


def _stationary_model(mdp, target):
    if not isinstance(mdp, FiniteMDP):
        raise TypeError(f"mdp must be a tnmdp.FiniteMDP, got {type(mdp).__name__}")
    if not mdp.stationary_transitions or mdp.rewards.shape[0] != 1:
        raise ValueError(f"{target} models are stationary; this MDP has time-dependent "
                         "transitions or rewards")
    rbar = np.array(mdp.expected_reward(0), dtype=np.float64)
    return mdp.transition_matrix(0), rbar


def to_mdptoolbox(mdp):
    """``(P, R)`` in pymdptoolbox's layout, for ``mdptoolbox.mdp.FiniteHorizon(P, R, ...)``.

    Parameters
    ----------
    mdp : FiniteMDP
        Stationary transitions and rewards, no ``-inf`` reward.

    Returns
    -------
    P : ndarray (A, S, S), or list of A scipy CSR (S, S) matrices (sparse models)
    R : ndarray (S, A)
        The expected reward ``sum_s' P(s'|s,a) R(s,a,s')``.

    Notes
    -----
    pymdptoolbox has no initial distribution, discount inside the model or terminal reward:
    pass ``mdp.discount``, ``mdp.horizon`` and ``h=mdp.terminal_rewards`` to ``FiniteHorizon``.
    """
    P, rbar = _stationary_model(mdp, "pymdptoolbox")
    if np.isneginf(rbar).any():
        s, a = np.argwhere(np.isneginf(rbar))[0]
        raise ValueError(f"the expected reward at s={s}, a={a} is -inf; pymdptoolbox cannot "
                         "represent forbidden moves (use a large finite penalty)")
    S, A = mdp.n_states, mdp.n_actions
    if sp.issparse(P):
        return [sp.csr_matrix(P[a::A]) for a in range(A)], rbar
    return np.ascontiguousarray(np.asarray(P).reshape(S, A, S).transpose(1, 0, 2)), rbar


# --------------------------------------------------------------------------- QuantEcon
def from_quantecon(ddp, horizon, *, initial=None, terminal_rewards=None):
    """A :class:`tnmdp.FiniteMDP` from a ``quantecon.markov.DiscreteDP``.

    Parameters
    ----------
    ddp : quantecon.markov.DiscreteDP
        Product form (``R (S, A)``, ``Q (S, A, S)``) or state-action-pair form (``R (L,)``,
        ``Q (L, S)`` dense or sparse, ``s_indices``, ``a_indices``). ``beta`` becomes the
        discount.
    horizon : int
    initial : int or array_like (S,), optional
        Default uniform (QuantEcon has no initial distribution).
    terminal_rewards : array_like (S,), optional
        ``v_term`` of ``quantecon.markov.backward_induction`` (default zero).

    Returns
    -------
    FiniteMDP
        A state-action pair missing from the pair form gets reward ``-inf`` (infeasible, as
        QuantEcon's ``-inf`` in the product form) and a self-loop, so that its row is a
        distribution; a sparse ``Q`` stays sparse.
    """
    try:
        from quantecon.markov import DiscreteDP
    except ImportError as err:  # pragma: no cover
        raise ImportError("from_quantecon needs quantecon: pip install quantecon") from err
    if not isinstance(ddp, DiscreteDP):
        raise TypeError(f"ddp must be a quantecon.markov.DiscreteDP, got {type(ddp).__name__}")
    S, beta = int(ddp.num_states), float(ddp.beta)
    if initial is None:
        initial = np.full(S, 1.0 / S)
    if not ddp._sa_pair:
        return FiniteMDP(np.asarray(ddp.Q), np.asarray(ddp.R, dtype=np.float64), horizon,
                         initial, terminal_rewards, discount=beta)
    s_idx, a_idx = np.asarray(ddp.s_indices), np.asarray(ddp.a_indices)
    A = int(a_idx.max()) + 1
    rows = s_idx * A + a_idx
    present = np.zeros(S * A, dtype=bool)
    present[rows] = True
    missing = np.flatnonzero(~present)
    rewards = np.full(S * A, -np.inf)
    rewards[rows] = ddp.R
    Q = sp.csr_array(ddp.Q) if sp.issparse(ddp.Q) else None
    if Q is not None:
        Q = Q.tocoo()
        full = sp.csr_array((np.concatenate([Q.data, np.ones(missing.size)]),
                             (np.concatenate([rows[Q.row], missing]),
                              np.concatenate([Q.col, missing // A]))), shape=(S * A, S))
    else:
        full = np.zeros((S * A, S))
        full[rows] = np.asarray(ddp.Q)
        full[missing, missing // A] = 1.0
        full = full.reshape(S, A, S)
    return FiniteMDP(full, rewards.reshape(S, A), horizon, initial, terminal_rewards,
                     discount=beta)


def to_quantecon(mdp, *, sa_pair=None):
    """A ``quantecon.markov.DiscreteDP`` with ``beta = mdp.discount``.

    Parameters
    ----------
    mdp : FiniteMDP
        Stationary transitions and rewards.
    sa_pair : bool, optional
        State-action-pair form with a sparse ``Q``; default: when the MDP is sparse.

    Returns
    -------
    quantecon.markov.DiscreteDP
        ``R`` is the expected reward ``(S, A)`` (``-inf`` kept: infeasible actions).
        Terminal rewards go to ``backward_induction(ddp, T, v_term=mdp.terminal_rewards)``.
    """
    from quantecon.markov import DiscreteDP

    P, rbar = _stationary_model(mdp, "QuantEcon")
    S, A = mdp.n_states, mdp.n_actions
    if sa_pair is None:
        sa_pair = sp.issparse(P)
    if not sa_pair:
        dense = P.toarray() if sp.issparse(P) else np.asarray(P)
        return DiscreteDP(rbar, dense.reshape(S, A, S), mdp.discount)
    s_idx, a_idx = np.divmod(np.arange(S * A), A)
    return DiscreteDP(rbar.ravel(), sp.csr_matrix(P), mdp.discount, s_idx, a_idx)
