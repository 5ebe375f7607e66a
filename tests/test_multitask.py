"""Task families (tnmdp.models.multitask) and the three learners on them.

Structure and exactness of the learning curves are checked on short runs; "most runs reach
90% of each task's optimum" is statistical and marked slow.
"""

import numpy as np
import pytest

import tnmdp
from tnmdp.adapters.qtensor_learn import (METHODS, learn_q, optimal_q_tensor, task_references)
from tnmdp.models.gridworld import gridworld
from tnmdp.models.multitask import PENDULUM_PARAMETERS, gridworld_tasks, pendulum_tasks
from tnmdp.models.pendulum import pendulum, pendulum_grid

# Settings for which the gridworld family is learned in a few seconds (examples/multitask_q.py).
GRID_LEARN = dict(rank=8, optimizer="adam", learning_rate=0.01, epsilon=(1.0, 0.05, 0.998),
                  n_episodes=300, eval_every=30, n_runs=8)


@pytest.fixture(scope="module")
def grid_family():
    tasks = gridworld_tasks()
    return tasks, task_references(tasks)


# ---------------------------------------------------------------------- families
def test_pendulum_tasks_are_the_papers_four():
    tasks = pendulum_tasks(6, 5, 4, horizon=7)
    assert len(tasks) == len(PENDULUM_PARAMETERS) == 4
    theta, omega = pendulum_grid(6, 5)
    torques = np.linspace(-2, 2, 4)
    th, om, u = np.meshgrid(theta, omega, torques, indexing="ij")
    reward = -(th ** 2 + 0.1 * om ** 2 + 0.1 * u ** 2).reshape(30, 4)
    for mdp, (mass, length) in zip(tasks, PENDULUM_PARAMETERS):
        assert (mdp.n_states, mdp.n_actions, mdp.horizon, mdp.discount) == (30, 4, 7, 0.99)
        np.testing.assert_allclose(mdp.expected_reward(0), reward, rtol=1e-14)
        base = pendulum(6, 5, torques, horizon=7, mass=mass, length=length, gravity=10.0)
        assert abs(mdp.transition_matrix(0) - base.transition_matrix(0)).max() == 0
        np.testing.assert_array_equal(mdp.initial, base.initial)
    # the tasks differ in their dynamics
    assert abs(tasks[0].transition_matrix(0) - tasks[3].transition_matrix(0)).max() > 0.1


def test_gridworld_tasks_goal_major_product():
    tasks = gridworld_tasks(3, 4, goals=((2, 3), (0, 3)), slips=(0.0, 0.2), horizon=5)
    assert len(tasks) == 4
    for mdp, (goal, slip) in zip(tasks, [((2, 3), 0.0), ((2, 3), 0.2), ((0, 3), 0.0),
                                         ((0, 3), 0.2)]):
        ref = gridworld(3, 4, goal=goal, slip=slip, horizon=5, discount=0.95)
        np.testing.assert_array_equal(mdp.transition_matrix(0), ref.transition_matrix(0))
        np.testing.assert_array_equal(mdp.expected_reward(0), ref.expected_reward(0))
        assert mdp.discount == 0.95


@pytest.mark.parametrize("call, error, match", [
    (lambda: pendulum_tasks(n_torques=1), ValueError, "n_torques must be an int >= 2, got 1"),
    (lambda: pendulum_tasks(parameters=[(1.0,)]), ValueError, "parameters must be a non-empty"),
    (lambda: pendulum_tasks(cost_weights=(1, 2)), ValueError, "cost_weights must be three"),
    (lambda: gridworld_tasks(goals=3), TypeError, "goals must be a sequence of pairs"),
    (lambda: gridworld_tasks(slips=()), ValueError, "slips must not be empty"),
])
def test_family_validation(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_optimal_q_tensor_matches_solve(grid_family):
    tasks, _ = grid_family
    q = optimal_q_tensor(tasks, (4, 4))
    assert q.shape == (4, 4, 4, 4)
    for m, mdp in enumerate(tasks):
        np.testing.assert_allclose(q[m].reshape(16, 4).max(axis=1), tnmdp.solve(mdp).values,
                                   rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------------- learners
# Short runs for the structural checks: exact curves, shapes, parameter counts.
SHORT_LEARN = dict(GRID_LEARN, n_episodes=6, eval_every=3, n_runs=3)


@pytest.fixture(scope="module")
def grid_results(grid_family):
    tasks, refs = grid_family
    return {method: learn_q(tasks, method, references=refs, rng=10 + i, **SHORT_LEARN)
            for i, method in enumerate(METHODS)}


@pytest.mark.slow
@pytest.mark.parametrize("method", METHODS)
def test_every_learner_reaches_90_percent_on_gridworld_family(grid_family, method):
    tasks, refs = grid_family
    res = learn_q(tasks, method, references=refs, rng=10 + METHODS.index(method), **GRID_LEARN)
    reached = np.isfinite(res.samples_to(0.9))  # (runs, tasks)
    # "most seeds": at least 5 of 8 runs reach 90% of each task's exact optimum
    assert (reached.sum(axis=0) >= 5).all(), reached.sum(axis=0)


@pytest.mark.parametrize("method", METHODS)
def test_learning_curve_is_exact_evaluation_of_final_tensor(grid_family, grid_results, method):
    tasks, (optimal, uniform) = grid_family
    res = grid_results[method]
    n_ckpt = SHORT_LEARN["n_episodes"] // SHORT_LEARN["eval_every"] + 1
    assert res.samples.tolist() == [12 * SHORT_LEARN["eval_every"] * c for c in range(n_ckpt)]
    assert res.returns.shape == res.fractions.shape == (3, n_ckpt, 4)
    assert not res.diverged.any()
    for run in (0, 2):
        qt = res.qtensors[run]
        assert qt.mode_sizes == (4, 16, 4)
        for m, mdp in enumerate(tasks):
            j = tnmdp.evaluate(mdp, qt.to_policy(m, mdp.horizon))
            assert res.returns[run, -1, m] == pytest.approx(j, rel=1e-12, abs=1e-12)
    np.testing.assert_allclose(res.fractions, (res.returns - uniform) / (optimal - uniform),
                               rtol=1e-12)
    assert (res.fractions <= 1 + 1e-9).all()  # nothing beats the exact optimum


def test_parameter_counts_and_model_structure(grid_results):
    k, sizes = GRID_LEARN["rank"], 16 + 4
    assert grid_results["S-TLR-Q"].n_parameters == k * (4 + sizes)
    assert grid_results["LR-Q"].n_parameters == 4 * k * sizes
    assert grid_results["C-LR-Q"].n_parameters == k * sizes
    shared = grid_results["C-LR-Q"].qtensors[0]
    np.testing.assert_allclose(shared.task_table(0), shared.task_table(3), rtol=1e-14)
    assert grid_results["LR-Q"].qtensors[0].rank == 4 * k


def test_same_rng_same_curves(grid_family):
    tasks, refs = grid_family
    kwargs = dict(rank=3, n_episodes=4, eval_every=2, n_runs=2, references=refs,
                  epsilon=(1.0, 0.1, 0.99))
    a = learn_q(tasks, "S-TLR-Q", rng=3, **kwargs)
    b = learn_q(tasks, "S-TLR-Q", rng=3, **kwargs)
    np.testing.assert_array_equal(a.returns, b.returns)
    np.testing.assert_array_equal(a.qtensors[1].full(), b.qtensors[1].full())


def test_divergence_is_reported_not_raised(grid_family):
    tasks, refs = grid_family
    res = learn_q(tasks, "LR-Q", rank=4, n_episodes=3, eval_every=3, n_runs=2, references=refs,
                  optimizer="sgd", learning_rate=1e6, init_scale=1.0, rng=0)
    assert res.diverged.all()
    assert np.isnan(res.returns[:, -1]).all() and res.qtensors == [None, None]


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(method="Q"), ValueError, r"method must be one of \('S-TLR-Q', 'LR-Q', 'C-LR-Q'\)"),
    (dict(optimizer="rmsprop"), ValueError,
     r"optimizer must be one of \['adam', 'adamax', 'sgd'\], got 'rmsprop'"),
    (dict(state_shape=(3, 5)), ValueError, r"state_shape \(3, 5\) has 15 cells; .* S = 16"),
    (dict(epsilon=(0.1, 0.5, 0.9)), ValueError, "epsilon = .* needs 0 <= end <= start"),
    (dict(epsilon=0.1), TypeError, r"epsilon must be a tuple \(start, end, decay\)"),
    (dict(discount=1.0), ValueError, r"discount must be a number in \[0, 1\)"),
    (dict(learning_rate=0), ValueError, "learning_rate must be a positive number, got 0"),
    (dict(learning_rate_decay=1.5), ValueError,
     r"learning_rate_decay must be a number in \(0, 1\]"),
    (dict(n_episodes=0), ValueError, "n_episodes must be >= 1, got 0"),
])
def test_learn_q_validation(grid_family, kwargs, error, match):
    tasks, refs = grid_family
    with pytest.raises(error, match=match):
        learn_q(tasks, references=refs, **kwargs)


def test_learn_q_task_checks():
    with pytest.raises(TypeError, match="tasks must be a non-empty sequence of FiniteMDP"):
        learn_q([])
    with pytest.raises(ValueError, match=r"tasks\[1\] has \(S, A, T\) = \(9, 4, 12\)"):
        learn_q([gridworld(discount=0.9), gridworld(3, 3, goal=(2, 2), discount=0.9)])
    with pytest.raises(ValueError, match=r"tasks\[0\].discount is 1.0; pass a discount < 1"):
        learn_q([gridworld()])
