"""The slippery gridworld: transitions, rewards, and exact optima against closed forms."""

import numpy as np
import pytest

import tnmdp
from tnmdp.models.gridworld import ACTIONS, gridworld


def _dense(mdp):
    S, A = mdp.n_states, mdp.n_actions
    return np.asarray(mdp.transition_matrix(0)).reshape(S, A, S)


def test_shapes_and_stochasticity():
    mdp = gridworld(3, 5, goal=(2, 4))
    P = _dense(mdp)
    assert (mdp.n_states, mdp.n_actions, mdp.horizon) == (15, 4, 12)
    np.testing.assert_allclose(P.sum(axis=2), 1.0, atol=1e-14)
    assert [name for name, _ in ACTIONS] == ["up", "down", "left", "right"]


def test_moves_slips_and_walls():
    P = _dense(gridworld(slip=0.2))
    s = 1 * 4 + 1  # (1, 1)
    assert P[s, 1, 2 * 4 + 1] == pytest.approx(0.8)  # down
    assert P[s, 1, 1 * 4 + 0] == pytest.approx(0.1)  # slip left
    assert P[s, 1, 1 * 4 + 2] == pytest.approx(0.1)  # slip right
    # from the corner (0, 0) "up" hits the wall; slips go left (wall) or right
    assert P[0, 0, 0] == pytest.approx(0.9)
    assert P[0, 0, 1] == pytest.approx(0.1)


def test_goal_is_absorbing_and_rewards():
    mdp = gridworld(goal=(3, 3), step_reward=-0.1, goal_reward=2.0)
    goal = 15
    np.testing.assert_array_equal(_dense(mdp)[goal, :, goal], 1.0)
    rewards = np.broadcast_to(mdp.rewards[0], (16, 4, 16))
    assert rewards[goal].max() == rewards[goal].min() == 0.0
    assert rewards[14, 3, goal] == pytest.approx(1.9)
    assert rewards[0, 0, 1] == pytest.approx(-0.1)


@pytest.mark.parametrize("n_rows, n_cols, goal, horizon", [
    (4, 4, (3, 3), 12), (3, 5, (0, 4), 6), (2, 6, (1, 0), 3), (2, 6, (1, 5), 3)])
def test_deterministic_optimum_is_shortest_path(n_rows, n_cols, goal, horizon):
    """Without slip the optimum is goal_reward + distance * step_reward if reachable in time."""
    mdp = gridworld(n_rows, n_cols, goal=goal, slip=0.0, horizon=horizon, start=(0, 0))
    distance = goal[0] + goal[1]
    expected = 1.0 - 0.04 * distance if distance <= horizon else -0.04 * horizon
    assert tnmdp.solve(mdp).expected_return == pytest.approx(expected, abs=1e-12)


def test_slip_lowers_the_optimum():
    values = [tnmdp.solve(gridworld(slip=slip)).expected_return for slip in (0.0, 0.1, 0.3)]
    assert values[0] > values[1] > values[2]


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(n_rows=0), ValueError, "n_rows must be a positive int, got 0"),
    (dict(n_rows=1, n_cols=1, goal=(0, 0)), ValueError, "at least 2 cells, got 1x1"),
    (dict(goal=(4, 0)), ValueError, r"goal=\(4, 0\) is outside the 4x4 grid"),
    (dict(start=3), TypeError, "start must be a \\(row, col\\) pair, got 3"),
    (dict(slip=1.5), ValueError, r"slip must be a probability in \[0, 1\], got 1.5"),
])
def test_invalid_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        gridworld(**kwargs)
