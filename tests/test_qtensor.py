"""QTensor, CP-ALS and the S-TLR-Q update rule (tnmdp.adapters.qtensor, qtensor_learn)."""

import numpy as np
import pytest

import tnmdp
from tnmdp.adapters.cp import cp_als
from tnmdp.adapters.qtensor import QTensor
from tnmdp.adapters.optim import SGD, Adam
from tnmdp.adapters.qtensor_learn import (QLearningResult, _td_update, optimal_q_table,
                                          semi_gradient)

SIZES = (3, 4, 2, 5)  # tasks, two state modes, actions


@pytest.fixture
def qt():
    return QTensor(SIZES, 3, rng=np.random.default_rng(0), scale=1.0)


def _random_mdp(rng, n_states=5, n_actions=3, horizon=4, discount=0.9):
    p = rng.random((n_states, n_actions, n_states))
    p /= p.sum(axis=2, keepdims=True)
    return tnmdp.FiniteMDP(p, rng.standard_normal((n_states, n_actions, n_states)), horizon,
                           rng.dirichlet(np.ones(n_states)),
                           terminal_rewards=rng.standard_normal(n_states), discount=discount)


# ---------------------------------------------------------------------- QTensor
def test_shape_properties(qt):
    assert qt.mode_sizes == SIZES
    assert (qt.n_tasks, qt.state_shape, qt.n_states, qt.n_actions, qt.rank) == (3, (4, 2), 8, 5, 3)
    assert qt.n_parameters == 3 * sum(SIZES)


def test_value_q_values_greedy_match_full(qt):
    full = qt.full()  # an independent dense reconstruction
    assert full.shape == SIZES
    table = full.reshape(3, 8, 5)
    m, s, a = np.meshgrid(np.arange(3), np.arange(8), np.arange(5), indexing="ij")
    np.testing.assert_allclose(qt.value(m, s, a), table, rtol=1e-13, atol=1e-13)
    assert qt.value(1, 6, 2) == pytest.approx(table[1, 6, 2], rel=1e-13)
    np.testing.assert_allclose(qt.q_values(2, np.arange(8)), table[2], rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(qt.task_table(0), table[0], rtol=1e-13, atol=1e-13)
    np.testing.assert_array_equal(qt.greedy(1), table[1].argmax(axis=1))


def test_full_against_explicit_sum(qt):
    f = qt.factors
    expected = np.einsum("mk,ik,jk,ak->mija", *f)
    np.testing.assert_allclose(qt.full(), expected, rtol=1e-13, atol=1e-13)


def test_tensor_network_contracts_to_full(qt):
    tn = qt.to_tensor_network()
    names = qt.index_names()
    assert names == ("task", "s0", "s1", "a")
    assert set(tn.outer_inds()) == set(names)
    dense = tn.contract(output_inds=names).data
    np.testing.assert_allclose(dense, qt.full(), rtol=1e-12, atol=1e-12)


def test_to_policy_greedy_and_epsilon(qt):
    pol = qt.to_policy(1, 6)
    assert pol.shape == (6, 8, 5)
    np.testing.assert_array_equal(pol[3].argmax(axis=1), qt.greedy(1))
    np.testing.assert_array_equal(pol.sum(axis=2), 1.0)
    soft = qt.to_policy(1, 6, epsilon=0.5)
    np.testing.assert_allclose(soft, 0.5 * pol + 0.1, rtol=0, atol=1e-15)


def test_from_factors_roundtrip(qt):
    other = QTensor.from_factors(qt.factors)
    np.testing.assert_array_equal(other.full(), qt.full())
    other.factors[0][0, 0] += 1.0
    assert qt.factors[0][0, 0] != other.factors[0][0, 0]  # copied


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(mode_sizes=(3, 4), rank=2), ValueError, "at least one state mode"),
    (dict(mode_sizes=(3, 0, 4), rank=2), ValueError, r"mode_sizes\[1\] must be >= 1"),
    (dict(mode_sizes=(3, 2, 4), rank=0), ValueError, "rank must be >= 1"),
    (dict(mode_sizes=(3, 2, 4), rank=1.5), TypeError, "rank must be an int"),
    (dict(mode_sizes=(3, 2, 4), rank=2, factors=[np.ones((3, 2))] * 3), ValueError,
     r"factors\[1\] has shape \(3, 2\), expected \(2, 2\)"),
])
def test_qtensor_validation(kwargs, error, match):
    with pytest.raises(error, match=match):
        QTensor(**kwargs)


def test_index_validation(qt):
    with pytest.raises(ValueError, match=r"task = 3 is outside 0\.\.2"):
        qt.value(3, 0, 0)
    with pytest.raises(ValueError, match=r"state = 8 is outside 0\.\.7"):
        qt.q_values(0, 8)
    with pytest.raises(TypeError, match="action must hold integers"):
        qt.value(0, 0, 1.0)
    with pytest.raises(ValueError, match=r"epsilon must be a number in \[0, 1\], got 2"):
        qt.to_policy(0, 3, epsilon=2)


# ---------------------------------------------------------------------- CP-ALS
def test_cp_als_recovers_exact_low_rank_tensor():
    truth = QTensor((3, 6, 5, 4), 3, rng=1, scale=1.0).full()
    fit = cp_als(truth, 3, rng=2)
    assert fit.relative_error < 1e-6  # exact rank 3: ALS converges to ~machine precision
    np.testing.assert_allclose(fit.full(), truth, atol=1e-5 * np.abs(truth).max())
    assert cp_als(truth, 1, rng=2).relative_error > 1e-2


def test_cp_als_error_matches_reconstruction():
    x = np.random.default_rng(3).standard_normal((4, 5, 6))
    fit = cp_als(x, 2, rng=0, n_starts=2)
    assert fit.relative_error == pytest.approx(
        np.linalg.norm(x - fit.full()) / np.linalg.norm(x), rel=1e-12)


@pytest.mark.parametrize("tensor, rank, match", [
    (np.ones(4), 1, "at least 2 dimensions"),
    (np.zeros((2, 3)), 1, "identically zero"),
    (np.full((2, 3), np.nan), 1, "non-finite"),
    (np.ones((2, 3)), 0, "rank must be >= 1"),
])
def test_cp_als_validation(tensor, rank, match):
    with pytest.raises(ValueError, match=match):
        cp_als(tensor, rank)


# ---------------------------------------------------------------------- update rule
@pytest.mark.parametrize("transition", [(0, 3, 2, 0.7, 5), (2, 7, 4, -1.3, 7), (1, 0, 0, 0.0, 0)])
def test_semi_gradient_matches_finite_differences(qt, transition):
    task, state, action, reward, nxt = transition
    gamma = 0.9
    target = reward + gamma * qt.q_values(task, nxt).max()  # held fixed: semi-gradient

    def loss(q):
        return 0.5 * (target - q.value(task, state, action)) ** 2

    grads = semi_gradient(qt, task, state, action, reward, nxt, gamma)
    h = 1e-6
    for i, f in enumerate(qt.factors):
        fd = np.zeros_like(f)
        for idx in np.ndindex(f.shape):
            plus, minus = qt.copy(), qt.copy()
            plus.factors[i][idx] += h
            minus.factors[i][idx] -= h
            fd[idx] = (loss(plus) - loss(minus)) / (2 * h)
        # L is quadratic in each entry: central differences are exact up to rounding
        np.testing.assert_allclose(grads[i], fd, rtol=1e-6, atol=1e-8)


def test_td_update_is_sequential_semi_gradient_steps(qt):
    """One transition with SGD: each factor steps along the semi-gradient at the current point."""
    task, state, action, reward, nxt, gamma, lr = 1, 5, 3, 0.4, 2, 0.95, 0.1
    expected = qt.copy()
    for i in range(len(SIZES)):
        grads = semi_gradient(expected, task, state, action, reward, nxt, gamma)
        expected.factors[i] -= lr * grads[i]
    factors = [f[None].copy() for f in qt.factors]
    modes, next_modes = np.unravel_index(state, (4, 2)), np.unravel_index(nxt, (4, 2))
    idx = [np.array([i]) for i in (task, *modes, action)]
    next_idx = [np.array([i]) for i in (task, *next_modes)]
    _td_update(factors, SGD(lr), idx, next_idx, np.array([reward]), gamma)
    for got, want in zip(factors, expected.factors):
        np.testing.assert_allclose(got[0], want, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("optimizer_class", [SGD, Adam])
def test_td_update_lowers_the_td_error_of_its_transition(qt, optimizer_class):
    """One small step on a transition moves Q[task, s, a] towards the (fixed) target."""
    optimizer = optimizer_class(1e-3)
    task, state, action, reward, nxt, gamma = 2, 6, 1, 1.5, 3, 0.9
    target = reward + gamma * qt.q_values(task, nxt).max()
    before = abs(target - qt.value(task, state, action))
    factors = [f[None].copy() for f in qt.factors]
    idx = [np.array([i]) for i in (task, *np.unravel_index(state, (4, 2)), action)]
    next_idx = [np.array([i]) for i in (task, *np.unravel_index(nxt, (4, 2)))]
    _td_update(factors, optimizer, idx, next_idx, np.array([reward]), gamma)
    after = QTensor.from_factors([f[0] for f in factors])
    # target moves too (semi-gradient), but for a 1e-3 step the error falls to first order
    new_target = reward + gamma * after.q_values(task, nxt).max()
    assert abs(new_target - after.value(task, state, action)) < before
    assert optimizer.state["F0"]["step"] == 1 and len(optimizer.state) == len(SIZES)


def test_semi_gradient_validation(qt):
    with pytest.raises(TypeError, match="qtensor must be a QTensor"):
        semi_gradient(np.ones(3), 0, 0, 0, 0.0, 0, 0.9)
    with pytest.raises(ValueError, match=r"discount must be a number in \[0, 1\]"):
        semi_gradient(qt, 0, 0, 0, 0.0, 0, 1.5)
    with pytest.raises(ValueError, match=r"next_state = 9 is outside 0\.\.7"):
        semi_gradient(qt, 0, 0, 0, 0.0, 9, 0.9)


# ---------------------------------------------------------------------- exact Q
def test_optimal_q_table_matches_solve_and_backward_induction():
    mdp = _random_mdp(np.random.default_rng(4))
    q0 = optimal_q_table(mdp)
    sol = tnmdp.solve(mdp)
    np.testing.assert_allclose(q0.max(axis=1), sol.values, rtol=1e-12, atol=1e-12)
    # Q_t by an explicit loop over (s, a, s') with dense arrays
    p = np.asarray(mdp.transition_matrix(0)).reshape(5, 3, 5)
    r = np.broadcast_to(mdp.rewards[0], (5, 3, 5))
    v = mdp.terminal_rewards
    for t in range(mdp.horizon - 1, 0, -1):
        v = (p * (r + mdp.discount * v)).sum(axis=2).max(axis=1)
    np.testing.assert_allclose(optimal_q_table(mdp, time=1).max(axis=1), v, rtol=1e-12)
    with pytest.raises(ValueError, match=r"time must be an int in 0\.\.3, got 4"):
        optimal_q_table(mdp, time=4)


def test_samples_to_first_crossing():
    fr = np.array([[[0.1, 0.2], [0.95, 0.5], [0.7, 0.92]]])  # (R=1, C=3, M=2)
    res = QLearningResult("S-TLR-Q", np.array([0, 10, 20]), fr, fr, np.ones(2), np.zeros(2),
                          [], 0, np.array([False]))
    np.testing.assert_array_equal(res.samples_to(0.9), [[10, 20]])
    assert np.isinf(res.samples_to(0.99)).all()
