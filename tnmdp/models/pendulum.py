"""The inverted pendulum (gymnasium's Pendulum-v1) projected onto a finite grid.

The continuous model: angle ``theta`` (0 upright, ``+-pi`` hanging down), angular velocity
``omega``, torque ``u``. One Euler step of length ``dt`` (exactly Pendulum-v1's)::

    omega' = clip(omega + (3 g / (2 l) sin(theta) + 3 u / (m l^2)) dt, -max_speed, max_speed)
    theta' = wrap(theta + omega' dt)                       wrap to [-pi, pi)

with the Pendulum-v1 cost as reward ``r(theta, omega, u) = -(theta^2 + 0.1 omega^2 + 0.001 u^2)``
(``theta`` in ``[-pi, pi)``), paid for the current state and torque.

Grid: ``n_theta`` angles ``-pi + j 2 pi / n_theta`` (periodic) and ``n_omega`` velocities
``linspace(-max_speed, max_speed, n_omega)``; state index ``i_theta * n_omega + i_omega``.

Projection onto the grid: the continuous successor ``(theta', omega')`` of a grid point is spread
over the (up to) four surrounding grid points with bilinear interpolation weights -- along
``theta`` between its two neighbours on the circle, along ``omega`` between the two bracketing
velocities. The weights are non-negative and sum to one, so each row of the ``(S*A, S)`` CSR
transition matrix is a probability distribution whose mean is the continuous successor (exactly
along ``omega``, and along ``theta`` up to the wrap). The finite MDP is thus a stochastic
approximation of the deterministic pendulum that converges to it as the grid is refined.
"""

from __future__ import annotations

import numbers

import numpy as np
import scipy.sparse as sp

from ..model import FiniteMDP

__all__ = ["pendulum", "pendulum_grid", "pendulum_step"]


def _check_size(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, not {type(value).__name__} ({value!r})")
    if value < 2:
        raise ValueError(f"{name} must be >= 2, got {value}")
    return int(value)


def _check_positive(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value > 0:
        raise ValueError(f"{name} must be a positive number, got {value!r}")
    return float(value)


def pendulum_grid(n_theta=10, n_omega=10, max_speed=8.0):
    """Grid coordinates of :func:`pendulum`.

    Returns
    -------
    theta : ndarray, shape (n_theta,)
        ``-pi + j * 2 pi / n_theta``, periodic (``theta[0] = -pi`` is hanging down; ``theta = 0``,
        upright, is on the grid when ``n_theta`` is even).
    omega : ndarray, shape (n_omega,)
        ``linspace(-max_speed, max_speed, n_omega)``.

    Notes
    -----
    ``tnmdp.adapters.parafac.Discretiser([theta[0], omega[0]], [theta[-1], omega[-1]],
    [n_theta, n_omega], periodic=[True, False])`` maps continuous states to the nearest grid point.
    """
    n_theta = _check_size("n_theta", n_theta)
    n_omega = _check_size("n_omega", n_omega)
    max_speed = _check_positive("max_speed", max_speed)
    theta = -np.pi + 2 * np.pi * np.arange(n_theta) / n_theta
    return theta, np.linspace(-max_speed, max_speed, n_omega)


def pendulum_step(theta, omega, torque, *, mass=1.0, length=1.0, gravity=10.0, dt=0.05,
                  max_speed=8.0):
    """One continuous Pendulum-v1 step (arrays broadcast); returns ``(theta', omega')``."""
    omega_new = omega + (3 * gravity / (2 * length) * np.sin(theta)
                         + 3.0 / (mass * length ** 2) * torque) * dt
    omega_new = np.clip(omega_new, -max_speed, max_speed)
    theta_new = np.mod(theta + omega_new * dt + np.pi, 2 * np.pi) - np.pi
    return theta_new, omega_new


def _interpolate_periodic(x, n, lo):
    """Neighbours and weights of ``x`` on the periodic grid ``lo + j 2 pi / n``."""
    pos = (x - lo) / (2 * np.pi / n)
    low = np.floor(pos)
    frac = pos - low
    low = low.astype(np.int64) % n
    return low, (low + 1) % n, 1.0 - frac, frac


def _interpolate_clipped(x, grid):
    """Neighbours and weights of ``x`` on an increasing grid (``x`` within its range)."""
    n = grid.size
    pos = np.clip((x - grid[0]) / (grid[1] - grid[0]), 0, n - 1)
    low = np.minimum(np.floor(pos).astype(np.int64), n - 2)
    frac = pos - low
    return low, low + 1, 1.0 - frac, frac


def _project(theta, omega, theta_grid, omega_grid):
    """Bilinear projection: columns (m, 4) and weights (m, 4) over state indices."""
    n_omega = omega_grid.size
    t0, t1, wt0, wt1 = _interpolate_periodic(theta, theta_grid.size, theta_grid[0])
    o0, o1, wo0, wo1 = _interpolate_clipped(omega, omega_grid)
    cols = np.stack([t0 * n_omega + o0, t0 * n_omega + o1, t1 * n_omega + o0, t1 * n_omega + o1], 1)
    weights = np.stack([wt0 * wo0, wt0 * wo1, wt1 * wo0, wt1 * wo1], 1)
    return cols, weights


def pendulum(n_theta=10, n_omega=10, torques=(-2.0, 0.0, 2.0), *, horizon=100, mass=1.0,
             length=1.0, gravity=10.0, dt=0.05, max_speed=8.0, discount=0.99, initial="bottom"):
    """The pendulum swing-up as a finite MDP on an ``n_theta x n_omega`` grid.

    Parameters
    ----------
    n_theta, n_omega : int
        Grid sizes (``>= 2``); see :func:`pendulum_grid`.
    torques : sequence of float, shape (A,)
        The actions.
    horizon : int
        Decisions ``T``.
    mass, length, gravity, dt, max_speed : float
        Pendulum-v1 parameters (defaults are Pendulum-v1's).
    discount : float
        ``gamma``.
    initial : {"bottom", "uniform"} or int
        ``"bottom"``: the projection of ``(theta, omega) = (pi, 0)`` (hanging at rest) onto the
        grid; ``"uniform"``: uniform over the grid; an int: that state index.

    Returns
    -------
    FiniteMDP
        ``S = n_theta * n_omega`` states (index ``i_theta * n_omega + i_omega``), ``A`` actions;
        sparse CSR transitions of shape ``(S*A, S)`` with at most 4 entries per row (see the
        module docstring for the projection); rewards of shape ``(S, A)``:
        ``-(theta^2 + 0.1 omega^2 + 0.001 u^2)``.

    Notes
    -----
    Construction costs ``O(S A)``.

    Examples
    --------
    >>> mdp = pendulum(4, 3, horizon=5)
    >>> mdp.n_states, mdp.n_actions
    (12, 3)
    """
    theta_grid, omega_grid = pendulum_grid(n_theta, n_omega, max_speed)
    torques = np.asarray(torques, dtype=float)
    if torques.ndim != 1 or torques.size == 0 or not np.isfinite(torques).all():
        raise ValueError(f"torques must be a non-empty 1-d sequence of finite numbers, "
                         f"got {torques!r}")
    params = {name: _check_positive(name, value) for name, value in
              (("mass", mass), ("length", length), ("gravity", gravity), ("dt", dt))}
    n_states, n_actions = theta_grid.size * omega_grid.size, torques.size

    th, om, u = np.meshgrid(theta_grid, omega_grid, torques, indexing="ij")  # (Nt, No, A)
    th_next, om_next = pendulum_step(th.ravel(), om.ravel(), u.ravel(), max_speed=max_speed,
                                     **params)
    cols, weights = _project(th_next, om_next, theta_grid, omega_grid)
    rows = np.repeat(np.arange(n_states * n_actions), 4)
    transitions = sp.csr_matrix((weights.ravel(), (rows, cols.ravel())),
                                shape=(n_states * n_actions, n_states))  # duplicates are summed
    rewards = -(th ** 2 + 0.1 * om ** 2 + 0.001 * u ** 2).reshape(n_states, n_actions)

    if isinstance(initial, str):
        if initial == "bottom":
            c, w = _project(np.array([np.pi]), np.array([0.0]), theta_grid, omega_grid)
            start = np.bincount(c[0], weights=w[0], minlength=n_states)
        elif initial == "uniform":
            start = np.full(n_states, 1.0 / n_states)
        else:
            raise ValueError(f"initial must be 'bottom', 'uniform' or a state index, "
                             f"got {initial!r}")
    else:
        start = initial
    return FiniteMDP(transitions, rewards, horizon, start, discount=discount)
