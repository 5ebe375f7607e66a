"""PARAFAC policies: scores, tensor networks, tabular policies and the four learners.

The learners get deterministic checks in the fast run (gradients against finite differences and
the exact gradient, one update on a bandit whose sampled gradient is exactly parallel to the
exact one); the statistical "most seeds reach 90% of the optimum" runs are marked slow.
"""

import numpy as np
import pytest

import tnmdp
from tnmdp.adapters import parafac_learn
from tnmdp.adapters.optim import Adam
from tnmdp.adapters.parafac import Discretiser, ParafacCritic, ParafacPolicy, ParafacScore
from tnmdp.adapters.parafac_learn import ALGORITHMS
from tnmdp.adapters.sampling import MDPEnvironment, rollout
from tnmdp.models.gridworld import gridworld

MODES = (4, 3, 5)
# Central differences with step 1e-6 on O(1) functions: truncation ~1e-12, rounding ~1e-10.
FD_STEP, FD_ATOL = 1e-6, 1e-6

POLICIES = {
    "softmax-A3": dict(n_actions=3, kind="softmax"),
    "gaussian-A1": dict(n_actions=1, kind="gaussian", log_std_init=0.3),
    "gaussian-A2": dict(n_actions=2, kind="gaussian", log_std_init=-0.2),
    # bounds inside the spread of the means, so samples land inside and on both bounds
    "clipped-A2": dict(n_actions=2, kind="gaussian", log_std_init=-0.2,
                       action_bounds=([-0.4, -0.6], [0.5, 0.3])),
    # means squashed into bounds of the order of the tensor entries, so tanh is curved
    "squashed-A2": dict(n_actions=2, kind="gaussian", log_std_init=-0.2,
                        mean_bounds=([-0.5, -0.3], [0.4, 0.6])),
}


def _policy(name, rank=3, seed=1, modes=MODES):
    return ParafacPolicy(modes, rank=rank, rng=seed, init_scale=0.7, **POLICIES[name])


def _states(n, modes=MODES, seed=0):
    rng = np.random.default_rng(seed)
    return np.stack([rng.integers(0, m, n) for m in modes], axis=1)


def _finite_difference(func, params, step=FD_STEP):
    """Jacobian (n, P) of func(params) -> (n,) by central differences."""
    cols = []
    for j in range(params.size):
        e = np.zeros_like(params)
        e[j] = step
        cols.append((func(params + e) - func(params - e)) / (2 * step))
    return np.stack(cols, axis=1)


# ---------------------------------------------------------------------------------- discretiser
def test_discretiser_rounding_rule_and_clipping():
    disc = Discretiser([-1.0, 0.0], [1.0, 10.0], [5, 11])
    states = np.array([[0.3, 4.4], [-7.0, 99.0], [0.24, 0.51]])
    # i = rint((clip(x) - lo) / (hi - lo) * (n - 1))
    np.testing.assert_array_equal(disc(states), [[3, 4], [0, 10], [2, 1]])
    np.testing.assert_array_equal(disc(disc.grid(0)[:, None].repeat(2, 1))[:, 0], range(5))


def test_discretiser_periodic_wraps():
    n = 8
    grid = -np.pi + 2 * np.pi * np.arange(n) / n
    disc = Discretiser([grid[0]], [grid[-1]], [n], periodic=True)
    np.testing.assert_array_equal(disc(grid[:, None])[:, 0], range(n))
    assert disc([[np.pi - 0.01]])[0, 0] == 0  # nearer to -pi (index 0) than to grid[-1]
    assert disc([[-np.pi - 0.5]])[0, 0] == 7  # 0.5 below -pi: nearer to grid[-1] - 2 pi


@pytest.mark.parametrize("kwargs, match", [
    (dict(lows=[0.0], highs=[0.0], sizes=[3]), r"lows\[0\] = 0.0 must be finite and below"),
    (dict(lows=[0.0], highs=[1.0], sizes=[1]), r"sizes\[0\] must be >= 2, got 1"),
    (dict(lows=[0.0, 1.0], highs=[1.0, 2.0], sizes=[3]), "sizes has 1 entries; lows has 2"),
])
def test_discretiser_rejects_bad_grids(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Discretiser(**kwargs)


def test_discretiser_rejects_bad_states():
    with pytest.raises(ValueError, match=r"last axis of length D = 2, got shape \(3,\)"):
        Discretiser([0, 0], [1, 1], [3, 3])([0.1, 0.2, 0.3])


# ---------------------------------------------------------------------------------- scores
@pytest.mark.parametrize("name", POLICIES)
def test_score_matches_finite_differences(name):
    policy = _policy(name)
    states = _states(7)
    actions = policy.sample(states, rng=3)
    score = policy.score(states, actions)
    base = policy.params

    def log_prob(params):
        policy.params = params
        out = policy.log_prob(states, actions)
        policy.params = base
        return out

    np.testing.assert_allclose(score.to_dense(), _finite_difference(log_prob, base),
                               rtol=0, atol=FD_ATOL)


@pytest.mark.parametrize("name", POLICIES)
def test_score_is_sparse_and_weighted_sum_matches_dense(name):
    policy = _policy(name)
    states = _states(9)
    score = policy.score(states, policy.sample(states, rng=0))
    assert isinstance(score, ParafacScore)
    assert score.state_rows.shape == (9, len(MODES), policy.rank)
    dense = score.to_dense()
    n_state_params = policy.rank * sum(MODES)
    # at most K non-zero entries per state mode and sample
    assert ((dense[:, :n_state_params] != 0).sum(axis=1) <= policy.rank * len(MODES)).all()
    weights = np.linspace(-1, 2, 9)
    np.testing.assert_allclose(score.weighted_sum(weights), weights @ dense, rtol=0, atol=1e-12)


def test_gaussian_log_std_score_is_zero_when_clamped():
    policy = ParafacPolicy((3,), 1, 2, "gaussian", rng=0, log_std_init=-4.0)
    score = policy.score(np.array([[0], [2]]), np.array([0.5, -0.5]))
    np.testing.assert_array_equal(score.log_std, 0.0)


def test_gaussian_log_std_score_flows_at_the_bound():
    # as torch.clamp: the bound itself is inside, so log sigma can leave an initial bound
    policy = ParafacPolicy((3,), 1, 2, "gaussian", rng=0, log_std_bounds=(-2.5, 0.0))
    score = policy.score(np.array([[0], [2]]), np.array([0.05, -0.05]))
    assert (score.log_std < 0).all()


def test_clipped_gaussian_samples_bounds_and_tail_mass():
    policy = ParafacPolicy((2,), 1, 1, "gaussian", rng=0, log_std_init=np.log(0.5),
                           action_bounds=(-1.0, 0.2))
    policy.factors[0][:] = [[0.0], [0.5]]
    states = np.repeat([[0], [1]], 20000, axis=0)
    actions = policy.sample(states, rng=1)[:, 0]
    assert actions.min() == -1.0 and actions.max() == 0.2
    for cell in (0, 1):
        draws = actions[states[:, 0] == cell]
        for bound in (-1.0, 0.2):
            mass = np.exp(policy.log_prob([[cell]], [bound])[0])
            frequency = np.mean(draws == bound)
            # Monte Carlo: 20,000 draws, 5 standard errors
            assert abs(frequency - mass) < 5 * np.sqrt(mass * (1 - mass) / draws.size) + 1e-12


@pytest.mark.parametrize("name", ["action_bounds", "mean_bounds"])
def test_gaussian_bounds_validation(name):
    with pytest.raises(ValueError, match=f"{name} needs kind='gaussian'"):
        ParafacPolicy((3,), 2, 2, "softmax", **{name: (-1, 1)})
    with pytest.raises(ValueError, match=f"{name} must be finite with low < high"):
        ParafacPolicy((3,), 1, 2, "gaussian", **{name: (1, -1)})
    with pytest.raises(ValueError, match=f"{name} must be finite with low < high"):
        ParafacPolicy((3,), 1, 2, "gaussian", **{name: (-np.inf, 1)})


def test_squashed_mean_is_scaled_tanh_of_the_tensor():
    policy = _policy("squashed-A2")
    states = _states(50)
    theta = policy._cp._forward(states)[0]
    low, high = np.array([-0.5, -0.3]), np.array([0.4, 0.6])
    expected = (low + high) / 2 + (high - low) / 2 * np.tanh((theta - (low + high) / 2)
                                                             / ((high - low) / 2))
    means = policy.distribution(states)
    np.testing.assert_allclose(means, expected, rtol=0, atol=1e-15)
    assert ((means > low) & (means < high)).all()
    # the samples are centred on the squashed means (200,000 draws, 5 standard errors)
    draws = policy.sample(np.repeat(states[:1], 200_000, axis=0), rng=2)
    sigma = np.exp(-0.2)
    assert np.abs(draws.mean(axis=0) - means[0]).max() < 5 * sigma / np.sqrt(200_000)


def test_critic_gradient_matches_finite_differences():
    critic = ParafacCritic(MODES, 2, rng=4, init_scale=0.8)
    states, targets = _states(11), np.linspace(-1, 1, 11)
    base = critic.params
    grad = critic.loss_and_grad(states, targets)[1]

    def loss(params):
        critic.params = params
        out = critic.loss_and_grad(states, targets)[0]
        critic.params = base
        return np.array([out])

    np.testing.assert_allclose(grad, _finite_difference(loss, base)[0], rtol=0, atol=FD_ATOL)


def test_critic_fit_reduces_loss():
    critic = ParafacCritic((5, 4), 2, rng=0)
    states = _states(40, (5, 4))
    targets = np.sin(states[:, 0]) + 0.5 * states[:, 1]
    before = critic.loss_and_grad(states, targets)[0]
    result = critic.fit(states, targets, max_iter=100)
    assert result.fun < 0.05 * before
    np.testing.assert_allclose(critic.values(states) - targets,
                               critic.full()[states[:, 0], states[:, 1]] - targets, atol=1e-12)


@pytest.mark.parametrize("block", [0, 1])
def test_critic_block_fit_moves_only_its_factor(block):
    critic = ParafacCritic((5, 4), 2, rng=0)
    states = _states(40, (5, 4))
    targets = np.sin(states[:, 0]) + 0.5 * states[:, 1]
    before = [f.copy() for f in critic.factors]
    loss_before = critic.loss_and_grad(states, targets)[0]
    result = critic.fit(states, targets, max_iter=100, block=block)
    for d, (old, new) in enumerate(zip(before, critic.factors)):
        assert np.array_equal(old, new) == (d != block)
    # the block problem is linear least squares: L-BFGS reaches its optimum, below the start
    assert result.fun == pytest.approx(critic.loss_and_grad(states, targets)[0], abs=1e-12)
    assert result.fun < loss_before
    assert np.abs(critic.loss_and_grad(states, targets)[1][
        slice(0, 10) if block == 0 else slice(10, 18)]).max() < 1e-4
    with pytest.raises(ValueError, match=r"block must be an int in 0..1, got 2"):
        critic.fit(states, targets, block=2)


@pytest.mark.slow
@pytest.mark.parametrize("algorithm", ["tlrac", "ptlrpo"])
def test_blockwise_updates_learn(algorithm, grid, grid_references):
    # statistical: 3 of 4 seeds. learning_rate 0.02, not the default 0.05: blockwise takes
    # `epochs` Adam steps per block
    optimum, uniform = grid_references
    fractions = []
    for seed in range(4):
        policy = ParafacPolicy((4, 4), 4, 3, rng=seed, init_scale=0.5)
        result = getattr(parafac_learn, algorithm)(
            policy, grid, n_updates=40, episodes_per_update=32, rng=seed, learning_rate=0.02,
            factor_updates="blockwise", critic_updates="blockwise")
        fractions.append(_fraction(result.final_exact_return, optimum, uniform))
    assert sum(f >= 0.9 for f in fractions) >= 3, fractions


def test_blockwise_actor_step_zeroes_the_gradient_outside_the_block():
    policy = _policy("gaussian-A1")
    blocks = parafac_learn._param_blocks(policy)
    assert [b.stop - b.start for b in blocks] == [3 * m for m in MODES] + [1]
    states = _states(30)
    actions = policy.sample(states, np.random.default_rng(0))
    adv = np.random.default_rng(1).standard_normal(30)
    before = policy.params
    optimizer = Adam(0.01)  # fresh moments: nothing leaks
    parafac_learn._adam_step(policy, optimizer, states, actions, adv, None, None, blocks[1])
    moved = policy.params != before
    assert moved[blocks[1]].any() and not moved[:blocks[1].start].any() \
        and not moved[blocks[1].stop:].any()


def test_update_modes_validation(grid):
    policy = ParafacPolicy((4, 4), 4, 2, rng=0)
    with pytest.raises(ValueError, match=r"factor_updates must be one of \('joint', "
                                         r"'blockwise'\), got 'bcd'"):
        parafac_learn.tlrac(policy, grid, factor_updates="bcd")
    with pytest.raises(ValueError, match=r"critic_updates must be one of"):
        parafac_learn.ptlrpo(policy, grid, critic_updates=None)


@pytest.mark.parametrize("name", POLICIES)
def test_fisher_vector_product_is_kl_hessian(name):
    policy = _policy(name)
    states = _states(8)
    snapshot = policy._snapshot(states)
    base = policy.params
    vector = np.random.default_rng(5).standard_normal(base.size)

    def kl(params):
        policy.params = params
        out = policy.kl_from(snapshot, states)
        policy.params = base
        return out

    h = 1e-4  # second differences: truncation ~h^2, rounding ~1e-16 / h^2
    curvature = (kl(base + h * vector) + kl(base - h * vector) - 2 * kl(base)) / h ** 2
    assert kl(base) == pytest.approx(0.0, abs=1e-14)
    assert vector @ policy.fisher_vector_product(snapshot, states, vector) == pytest.approx(
        curvature, rel=1e-5)


# ---------------------------------------------------------------------------------- tensors
@pytest.mark.parametrize("name", POLICIES)
def test_tensor_network_contracts_to_full(name):
    policy = _policy(name)
    tn = policy.to_tensor_network()
    assert {t.inds for t in tn} == {("s0", "k"), ("s1", "k"), ("s2", "k"), ("a", "k")}
    dense = tn.contract(output_inds=("s0", "s1", "s2", "a")).data
    full = policy.full()
    assert full.shape == MODES + (policy.n_actions,)
    np.testing.assert_allclose(dense, full, rtol=1e-13, atol=1e-15)
    states = _states(6)
    entries = full[tuple(states.T)]
    if policy.kind == "gaussian":  # the means are the entries, squashed with mean_bounds
        entries = policy._mean(entries)[0]
    np.testing.assert_allclose(policy.distribution(states), entries, atol=1e-14)


def test_critic_tensor_network_contracts_to_full():
    critic = ParafacCritic(MODES, 3, rng=2)
    dense = critic.to_tensor_network().contract(output_inds=("s0", "s1", "s2")).data
    np.testing.assert_allclose(dense, critic.full(), rtol=1e-13, atol=1e-15)


def test_parameter_count_matches_paper():
    # the authors' Pendulum-v1 setup: actor + critic = 300 (plus one log sigma)
    actor = ParafacPolicy((10, 10, 10), 1, 5, "gaussian", rng=0)
    critic = ParafacCritic((10, 10, 10), 5, rng=0)
    assert (actor.n_parameters - 1, critic.n_parameters) == (150, 150)
    # discrete pendulum: actor [10, 10, 10, 3] rank 10 has 330 parameters
    assert ParafacPolicy((10, 10, 10), 3, 10, rng=0).n_parameters == 330


# ---------------------------------------------------------------------------------- tabular
@pytest.fixture(scope="module")
def grid():
    return gridworld()


def test_to_policy_is_tiled_softmax(grid):
    policy = ParafacPolicy((4, 4), 4, 2, rng=0, init_scale=1.0)
    table = policy.to_policy(grid)
    assert table.shape == (grid.horizon, 16, 4)
    np.testing.assert_allclose(table.sum(axis=2), 1.0, atol=1e-14)
    states = np.stack(np.unravel_index(np.arange(16), (4, 4)), axis=1)
    np.testing.assert_allclose(table[5], policy.probabilities(states), atol=1e-15)


def test_to_policy_evaluate_matches_monte_carlo(grid):
    policy = ParafacPolicy((4, 4), 4, 2, rng=3, init_scale=1.0)
    exact = tnmdp.evaluate(grid, policy.to_policy(grid))
    batch = rollout(MDPEnvironment(grid, (4, 4)), policy, 20000, np.random.default_rng(0))
    returns = batch.rewards.sum(axis=1)
    stderr = returns.std() / np.sqrt(returns.size)
    assert abs(returns.mean() - exact) < 4 * stderr


def test_mdp_environment_matches_monte_carlo_with_discount_and_terminal():
    rng = np.random.default_rng(1)
    P = rng.dirichlet(np.ones(6), size=(6, 2))
    mdp = tnmdp.FiniteMDP(P, rng.standard_normal((6, 2, 6)), 5, rng.dirichlet(np.ones(6)),
                          rng.standard_normal(6), discount=0.8)
    policy = ParafacPolicy((2, 3), 2, 2, rng=0, init_scale=1.0)
    env = MDPEnvironment(mdp, (2, 3))
    batch = rollout(env, policy, 40000, rng)
    returns = parafac_learn._discounted_sum(batch.rewards, 0.8)[:, 0]
    stderr = returns.std() / np.sqrt(returns.size)
    assert abs(returns.mean() - env.exact_return(policy)) < 4 * stderr


@pytest.mark.parametrize("call, error, match", [
    (lambda: ParafacPolicy((3, 3), 2, 2, kind="beta"), ValueError,
     r"kind must be one of \('softmax', 'gaussian'\), got 'beta'"),
    (lambda: ParafacPolicy((3, 0), 2, 2), ValueError, r"state_shape\[1\] must be >= 1, got 0"),
    (lambda: ParafacPolicy((3, 3), 2), TypeError, r"ParafacPolicy\(\) missing required "
                                                   r"argument\(s\): rank"),
    (lambda: ParafacPolicy((3, 3), 1, 2), ValueError, "n_actions must be >= 2, got 1"),
    (lambda: ParafacPolicy((3, 3), 2, 2.5), TypeError, r"rank must be an int, not float"),
    (lambda: ParafacPolicy((3, 3), 2, 2).log_prob([[0, 3]], [0]), ValueError,
     r"states\[0, 1\] = 3 is outside 0..2"),
    (lambda: ParafacPolicy((3, 3), 2, 2).log_prob([[0, 1]], [2]), ValueError,
     r"actions\[0\] = 2 is outside 0..1"),
    (lambda: ParafacPolicy((3, 3), 2, 2).distribution([[0.0, 1.0]]), TypeError,
     "states must hold integer grid indices"),
    (lambda: ParafacPolicy((3, 3), 1, 2, "gaussian").to_policy(5), ValueError,
     "to_policy needs kind='softmax'"),
    (lambda: ParafacPolicy((3, 3), 4, 2).to_policy(gridworld()), ValueError,
     r"mdp has S=16, A=4; this policy has S=prod\(3, 3\)=9"),
    (lambda: ParafacPolicy((3, 3), 2, 2).to_policy("mdp"), TypeError,
     "mdp_or_horizon must be a FiniteMDP or an int, not str"),
])
def test_invalid_inputs_raise(call, error, match):
    with pytest.raises(error, match=match):
        call()


# ---------------------------------------------------------------------------------- learning
def _fraction(value, optimum, uniform):
    """Return as a fraction of the gap between the uniform policy and the optimum."""
    return (value - uniform) / (optimum - uniform)


@pytest.fixture(scope="module")
def grid_references(grid):
    uniform = np.full((grid.horizon, grid.n_states, grid.n_actions), 1 / grid.n_actions)
    return tnmdp.solve(grid).expected_return, tnmdp.evaluate(grid, uniform)


@pytest.mark.slow
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_learners_reach_90_percent_of_optimum(algorithm, grid, grid_references):
    # statistical: 3 of 4 seeds within 40 updates of 32 episodes
    optimum, uniform = grid_references
    learner = getattr(parafac_learn, algorithm)
    fractions = []
    for seed in range(4):
        policy = ParafacPolicy((4, 4), 4, 3, rng=seed, init_scale=0.5)
        result = learner(policy, grid, n_updates=40, episodes_per_update=32, rng=seed)
        assert result.success and result.exact_returns.shape == (40,)
        initial = tnmdp.evaluate(grid, policy.to_policy(grid))
        assert result.exact_returns[0] == pytest.approx(initial, abs=1e-12)
        fractions.append(_fraction(result.final_exact_return, optimum, uniform))
    assert sum(f >= 0.9 for f in fractions) >= 3, fractions


def _bandit():
    """One state, two actions, one step; action 1 pays 1, action 0 pays 0.

    After standardisation the advantages of a batch sum to zero and depend on the action
    only, so the sampled logit gradient ``sum_n adv_n (e_{a_n} - pi)`` is ``c (e_1 - e_0)``
    with ``c > 0`` whenever both actions were drawn: exactly parallel to the exact gradient
    ``pi_0 pi_1 (e_1 - e_0)``.
    """
    return tnmdp.FiniteMDP(np.ones((1, 2, 1)), np.array([[0.0, 1.0]]), 1, 0)


def test_sampled_surrogate_gradient_is_parallel_to_the_exact_gradient_on_a_bandit():
    mdp, policy = _bandit(), ParafacPolicy((1, 1), 2, 3, rng=0, init_scale=0.5)
    batch = rollout(MDPEnvironment(mdp, (1, 1)), policy, 64, np.random.default_rng(0))
    actions = batch.actions[batch.alive]
    assert 0 < actions.sum() < actions.size  # both actions drawn
    adv, _ = parafac_learn._advantages(batch, None, 1.0, 1.0)
    sampled = policy.score(batch.states[batch.alive], actions).weighted_sum(adv) / adv.size
    exact = parafac_learn.exact_gradient(mdp, policy)[1]
    cosine = sampled @ exact / (np.linalg.norm(sampled) * np.linalg.norm(exact))
    assert cosine == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_one_update_on_a_bandit_raises_the_exact_return(algorithm):
    # the sampled direction is exact (above); a first Adam step of 1e-3 (about 1e-3 per
    # coordinate along the gradient's signs) or an accepted trust-region step (its
    # surrogate gain is positive exactly when pi(1) grows) raises J to first order
    mdp, policy = _bandit(), ParafacPolicy((1, 1), 2, 3, rng=0, init_scale=0.5)
    options = {} if algorithm == "trtlrpo" else dict(learning_rate=1e-3, epochs=1)
    result = getattr(parafac_learn, algorithm)(policy, mdp, n_updates=1, episodes_per_update=64,
                                               rng=0, **options)
    assert result.exact_returns[0] == pytest.approx(
        tnmdp.evaluate(mdp, policy.to_policy(mdp)), abs=1e-15)
    assert result.final_exact_return > result.exact_returns[0] + 1e-6


def test_learner_leaves_input_policy_unchanged(grid):
    policy = ParafacPolicy((4, 4), 4, 2, rng=0)
    before = policy.params
    result = parafac_learn.tlrpg(policy, grid, n_updates=2, episodes_per_update=4, rng=0)
    np.testing.assert_array_equal(policy.params, before)
    assert not np.array_equal(result.policy.params, before)


@pytest.mark.parametrize("max_kl", [0.001, 0.02])
def test_trtlrpo_steps_respect_kl_bound(grid, max_kl):
    policy = ParafacPolicy((4, 4), 4, 3, rng=0, init_scale=0.5)
    result = parafac_learn.trtlrpo(policy, grid, n_updates=15, episodes_per_update=16,
                                   max_kl=max_kl, rng=1)
    assert (result.kl <= max_kl * (1 + 1e-12)).all()
    assert (result.kl > 0.25 * max_kl).sum() >= 10  # steps are not trivially small


def test_learner_validation(grid):
    policy = ParafacPolicy((2, 8), 4, 2, rng=0)
    with pytest.raises(ValueError, match=r"env has state_shape \(4, 4\), policy has \(2, 8\)"):
        parafac_learn.tlrpg(policy, MDPEnvironment(grid, (4, 4)))
    with pytest.raises(ValueError, match=r"n_updates must be a positive int, got 0"):
        parafac_learn.tlrac(policy, grid, n_updates=0)
    with pytest.raises(ValueError,
                       match=r"state_shape \(4, 5\) multiplies to 20, not n_states=16"):
        MDPEnvironment(grid, (4, 5))
    with pytest.raises(ValueError, match=r"max_kl must be a positive number, got -1"):
        parafac_learn.trtlrpo(policy, grid, max_kl=-1)
    with pytest.raises(ValueError, match=r"clip must be in \(0, 1\), got 2"):
        parafac_learn.ptlrpo(policy, grid, clip=2)


def test_gym_pendulum_runs():
    pytest.importorskip("gymnasium")
    env = parafac_learn.GymEnvironment(max_steps=15)
    policy = ParafacPolicy(env.state_shape, 1, 2, "gaussian", rng=0)
    result = parafac_learn.ptlrpo(policy, env, n_updates=2, episodes_per_update=3, rng=0)
    assert result.exact_returns is None and result.final_exact_return is None
    assert result.returns.shape == (2,) and (result.returns < 0).all()


def test_gym_episode_length_replaces_the_time_limit():
    pytest.importorskip("gymnasium")
    env = parafac_learn.GymEnvironment(max_steps=230)  # Pendulum-v1 registers 200
    policy = ParafacPolicy(env.state_shape, 1, 2, "gaussian", rng=0, action_bounds=(-2, 2))
    batch = rollout(env, policy, 2, np.random.default_rng(0))
    assert batch.alive.shape == (2, 230) and batch.alive.all()
    with pytest.raises(TypeError, match="pass the episode length as max_steps"):
        parafac_learn.GymEnvironment(max_episode_steps=10)
    with pytest.raises(ValueError, match="max_steps must be a positive int, got 0"):
        parafac_learn.GymEnvironment(max_steps=0)


def test_learning_keeps_log_std_within_bounds():
    pytest.importorskip("gymnasium")
    env = parafac_learn.GymEnvironment(max_steps=20)
    policy = ParafacPolicy(env.state_shape, 1, 2, "gaussian", rng=0, log_std_bounds=(-0.1, 0.0))
    seen = []
    parafac_learn.tlrpg(policy, env, n_updates=6, episodes_per_update=3, learning_rate=0.5, rng=0,
                        callback=lambda update, pol, ret, exact: seen.append(pol.log_std[0]))
    assert all(-0.1 <= value <= 0.0 for value in seen)
    assert len(set(seen)) > 1  # it moved, and was projected back onto the bounds


@pytest.mark.slow
def test_pendulum_squashed_trtlrpo_swings_up():
    # examples/parafac_pendulum.py's tuned TRTLRPO, one seed, 600 of its 2,000 episodes
    pytest.importorskip("gymnasium")
    env = parafac_learn.GymEnvironment(max_steps=1000, g=9.81)
    policy = ParafacPolicy(env.state_shape, 1, 5, "gaussian", rng=0, log_std_bounds=(-2.5, 0.0),
                           mean_bounds=(-2.0, 2.0))
    critic = ParafacCritic(env.state_shape, 5, rng=10_000, init_scale=1.0)
    result = parafac_learn.trtlrpo(policy, env, critic, n_updates=60, episodes_per_update=10,
                                   discount=0.99, lam=0.99, max_kl=0.01, cg_iters=5,
                                   critic_iters=25, rng=0)
    # a policy that never swings up pays ~ -4000 .. -7000 per 1,000-step episode
    assert result.returns[:5].mean() < -4000
    assert result.returns[-10:].mean() > -800


# ---------------------------------------------------------------------------------- exact gradient
def _check_exact_gradient(mdp, policy):
    """exact_gradient against tnmdp.evaluate and its finite differences."""
    value, grad = parafac_learn.exact_gradient(mdp, policy)
    assert value == pytest.approx(tnmdp.evaluate(mdp, policy.to_policy(mdp)), abs=1e-12)
    base = policy.params

    def exact_return(params):
        policy.params = params
        out = tnmdp.evaluate(mdp, policy.to_policy(mdp))
        policy.params = base
        return np.array([out])

    np.testing.assert_allclose(grad, _finite_difference(exact_return, base)[0], rtol=0,
                               atol=FD_ATOL)


def test_exact_gradient_matches_evaluate_and_finite_differences(grid):
    _check_exact_gradient(grid, ParafacPolicy((4, 4), 4, 2, rng=2, init_scale=0.8))


def test_exact_gradient_with_discount_and_terminal_rewards():
    rng = np.random.default_rng(3)
    mdp = tnmdp.FiniteMDP(rng.dirichlet(np.ones(6), size=(6, 3)), rng.standard_normal((6, 3)),
                          4, 0, rng.standard_normal(6), discount=0.7)
    _check_exact_gradient(mdp, ParafacPolicy((3, 2), 3, 2, rng=0, init_scale=1.0))


def test_exact_ascent_reaches_optimum(grid, grid_references):
    optimum, uniform = grid_references
    policy = ParafacPolicy((4, 4), 4, 3, rng=0, init_scale=0.5)
    result = parafac_learn.exact_ascent(policy, grid, n_steps=150, learning_rate=0.1)
    assert result.success
    assert _fraction(result.final_exact_return, optimum, uniform) > 0.97
    assert result.exact_returns[-1] > result.exact_returns[0]
