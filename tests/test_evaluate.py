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
    # G = -inf with positive probability: E[G^j] = (-1)^j inf (was: refused)
    np.testing.assert_array_equal(tnmdp.moments(mdp, uniform, order=3), [-np.inf, np.inf, -np.inf])


def avoided_neg_inf_mdp(seed):
    """A random MDP with -inf rewards on action 0 in states 0-1, a -inf terminal reward in state
    2, and a policy that never takes action 0 there and never reaches state 2 at the end."""
    rng = np.random.default_rng(seed)
    S, A, T = 4, 2, 3
    P = rng.random((S, A, S))
    P[:, :, 2] = 0.0  # state 2 is entered by nobody ...
    P /= P.sum(axis=2, keepdims=True)
    R = rng.normal(size=(S, A, S))
    R[:2, 0] = -np.inf
    terminal = rng.normal(size=S)
    terminal[2] = -np.inf
    initial = np.array([0.3, 0.3, 0.0, 0.4])  # ... and starts nowhere near it
    policy = random_policy(tnmdp.FiniteMDP(P, R, T, initial), seed)
    policy[:, :2] = [0.0, 1.0]
    return tnmdp.FiniteMDP(P, R, T, initial, terminal_rewards=terminal), policy


@pytest.mark.parametrize("seed", range(3))
def test_moments_with_neg_inf_rewards_the_policy_never_takes(seed):
    mdp, policy = avoided_neg_inf_mdp(seed)
    paths = enumerate_returns(mdp, policy)  # zero-probability paths are skipped there
    prob = np.array([p for p, _, _ in paths])
    ret = np.array([g for _, g, _ in paths])
    assert np.isfinite(ret).all() and prob.sum() == pytest.approx(1.0, abs=1e-12)
    exact = [(prob * ret ** k).sum() for k in (1, 2, 3)]
    np.testing.assert_allclose(tnmdp.moments(mdp, policy, order=3), exact, rtol=1e-12, atol=1e-13)
    assert tnmdp.evaluate(mdp, policy) == pytest.approx(exact[0], rel=1e-12, abs=1e-13)


@pytest.mark.parametrize("scale", [1e308, -1e308])
def test_overflowing_rewards_raise_instead_of_nan(scale):
    # two steps of +-1e308 overflow float64 (was: E[G] = nan with a RuntimeWarning)
    P = np.full((2, 2, 2), 0.5)
    R = np.array([[1.0, -1.0], [1.0, 1.0]]) * scale
    mdp = tnmdp.FiniteMDP(P, R, 3, 0)
    policy = np.full((3, 2, 2), 0.5)
    for call in (lambda: tnmdp.evaluate(mdp, policy), lambda: tnmdp.moments(mdp, policy),
                 lambda: tnmdp.evaluate(mdp, policy, per_state=True)):
        with pytest.raises(OverflowError, match=r"overflows float64: rewards as large as 1e\+308"):
            call()


def test_atol_is_accepted_where_a_policy_is_read():
    mdp = random_mdp(2, 3, 2, 4)
    exact = random_policy(mdp, 2)
    single = exact.astype(np.float32)  # sums off by ~1e-7: beyond the default 1e-9
    with pytest.raises(ValueError, match=r"sums to .*, not 1 \(atol=1e-09\)"):
        tnmdp.evaluate(mdp, single)
    want = tnmdp.evaluate(mdp, single.astype(np.float64) / single.astype(np.float64).sum(
        axis=2, keepdims=True))
    assert tnmdp.evaluate(mdp, single, atol=1e-6) == pytest.approx(want, rel=1e-6)
    assert tnmdp.moments(mdp, single, 2, atol=1e-6)[0] == pytest.approx(want, rel=1e-6)
    assert tnmdp.marginals(mdp, single, atol=1e-6).shape == (5, 3)
    assert tnmdp.sample(mdp, single, 3, rng=0, atol=1e-6).states.shape == (3, 5)
    tiny, clean = exact.copy(), exact.copy()
    tiny[0, 0] = [1.0 + 1e-17, -1e-17]  # rounding below zero: within atol, kept as given
    clean[0, 0] = [1.0, 0.0]
    assert tnmdp.evaluate(mdp, tiny) == pytest.approx(tnmdp.evaluate(mdp, clean), abs=1e-12)
    with pytest.raises(ValueError, match=r"atol must be a finite number >= 0, got -1"):
        tnmdp.evaluate(mdp, exact, atol=-1)


def test_sample_uses_small_integer_dtypes():
    mdp = random_mdp(0, 3, 2, 4)
    traj = tnmdp.sample(mdp, random_policy(mdp, 0), 5, rng=0)
    assert traj.states.dtype == np.int8 and traj.actions.dtype == np.int8
    big = tnmdp.FiniteMDP(np.full((300, 1, 300), 1 / 300), np.zeros((300, 1)), 2, 0)
    assert tnmdp.sample(big, np.ones((2, 300, 1)), 2, rng=0).states.dtype == np.int16


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


@pytest.mark.parametrize("policy_kind", ["deterministic", "shared", "per-step", "int-sites"])
@pytest.mark.parametrize("make", [
    lambda: random_mdp(4, 5, 3, 7, sparse=True, stationary=False, reward_form="time"),
    lambda: random_mdp(5, 4, 2, 6, reward_form="full"),
    lambda: tnmdp.models.excursion(12, hard=True)], ids=["sparse-time", "dense-full", "walk"])
def test_compiled_sampler_draws_the_numpy_samples(make, policy_kind):
    """Same seed, same uniforms in the same order: the compiled loop gives the numpy loop's
    episodes exactly, whatever the storage of the policy."""
    mdp = make()
    T, S, A = mdp.horizon, mdp.n_states, mdp.n_actions
    rng = np.random.default_rng(3)
    policy = {"deterministic": lambda: tnmdp.Policy.from_actions(rng.integers(0, A, (T, S)), A),
              "shared": lambda: tnmdp.Policy.uniform(T, S, A),
              "per-step": lambda: random_policy(mdp, 3),
              "int-sites": lambda: tnmdp.Policy([rng.integers(0, A, S)] * T, S, A)}[policy_kind]()
    a = tnmdp.sample(mdp, policy, 200, rng=11, backend="numpy")
    b = tnmdp.sample(mdp, policy, 200, rng=11, backend="numba")
    for name, x, y in zip(a._fields, a, b):
        assert x.dtype == y.dtype, name
        np.testing.assert_array_equal(x, y, err_msg=name)
    with pytest.raises(ValueError, match="backend must be one of 'auto', 'numpy', 'numba'"):
        tnmdp.sample(mdp, policy, 2, backend="c")
