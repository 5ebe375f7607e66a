"""The finite pendulum: grid, projection of the continuous step, rewards, exact optimum."""

import numpy as np
import pytest

import tnmdp
from tnmdp.adapters.parafac import Discretiser
from tnmdp.models.pendulum import pendulum, pendulum_grid, pendulum_step

TORQUES = (-2.0, 0.0, 2.0)


@pytest.fixture(scope="module")
def mdp():
    return pendulum(8, 7, TORQUES, horizon=20)


def _states(n_theta=8, n_omega=7):
    theta, omega = pendulum_grid(n_theta, n_omega, 8.0)
    th, om = np.meshgrid(theta, omega, indexing="ij")
    return th.ravel(), om.ravel()


def test_grid_coordinates():
    theta, omega = pendulum_grid(10, 5, 4.0)
    np.testing.assert_allclose(theta, -np.pi + 0.2 * np.pi * np.arange(10), atol=1e-15)
    assert theta[5] == pytest.approx(0.0, abs=1e-15)  # upright is on an even grid
    np.testing.assert_allclose(omega, [-4, -2, 0, 2, 4])


def test_transitions_are_sparse_stochastic(mdp):
    P = mdp.transition_matrix(0)
    assert mdp.is_sparse and P.shape == (56 * 3, 56)
    assert np.diff(P.indptr).max() <= 4
    np.testing.assert_allclose(np.asarray(P.sum(axis=1)).ravel(), 1.0, atol=1e-13)
    assert (P.data > 0).all()


def test_projection_preserves_mean_of_continuous_step(mdp):
    """Row s*A + a has mean (theta', omega') of the continuous step (theta along the circle)."""
    P = mdp.transition_matrix(0).toarray()
    theta_grid, omega_grid = pendulum_grid(8, 7, 8.0)
    th, om = _states()
    next_omega = np.tile(omega_grid, 8)
    next_theta = np.repeat(theta_grid, 7)
    for a, u in enumerate(TORQUES):
        rows = P[a::3]  # (S, S) for torque u
        th_new, om_new = pendulum_step(th, om, u)
        np.testing.assert_allclose(rows @ next_omega, om_new, atol=1e-12)
        # unit-circle offset from the continuous angle: the interpolation is along the circle
        offset = np.angle(np.exp(1j * (next_theta[None, :] - th_new[:, None])))
        np.testing.assert_allclose((rows * offset).sum(axis=1), 0.0, atol=1e-12)


def test_rewards_are_pendulum_cost(mdp):
    th, om = _states()
    expected = -(th[:, None] ** 2 + 0.1 * om[:, None] ** 2 + 0.001 * np.square(TORQUES))
    np.testing.assert_allclose(mdp.expected_reward(0), expected, atol=1e-13)


def test_continuous_step_is_pendulum_v1():
    # Pendulum-v1 (gymnasium): newthdot = thdot + (3g/(2l) sin th + 3/(m l^2) u) dt
    th_new, om_new = pendulum_step(0.5, 1.0, 1.5)
    om_ref = 1.0 + (15 * np.sin(0.5) + 3 * 1.5) * 0.05
    assert om_new == pytest.approx(om_ref, abs=1e-15)
    assert th_new == pytest.approx(0.5 + om_ref * 0.05, abs=1e-15)
    assert pendulum_step(0.0, 7.9, 2.0)[1] == 8.0  # speed clipped


def test_matches_gymnasium_step():
    gym = pytest.importorskip("gymnasium")
    env = gym.make("Pendulum-v1").unwrapped
    env.reset(seed=0)
    env.state = np.array([2.0, -3.0])
    obs, reward, *_ = env.step(np.array([1.2], dtype=np.float32))
    th_new, om_new = pendulum_step(2.0, -3.0, np.float32(1.2))
    assert np.arctan2(obs[1], obs[0]) == pytest.approx(th_new, abs=1e-6)
    assert obs[2] == pytest.approx(om_new, abs=1e-6)
    assert reward == pytest.approx(-(2.0 ** 2 + 0.1 * 9.0 + 0.001 * 1.2 ** 2), rel=1e-6)


def test_initial_distributions():
    bottom = pendulum(8, 7, initial="bottom", horizon=2).initial
    # (pi, 0) wraps to theta index 0 and lies exactly on omega's middle grid point
    assert bottom[0 * 7 + 3] == pytest.approx(1.0)
    even = pendulum(8, 6, initial="bottom", horizon=2).initial
    np.testing.assert_allclose(even[[2, 3]], 0.5)
    np.testing.assert_allclose(pendulum(4, 3, initial="uniform", horizon=2).initial, 1 / 12)
    assert pendulum(4, 3, initial=5, horizon=2).initial[5] == 1.0


def test_discretiser_agrees_with_grid():
    theta, omega = pendulum_grid(10, 9, 8.0)
    disc = Discretiser([theta[0], omega[0]], [theta[-1], omega[-1]], [10, 9],
                       periodic=[True, False])
    th, om = np.meshgrid(theta, omega, indexing="ij")
    idx = disc(np.stack([th.ravel(), om.ravel()], axis=1))
    np.testing.assert_array_equal(idx[:, 0] * 9 + idx[:, 1], np.arange(90))


def test_optimum_beats_uniform_and_refines():
    returns = []
    for n in (10, 16):
        mdp = pendulum(n, n, horizon=60)
        uniform = np.full((mdp.horizon, mdp.n_states, 3), 1 / 3)
        optimum = tnmdp.solve(mdp).expected_return
        assert optimum > tnmdp.evaluate(mdp, uniform) + 50
        returns.append(optimum)
    assert returns[1] > returns[0]  # less interpolation noise on the finer grid


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(n_theta=1), ValueError, "n_theta must be >= 2, got 1"),
    (dict(n_omega=3.0), TypeError, r"n_omega must be an int, not float \(3.0\)"),
    (dict(torques=()), ValueError, "torques must be a non-empty 1-d sequence"),
    (dict(dt=0.0), ValueError, "dt must be a positive number, got 0.0"),
    (dict(initial="top"), ValueError, "initial must be 'bottom', 'uniform' or a state index, "
                                      "got 'top'"),
])
def test_invalid_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        pendulum(**kwargs)
