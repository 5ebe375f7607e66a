"""Controlled lattice models (:class:`~tnmdp.lattice.control.LatticeMDP` factories) and heuristics.

Both models have two local states and two local actions, with ``0`` the benign state (so that the
missing neighbours at the ends of the open chain, which read as ``0``, are benign) and ``1`` the
action that intervenes.

``epidemic`` -- an SIS epidemic with local treatment/protection (issue 11):

* state ``0`` susceptible, ``1`` infected; action ``0`` nothing, ``1`` act;
* an infected site that acts recovers surely; one that does not recovers with probability ``rho``;
* a susceptible site that acts (protects itself) stays susceptible; one that does not is infected
  with probability ``1 - (1 - beta)^n``, ``n`` the number of infected neighbours;
* reward per site and step ``-x_i - cost * a_i`` at ``t = 0..T-1`` (no terminal reward);
* initial state i.i.d. infected with probability ``p_infected``.

``sysadmin`` -- the SysAdmin problem of Guestrin, Koller, Parr & Venkataraman (JAIR 19, 2003) on
an open line of machines:

* state ``0`` working, ``1`` failed; action ``0`` leave it, ``1`` reboot;
* a rebooted machine is working at the next step (whatever its state);
* a working machine that is not rebooted fails with probability
  ``1 - (1 - fail_base) (1 - fail_neighbour)^n``, ``n`` the number of failed neighbours;
* a failed machine that is not rebooted stays failed, except that it comes back by itself with
  probability ``p_recover`` (default 0);
* reward per machine and step: ``1`` if it is working and not being rebooted, else ``0`` (a reboot
  costs that step's output), minus ``reboot_cost`` for every reboot (default 0); initial state
  i.i.d. failed with probability ``p_failed``.

:func:`heuristic_policies` gives the simple local rules used as baselines: never act, act on
state ``1`` only, act on state ``1`` and on state-``0`` sites next to a state-``1`` site.
"""

from __future__ import annotations

import numbers

import numpy as np

from .control import LatticeMDP

__all__ = ["epidemic", "sysadmin", "heuristic_policies"]


def _probability(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1], got {value!r}")
    return float(value)


def _check_cost(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= value < np.inf:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")


def _n_bad_neighbours():
    """``n[x_l, x_r]`` = number of neighbours in state 1."""
    return np.add.outer(np.arange(2), np.arange(2))


def epidemic(n_sites, horizon, *, beta, rho, cost, p_infected, discount=1.0):
    """SIS epidemic with local action (see the module docstring for the exact rules).

    Parameters
    ----------
    n_sites, horizon : int
    beta : float
        Infection probability per infected neighbour, in ``[0, 1]``.
    rho : float
        Spontaneous recovery probability of an infected site, in ``[0, 1]``.
    cost : float
        Cost of one action (finite, >= 0).
    p_infected : float
        Initial infection probability of each site.

    Returns
    -------
    LatticeMDP
        ``d = k = 2``.
    """
    beta, rho, p_infected = (_probability("beta", beta), _probability("rho", rho),
                             _probability("p_infected", p_infected))
    _check_cost("cost", cost)
    kernel = np.zeros((2, 2, 2, 2, 2))               # [x_l, x, x_r, a, x']
    infect = 1.0 - (1.0 - beta) ** _n_bad_neighbours()  # [x_l, x_r]
    kernel[:, 0, :, 0, 1] = infect
    kernel[:, 0, :, 0, 0] = 1.0 - infect
    kernel[:, 0, :, 1, 0] = 1.0
    kernel[:, 1, :, 0, 0] = rho
    kernel[:, 1, :, 0, 1] = 1.0 - rho
    kernel[:, 1, :, 1, 0] = 1.0
    reward = np.zeros((2, 2, 2, 2))                  # [x_l, x, x_r, a]
    reward -= np.arange(2)[None, :, None, None]
    reward -= float(cost) * np.arange(2)[None, None, None, :]
    initial = np.tile([1.0 - p_infected, p_infected], (n_sites, 1))
    return LatticeMDP(n_sites, 2, 2, kernel, reward, horizon, initial, discount=discount)


def sysadmin(n_sites, horizon, *, fail_base=0.05, fail_neighbour=0.25, p_recover=0.0,
             p_failed=0.0, reboot_cost=0.0, discount=1.0):
    """SysAdmin on a line of machines (Guestrin et al. 2003; exact rules in the module docstring).

    Parameters
    ----------
    n_sites, horizon : int
    fail_base : float
        Failure probability of a working machine with no failed neighbour.
    fail_neighbour : float
        Extra failure factor per failed neighbour (see the rule above).
    p_recover : float
        Probability that a failed machine that is not rebooted works again.
    p_failed : float
        Initial failure probability of each machine.
    reboot_cost : float
        Extra cost of one reboot (finite, >= 0).

    Returns
    -------
    LatticeMDP
        ``d = k = 2``.
    """
    fail_base, fail_neighbour = _probability("fail_base", fail_base), _probability(
        "fail_neighbour", fail_neighbour)
    p_recover, p_failed = _probability("p_recover", p_recover), _probability("p_failed", p_failed)
    _check_cost("reboot_cost", reboot_cost)
    fail = 1.0 - (1.0 - fail_base) * (1.0 - fail_neighbour) ** _n_bad_neighbours()
    kernel = np.zeros((2, 2, 2, 2, 2))
    kernel[:, 0, :, 0, 1] = fail
    kernel[:, 0, :, 0, 0] = 1.0 - fail
    kernel[:, 1, :, 0, 0] = p_recover
    kernel[:, 1, :, 0, 1] = 1.0 - p_recover
    kernel[:, :, :, 1, 0] = 1.0
    reward = np.zeros((2, 2, 2, 2))
    reward[:, 0, :, 0] = 1.0
    reward[..., 1] -= float(reboot_cost)
    initial = np.tile([1.0 - p_failed, p_failed], (n_sites, 1))
    return LatticeMDP(n_sites, 2, 2, kernel, reward, horizon, initial, discount=discount)


def heuristic_policies():
    """Baseline local rules for two-state, two-action models, as shared ``(2, 2, 2, 2)`` policies.

    Returns
    -------
    dict
        ``"never"``: never act; ``"bad"``: act exactly on sites in state 1; ``"bad_and_next"``:
        act on sites in state 1 and on state-0 sites with a neighbour in state 1.
    """
    never = np.zeros((2, 2, 2, 2))
    never[..., 0] = 1.0
    bad = np.zeros((2, 2, 2, 2))
    bad[:, 0, :, 0] = 1.0
    bad[:, 1, :, 1] = 1.0
    next_to = bad.copy()
    act = _n_bad_neighbours() > 0                    # [x_l, x_r]
    next_to[:, 0, :, 0] = ~act
    next_to[:, 0, :, 1] = act
    return {"never": never, "bad": bad, "bad_and_next": next_to}
