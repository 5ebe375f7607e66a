"""Shared fixtures: random MDPs in every storage form, and exact trajectory enumeration."""

import itertools

import numpy as np
import pytest
import scipy.sparse as sp

import tnmdp


def random_mdp(seed, n_states=4, n_actions=3, horizon=5, **kwargs):
    """A random FiniteMDP (see :func:`random_model`)."""
    return random_model(seed, n_states, n_actions, horizon, **kwargs)[0]


def random_model(seed, n_states=4, n_actions=3, horizon=5, *, sparse=False, stationary=True,
                 ties=False, reward_form="full", discount=1.0, density=0.6):
    """A random FiniteMDP and the raw arrays it was built from.

    The arrays (``transitions`` ``(T|1, S, A, S)`` dense, ``rewards`` as drawn, ``initial``,
    ``terminal``, ``discount``, ``horizon``) are the keyword arguments of
    :func:`tnmdp.reference.backward_induction_arrays`: an oracle that never reads the model.

    ``ties=True`` draws rewards and probabilities on a coarse grid so that actions tie often.
    ``reward_form``: "sa" (S, A), "full" (S, A, S), "arrival" (1, 1, S), "time" (T, 1, 1, S),
    "time_full" (T, S, A, S).
    """
    rng = np.random.default_rng(seed)
    S, A, T = n_states, n_actions, horizon

    def kernel():
        if ties:
            raw = rng.integers(0, 3, size=(S, A, S)).astype(float)
        else:
            raw = rng.random((S, A, S)) * (rng.random((S, A, S)) < density)
        raw[..., 0] += (raw.sum(axis=2) == 0)  # no empty row
        if ties:  # duplicate action 0 into action 1 somewhere: exact ties
            raw[: S // 2, min(1, A - 1)] = raw[: S // 2, 0]
        return raw / raw.sum(axis=2, keepdims=True)

    kernels = [kernel()] if stationary else [kernel() for _ in range(T)]

    def draw(shape):
        return rng.integers(-2, 3, size=shape).astype(float) if ties else rng.normal(size=shape)

    rewards = {"sa": lambda: draw((S, A)), "full": lambda: draw((S, A, S)),
               "arrival": lambda: draw((1, 1, S)), "time": lambda: draw((T, 1, 1, S)),
               "time_full": lambda: draw((T, S, A, S))}[reward_form]()
    if sparse:
        mats = [sp.csr_matrix(k.reshape(S * A, S)) for k in kernels]
        transitions = mats[0] if stationary else mats
    else:
        transitions = kernels[0] if stationary else np.stack(kernels)
    initial = rng.random(S)
    initial /= initial.sum()
    terminal = draw((S,))
    arrays = dict(transitions=np.stack(kernels), rewards=rewards.copy(), initial=initial.copy(),
                  terminal=terminal.copy(), discount=discount, horizon=T)
    return tnmdp.FiniteMDP(transitions, rewards, T, initial, terminal_rewards=terminal,
                           discount=discount), arrays


def enumerate_returns(mdp, policy):
    """All trajectories of a tiny MDP: list of (probability, return, states).

    Independent of the package: dense loops over (s0, a0, s1, r0, ...).
    """
    from tnmdp.reference import dense_model

    S, A, T = mdp.n_states, mdp.n_actions, mdp.horizon
    policy = np.asarray(policy)
    models = [dense_model(mdp, t) for t in range(T)]
    laws = [mdp.reward_power_law(t) for t in range(T)]
    out = []
    for path in itertools.product(range(S), *([range(A), range(S)] * T)):
        s = path[0::2]
        a = path[1::2]
        prob = mdp.initial[s[0]]
        outcomes = [(1.0, 0.0)]
        for t in range(T):
            P, R = models[t]
            prob *= policy[t, s[t], a[t]] * P[s[t], a[t], s[t + 1]]
            if prob == 0:
                break
            if laws[t] is None:
                step = [(1.0, R[s[t], a[t], s[t + 1]])]
            else:
                dist, values = laws[t]
                step = [(q, v) for q, v in zip(dist[s[t], a[t], s[t + 1]], values) if q > 0]
            outcomes = [(q0 * q1, g + mdp.discount ** t * r) for q0, g in outcomes for q1, r in step]
        if prob == 0:
            continue
        g_end = mdp.discount ** T * mdp.terminal_rewards[s[-1]]
        out.extend((prob * q, g + g_end, s) for q, g in outcomes)
    return out


@pytest.fixture
def small_mdp():
    return random_mdp(0, 3, 2, 3)
