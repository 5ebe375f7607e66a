"""The policy-evaluation domains of Gehring et al. (NeurIPS 2021): a reset chain and four rooms.

Both are written out as in the authors' code (gehring/implicit-estimators,
``experiments/chain/configurables.py`` and ``experiments/four_rooms/configurables.py``), where the
paper's prose differs from it:

- **Reset chain** (``n_states = 11``): action 0 ("next") moves ``s -> s + 1`` and from the last
  chain state ``n - 2`` back to ``0`` with reward ``good_reward = 10``; action 1 ("reset") moves
  every chain state to the extra transient state ``n - 1`` (reward 0), and from there both
  actions return to ``0`` (reward ``bad_reward = 1`` for "reset", 0 for "next"). The paper says
  the +1 is collected on the wrong action itself; in the code it is collected one step later,
  when leaving the transient state with action 1.
- **Four rooms** (11 x 11 grid, Sutton, Precup & Singh 1999, obstacles as in the code, goal
  ``(7, 1)``): 4 moves ``(+1, 0), (-1, 0), (0, +1), (0, -1)`` in (row, col); a blocked move stays
  put. With probability ``fail_prob = 1/3`` the move executed is one of the *other three*,
  uniformly (the paper says "remain stationary with probability 1/3"; the code does this). Any
  action in the goal yields reward 1 and moves to an absorbing terminal state, index 121, reward
  0. Obstacle cells are states too (never entered; their moves are defined as for free cells).

Rewards are ``(S, A)`` arrays (the reward of the decision), plus a constant ``reward_offset``
added to every decision, terminal state included (the paper's offset ``c``). The initial
distribution is uniform over all states, as the authors' environment resets.
"""

from __future__ import annotations

import numbers

import numpy as np

from ..model import FiniteMDP, _check_int

__all__ = ["reset_chain", "four_rooms", "FOUR_ROOMS_OBSTACLES", "epsilon_greedy"]

#: Obstacle cells (row, col) of the 11 x 11 four-rooms grid, as in the authors' code.
FOUR_ROOMS_OBSTACLES = frozenset({
    (0, 5), (2, 5), (3, 5), (4, 5),
    (6, 4), (7, 4), (9, 4), (10, 4),
    (5, 0), (5, 2), (5, 3), (5, 4), (5, 5), (5, 6), (5, 7), (5, 9), (5, 10),
})
_MOVES = ((1, 0), (-1, 0), (0, 1), (0, -1))


def _check_real(name, value, lo=-np.inf, hi=np.inf):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not lo <= value <= hi:
        raise ValueError(f"{name} must be a real number in [{lo}, {hi}], got {value!r}")
    return float(value)


def reset_chain(n_states=11, *, horizon=100, discount=0.9, good_reward=10.0, bad_reward=1.0,
                reward_offset=0.0):
    """The reset chain of Gehring et al. as a finite MDP.

    Parameters
    ----------
    n_states : int >= 3
        Chain states ``0..n-2`` plus the transient state ``n-1``.
    horizon : int
        Decisions ``T`` (the authors' rollouts last 100 steps).
    discount : float
    good_reward, bad_reward, reward_offset : float

    Returns
    -------
    FiniteMDP
        ``S = n_states``, 2 actions (0 = next, 1 = reset), deterministic ``(S, 2, S)``
        transitions, ``(S, 2)`` rewards, uniform initial distribution.
    """
    n = _check_int("n_states", n_states, 3)
    P = np.zeros((n, 2, n))
    for s in range(n - 2):
        P[s, 0, s + 1] = 1.0
    P[n - 2, 0, 0] = P[n - 1, 0, 0] = 1.0
    P[: n - 1, 1, n - 1] = 1.0
    P[n - 1, 1, 0] = 1.0
    R = np.zeros((n, 2))
    R[n - 2, 0] = good_reward
    R[n - 1, 1] = bad_reward
    R += _check_real("reward_offset", reward_offset)
    return FiniteMDP(P, R, horizon, np.full(n, 1.0 / n), discount=discount)


def four_rooms(*, goal=(7, 1), fail_prob=1 / 3, horizon=80, discount=0.9, reward_offset=0.0):
    """Four rooms (11 x 11, Sutton et al. 1999) as in Gehring et al.'s code.

    Parameters
    ----------
    goal : (int, int)
        Goal cell; any action there gives reward 1 and enters the terminal state.
    fail_prob : float in [0, 1]
        Probability that one of the other three moves is executed instead (uniformly).
    horizon : int
    discount : float
    reward_offset : float
        Added to every decision's reward (terminal state included).

    Returns
    -------
    FiniteMDP
        ``S = 122``: cell ``(r, c)`` is ``11 r + c``, the terminal state is 121; 4 actions;
        ``(S, 4)`` rewards; uniform initial distribution over all 122 states.
    """
    size = 11
    r0, c0 = goal
    if not (0 <= r0 < size and 0 <= c0 < size) or goal in FOUR_ROOMS_OBSTACLES:
        raise ValueError(f"goal={goal!r} must be a free cell of the 11x11 grid")
    fail = _check_real("fail_prob", fail_prob, 0.0, 1.0)
    n = size * size + 1
    base = np.zeros((n, 4, n))
    rew = np.zeros((n, 4))
    base[n - 1, :, n - 1] = 1.0
    for r in range(size):
        for c in range(size):
            s = r * size + c
            if (r, c) == tuple(goal):
                base[s, :, n - 1] = 1.0
                rew[s] = 1.0
                continue
            for a, (dr, dc) in enumerate(_MOVES):
                r2, c2 = r + dr, c + dc
                free = 0 <= r2 < size and 0 <= c2 < size and (r2, c2) not in FOUR_ROOMS_OBSTACLES
                base[s, a, r2 * size + c2 if free else s] = 1.0
    scales = np.eye(4) * (1 - fail) + fail * (1 - np.eye(4)) / 3  # [intended b, executed a]
    P = np.einsum("sat,ba->sbt", base, scales)
    R = rew @ scales.T + _check_real("reward_offset", reward_offset)
    return FiniteMDP(P, R, horizon, np.full(n, 1.0 / n), discount=discount)


def epsilon_greedy(preferences, epsilon, horizon, *, atol=1e-12):
    """Stationary epsilon-greedy policy ``(T, S, A)`` from action preferences ``(S, A)``.

    ``pi(a|s) = (1 - epsilon) / |argmax_s| [a in argmax_s] + epsilon / A``, ties (within
    ``atol``) shared uniformly, as ``rlax.epsilon_greedy`` does in the authors' code.
    """
    q = np.asarray(preferences, dtype=float)
    if q.ndim != 2 or not np.all(np.isfinite(q)):
        raise ValueError(f"preferences must be a finite (S, A) array, got shape {q.shape}")
    eps = _check_real("epsilon", epsilon, 0.0, 1.0)
    T = _check_int("horizon", horizon, 1)
    best = q >= q.max(axis=1, keepdims=True) - atol
    pi = (1 - eps) * best / best.sum(axis=1, keepdims=True) + eps / q.shape[1]
    return np.broadcast_to(pi, (T,) + pi.shape).copy()
