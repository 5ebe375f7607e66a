"""evaluate, moments, marginals, sample: against exact enumeration and Monte Carlo."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tnmdp
from tnmdp import FiniteMDP

from conftest import enumerate_returns, random_mdp


def random_policy(mdp, seed):
    raw = np.random.default_rng(seed).random((mdp.horizon, mdp.n_states, mdp.n_actions))
    return raw / raw.sum(axis=2, keepdims=True)


def joint_mdp(seed, S=3, A=2, T=3, K=3):
    """Stochastic rewards p(s', r | s, a) on a finite alphabet."""
    rng = np.random.default_rng(seed)
    p = rng.random((S, A, S, K)) * (rng.random((S, A, S, K)) < 0.7)
    p[..., 0, 0] += 0.1
    p /= p.sum(axis=(2, 3), keepdims=True)
    return FiniteMDP.from_joint(p, rng.normal(size=K), T, rng.dirichlet(np.ones(S)),
                                terminal_rewards=rng.normal(size=S), discount=0.8)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10**6), st.booleans(), st.booleans(), st.sampled_from(["sa", "full", "time"]))
def test_evaluate_and_moments_equal_enumeration(seed, sparse, stationary, reward_form):
    mdp = random_mdp(seed, 2, 2, 3, sparse=sparse, stationary=stationary,
                     reward_form=reward_form, discount=0.9)
    policy = random_policy(mdp, seed)
    paths = enumerate_returns(mdp, policy)
    prob = np.array([p for p, _, _ in paths])
    ret = np.array([g for _, g, _ in paths])
    assert prob.sum() == pytest.approx(1.0, abs=1e-12)
    exact = [(prob * ret ** k).sum() for k in (1, 2, 3)]
    assert tnmdp.evaluate(mdp, policy) == pytest.approx(exact[0], rel=1e-12, abs=1e-12)
    np.testing.assert_allclose(tnmdp.moments(mdp, policy, order=3), exact, rtol=1e-11, atol=1e-12)


def test_moments_with_stochastic_rewards_equal_enumeration():
    mdp = joint_mdp(4)
    policy = random_policy(mdp, 4)
    paths = enumerate_returns(mdp, policy)
    prob = np.array([p for p, _, _ in paths])
    ret = np.array([g for _, g, _ in paths])
    exact = [(prob * ret ** k).sum() for k in (1, 2, 3, 4)]
    np.testing.assert_allclose(tnmdp.moments(mdp, policy, order=4), exact, rtol=1e-12, atol=1e-13)


def test_marginals_equal_enumeration():
    mdp = random_mdp(9, 3, 2, 3, sparse=True, stationary=False)
    policy = random_policy(mdp, 9)
    exact = np.zeros((4, 3))
    for p, _, states in enumerate_returns(mdp, policy):
        exact[np.arange(4), states] += p
    np.testing.assert_allclose(tnmdp.marginals(mdp, policy), exact, rtol=0, atol=1e-14)


@pytest.mark.parametrize("make", [lambda: random_mdp(1, 5, 3, 6, sparse=True, stationary=False),
                                  lambda: joint_mdp(2)], ids=["sparse-time", "stochastic-reward"])
def test_monte_carlo_agrees_within_five_standard_errors(make):
    mdp = make()
    policy = random_policy(mdp, 0)
    traj = tnmdp.sample(mdp, policy, 40_000, rng=1)
    mean, se = traj.returns.mean(), traj.returns.std(ddof=1) / np.sqrt(traj.returns.size)
    assert abs(mean - tnmdp.evaluate(mdp, policy)) < 5 * se
    second = tnmdp.moments(mdp, policy, 2)[1]
    sq = traj.returns ** 2
    assert abs(sq.mean() - second) < 5 * sq.std(ddof=1) / np.sqrt(sq.size)
    # the empirical marginals too (each within 5 binomial standard errors)
    counts = np.stack([np.bincount(traj.states[:, t], minlength=mdp.n_states)
                       for t in range(mdp.horizon + 1)]) / traj.states.shape[0]
    exact = tnmdp.marginals(mdp, policy)
    assert (np.abs(counts - exact) <= 5 * np.sqrt(exact * (1 - exact) / 40_000) + 1e-12).all()


def test_sample_is_seeded_and_consistent():
    mdp = random_mdp(3, 4, 2, 5)
    policy = random_policy(mdp, 3)
    a, b = tnmdp.sample(mdp, policy, 50, rng=7), tnmdp.sample(mdp, policy, 50, rng=7)
    np.testing.assert_array_equal(a.states, b.states)
    assert a.states.shape == (50, 6) and a.actions.shape == a.rewards.shape == (50, 5)
    # every sampled transition has positive probability, and returns add up
    P = np.stack([mdp.transition_matrix(t).reshape(4, 2, 4) for t in range(5)])
    for t in range(5):
        assert (P[t, a.states[:, t], a.actions[:, t], a.states[:, t + 1]] > 0).all()
    expected = a.rewards.sum(axis=1) + mdp.terminal_rewards[a.states[:, -1]]  # discount 1
    np.testing.assert_allclose(a.returns, expected, rtol=1e-14)


def test_evaluate_neg_inf_reward():
    mdp = tnmdp.models.excursion(6, hard=True)
    uniform = np.full((6, 13, 2), 0.5)
    assert tnmdp.evaluate(mdp, uniform) == -np.inf
    assert tnmdp.evaluate(mdp, tnmdp.solve(mdp).policy) == 0.0
    with pytest.raises(ValueError, match="moments are undefined for rewards with -inf"):
        tnmdp.moments(mdp, uniform)


@pytest.mark.parametrize("policy, match", [
    (np.full((3, 3, 2), 0.5), r"policy has shape \(3, 3, 2\); the MDP needs \(T, S, A\) = \(3, 3, 3\)"),
    (np.full((3, 3, 3), 0.4), r"policy\[t=0, s=0\] sums to 1.2, not 1"),
    (np.where(np.arange(27).reshape(3, 3, 3) == 5, -0.1, 1 / 3), r"policy\[t=0, s=1, a=2\] is -0.1"),
    ("uniform", r"policy must be a Policy or a \(T, S, A\) array, got str"),
])
def test_bad_policy(policy, match):
    mdp = random_mdp(0, 3, 3, 3)
    with pytest.raises((ValueError, TypeError), match=match):
        tnmdp.evaluate(mdp, policy)


def test_bad_sample_and_moment_arguments():
    mdp = random_mdp(0, 3, 3, 3)
    policy = random_policy(mdp, 0)
    with pytest.raises(ValueError, match="n must be an int >= 1, got 0"):
        tnmdp.sample(mdp, policy, 0)
    with pytest.raises(ValueError, match="order must be an int >= 1, got 0"):
        tnmdp.moments(mdp, policy, order=0)
    with pytest.raises(TypeError, match="rng must be None, an int or a numpy.random.Generator"):
        tnmdp.sample(mdp, policy, 3, rng="seed")
