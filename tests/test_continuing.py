"""Continuing discounted MDPs (horizon=None): model checks, PI / VI / MPI, exact evaluation.

Oracles: the LP ``min sum v s.t. v >= rbar + gamma P v`` (HiGHS, tight tolerances), enumeration of
every deterministic policy with ``numpy.linalg.solve``, and finite-horizon backward induction
(``tnmdp.reference``) for long horizons, whose value differs from ``V*`` by at most
``gamma^T max|r| / (1 - gamma)``.
"""

import itertools
import warnings

import numpy as np
import pytest
import scipy.optimize as so
import scipy.sparse as sp

import tnmdp
from tnmdp import reference
from tnmdp.continuing import (discounted_values, modified_policy_iteration, policy_iteration,
                              value_iteration)
from tnmdp.stationary import StationaryPolicy

METHODS = ["policy_iteration", "value_iteration", "modified_policy_iteration"]


def random_mdp(seed, S=12, A=3, gamma=0.9, sparse=False, power=4):
    rng = np.random.default_rng(seed)
    P = rng.random((S, A, S)) ** power
    P /= P.sum(axis=2, keepdims=True)
    R = rng.normal(size=(S, A))
    init = rng.dirichlet(np.ones(S))
    trans = sp.csr_array(P.reshape(S * A, S)) if sparse else P
    return tnmdp.FiniteMDP(trans, R, None, init, discount=gamma), P, R, init


def lp_optimum(P, R, gamma):
    S, A = R.shape
    E = np.repeat(np.eye(S), A, axis=0)
    res = so.linprog(np.ones(S), A_ub=gamma * P.reshape(S * A, S) - E, b_ub=-R.ravel(),
                     bounds=[(None, None)] * S, method="highs",
                     options={"primal_feasibility_tolerance": 1e-10,
                              "dual_feasibility_tolerance": 1e-10})
    assert res.status == 0
    return res.x


def enumerate_optimum(P, R, gamma):
    S, A = R.shape
    best = np.full(S, -np.inf)
    for actions in itertools.product(range(A), repeat=S):
        rows = np.arange(S), np.array(actions)
        v = np.linalg.solve(np.eye(S) - gamma * P[rows], R[rows])
        best = np.maximum(best, v)
    return best


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "sparse"])
@pytest.mark.parametrize("gamma", [0.5, 0.9, 0.99])
def test_optimum_matches_lp(method, sparse, gamma):
    mdp, P, R, init = random_mdp(3, gamma=gamma, sparse=sparse)
    sol = tnmdp.solve(mdp, method=method)
    v_star = lp_optimum(P, R, gamma)
    # HiGHS meets its 1e-10 feasibility tolerance on constraints scaled by 1/(1-gamma)
    assert np.abs(sol.values - v_star).max() < 1e-8 / (1 - gamma)
    assert sol.success and sol.status == 0 and "Thm 6.6.6" in sol.message
    assert sol.expected_return == pytest.approx(init @ sol.values, rel=1e-13)
    assert np.asarray(sol.policy).shape == (12, 3) and sol.policy.stationary


@pytest.mark.parametrize("method", METHODS)
def test_optimum_matches_enumeration_and_bound_holds(method):
    mdp, P, R, _ = random_mdp(7, S=5, A=3, gamma=0.95, power=1)
    v_star = enumerate_optimum(P, R, 0.95)  # all 243 deterministic policies
    sol = tnmdp.solve(mdp, method=method, tol=1e-9)
    bound = float(sol.message.split("<= ")[1].split(" ")[0])
    assert bound <= 1e-9
    # the values are those of the returned policy (independent solve) ...
    rows = np.arange(5), sol.policy.actions.astype(int)
    exact = np.linalg.solve(np.eye(5) - 0.95 * P[rows], R[rows])
    assert np.abs(sol.values - exact).max() < 1e-12 * np.abs(exact).max()
    # ... and the certified bound holds against the enumerated optimum (plus rounding)
    assert (v_star - exact).max() <= bound + 1e-12


def test_value_iteration_stops_by_span_rule_with_loose_tol():
    mdp, P, R, _ = random_mdp(11, gamma=0.99, power=1)
    loose = value_iteration(mdp, tol=1e-2)
    tight = value_iteration(mdp, tol=1e-10)
    assert loose.n_sweeps < tight.n_sweeps
    v_star = lp_optimum(P, R, 0.99)
    assert np.abs(loose.values - v_star).max() <= 1e-2
    assert loose.success


def test_mpi_k_zero_is_value_iteration():
    mdp = random_mdp(5)[0]
    a, b = modified_policy_iteration(mdp, k=0), value_iteration(mdp)
    assert a.n_sweeps == b.n_sweeps
    np.testing.assert_array_equal(a.policy.actions, b.policy.actions)


def test_max_iter_gives_success_false():
    mdp = random_mdp(5, gamma=0.99, power=1)[0]
    sol = value_iteration(mdp, tol=1e-12, max_iter=3)
    assert not sol.success and sol.status == 1 and "not converged" in sol.message
    # still the exact values of the returned policy
    np.testing.assert_allclose(sol.values, discounted_values(mdp, sol.policy, method="direct"),
                               rtol=0, atol=1e-11)


def test_long_backward_induction_agrees():
    # independent oracle: finite-horizon DP; |V_T - V*| <= gamma^T max|r| / (1 - gamma) ~ 1e-16
    mdp, P, R, init = random_mdp(9, S=30, A=4, gamma=0.8)
    finite = tnmdp.FiniteMDP(P, R, 200, init, discount=0.8)
    oracle = reference.backward_induction(finite).values
    sol = tnmdp.solve(mdp)
    np.testing.assert_allclose(sol.values, oracle, rtol=0, atol=1e-12)


@pytest.mark.parametrize("method", METHODS)
def test_neg_inf_rewards(method):
    # chain 0-1-2-3-4; action 0 moves left, 1 right, each slipping the other way w.p. 0.2;
    # every action of state 4 is forbidden, and every state reaches 4 with positive probability
    S, A = 5, 2
    P = np.zeros((S, A, S))
    for s in range(S):
        P[s, 0, max(s - 1, 0)] += 0.8
        P[s, 0, min(s + 1, S - 1)] += 0.2
        P[s, 1, min(s + 1, S - 1)] += 0.8
        P[s, 1, max(s - 1, 0)] += 0.2
    R = np.tile(np.arange(S, dtype=float)[:, None], (1, A))
    R[4] = -np.inf
    mdp = tnmdp.FiniteMDP(P, R, None, 0, discount=0.9)
    sol = tnmdp.solve(mdp, method=method)
    oracle = reference.backward_induction(tnmdp.FiniteMDP(P, R, 400, 0, discount=0.9)).values
    assert np.isneginf(sol.values).tolist() == np.isneginf(oracle).tolist()
    assert np.isneginf(sol.values).all()  # every state reaches 4 with positive probability
    # make the forbidden state avoidable: from 3 a "stay" action
    P2 = np.concatenate([P, np.eye(S)[:, None, :]], axis=1)
    R2 = np.concatenate([R, np.arange(S, dtype=float)[:, None]], axis=1)
    R2[4, 2] = -np.inf
    mdp2 = tnmdp.FiniteMDP(P2, R2, None, 0, discount=0.9)
    sol2 = tnmdp.solve(mdp2, method=method)
    oracle2 = reference.backward_induction(tnmdp.FiniteMDP(P2, R2, 400, 0,
                                                           discount=0.9)).values
    assert not np.isnan(sol2.values).any() and sol2.success
    assert np.isneginf(sol2.values).tolist() == np.isneginf(oracle2).tolist() == [False] * 4 + [True]
    gap = oracle2[:4] - sol2.values[:4]  # the returned policy is tol-optimal (default 1e-8)
    assert -1e-12 <= gap.min() and gap.max() <= 1e-8


def test_evaluate_stochastic_policy_exact():
    mdp, P, R, init = random_mdp(2, S=20, A=3, gamma=0.97)
    pi = np.random.default_rng(0).dirichlet(np.ones(3), size=20)
    P_pi = np.einsum("sa,sat->st", pi, P)
    exact = np.linalg.solve(np.eye(20) - 0.97 * P_pi, (pi * R).sum(axis=1))
    for how in ("auto", "direct", "iterative"):
        v, err = discounted_values(mdp, pi, method=how, return_error=True)
        assert np.abs(v - exact).max() <= max(err, 1e-13 * np.abs(exact).max())
    assert tnmdp.evaluate(mdp, pi) == pytest.approx(init @ exact, rel=1e-12)
    np.testing.assert_allclose(tnmdp.evaluate(mdp, pi, per_state=True), exact, rtol=1e-12)
    assert tnmdp.evaluate(mdp, np.zeros(20, dtype=int)) == pytest.approx(
        init @ np.linalg.solve(np.eye(20) - 0.97 * P[:, 0], R[:, 0]), rel=1e-12)


def jump_ring(seed, S, gamma):
    """A one-action ring with a random long-range jump from every state (not banded: width
    ~S > 64), its model and the values of its only policy by a dense solve."""
    rng = np.random.default_rng(seed)
    cols = np.stack([np.arange(S), (np.arange(S) + 1) % S, rng.integers(0, S, S)], axis=1)
    P = sp.csr_array((np.full(3 * S, 1 / 3), cols.ravel(), np.arange(0, 3 * S + 1, 3)),
                     shape=(S, S))
    R = rng.normal(size=(S, 1))
    dense = np.linalg.solve(np.eye(S) - gamma * P.toarray(), R[:, 0])
    return tnmdp.FiniteMDP(P, R, None, 0, discount=gamma), dense


def test_sparse_banded_and_krylov_evaluation(monkeypatch):
    # not banded: a sparse LU (GMRES only from width * S > 4e7: see the next test)
    import scipy.sparse.linalg as spla

    factored = []
    splu = spla.splu
    monkeypatch.setattr(spla, "splu", lambda *args, **kw: factored.append(1) or splu(*args, **kw))
    mdp, dense = jump_ring(4, 500, 0.999)
    v, err = discounted_values(mdp, np.zeros(500, dtype=int), return_error=True)
    assert np.abs(v - dense).max() <= err + 1e-12 and err < 1e-8
    assert factored


def test_gmres_evaluation_is_certified(monkeypatch):
    """The GMRES path (taken from ``bandwidth * S > 4e7`` on, forced here on a 300-state
    non-banded chain), against a dense solve: within its certified error, which meets the
    target (MacQueen polishing included)."""
    import tnmdp.continuing as continuing

    monkeypatch.setattr(continuing, "_SPARSE_LU_FILL", 0)
    S = 300
    mdp, dense = jump_ring(5, S, 0.99)
    v, err = discounted_values(mdp, np.zeros(S, dtype=int), method="direct", return_error=True)
    assert np.abs(v - dense).max() <= err + 1e-12  # direct: a COLAMD sparse LU beyond the fill
    sol = tnmdp.solve(mdp, tol=1e-10)
    assert "GMRES" in sol.message
    np.testing.assert_array_equal(sol.policy.actions, np.zeros(S, dtype=int))  # one action
    assert np.abs(sol.values - dense).max() <= 1e-10


def test_stationary_policy_validation():
    mdp = random_mdp(0, S=4, A=2)[0]
    with pytest.raises(ValueError, match=r"policy has shape \(3, 2\); the MDP needs"):
        tnmdp.evaluate(mdp, np.full((3, 2), 0.5))
    with pytest.raises(ValueError, match=r"policy\[s=1\] sums to 0.9"):
        tnmdp.evaluate(mdp, np.array([[0.5, 0.5], [0.5, 0.4], [1, 0], [0, 1]]))
    with pytest.raises(ValueError, match=r"policy\[s=2\] is 5, outside 0..1"):
        tnmdp.evaluate(mdp, np.array([0, 1, 5, 0]))
    pol = StationaryPolicy.from_actions(np.array([0, 1, 1, 0]), 2)
    assert pol.deterministic and np.asarray(pol).shape == (4, 2) and pol.horizon is None


def test_model_refuses_time_dependent_data():
    P = np.full((3, 2, 3), 1 / 3)
    with pytest.raises(ValueError, match=r"transitions has shape \(4, 3, 2, 3\) \(time-dep"):
        tnmdp.FiniteMDP(np.stack([P] * 4), np.zeros((3, 2)), None, 0)
    with pytest.raises(ValueError, match="sequence of 2 per-time-step matrices"):
        tnmdp.FiniteMDP([sp.csr_array(P.reshape(6, 3))] * 2, np.zeros((3, 2)), None, 0)
    with pytest.raises(ValueError, match=r"rewards has shape \(5, 3, 2, 3\) \(time-dependent\)"):
        tnmdp.FiniteMDP(P, np.zeros((5, 3, 2, 3)), None, 0)
    with pytest.raises(ValueError, match="terminal_rewards is not allowed for a continuing"):
        tnmdp.FiniteMDP(P, np.zeros((3, 2)), None, 0, np.zeros(3))
    mdp = tnmdp.FiniteMDP(P, np.zeros((1, 3, 2, 3)), None, 0, discount=0.5)
    assert mdp.continuing and mdp.horizon is None


def test_finite_horizon_functions_refuse_continuing():
    mdp = random_mdp(0, S=4, A=2)[0]
    uniform = np.full((1, 4, 2), 0.5)
    from tnmdp import network

    for call in (lambda: tnmdp.marginals(mdp, uniform), lambda: tnmdp.moments(mdp, uniform),
                 lambda: tnmdp.sample(mdp, uniform, 3), lambda: tnmdp.log_partition(mdp),
                 lambda: tnmdp.doob_transform(mdp), lambda: network.dynamics_mpo(mdp),
                 lambda: network.policy_mps(mdp, uniform), lambda: network.moment_mpo(mdp),
                 lambda: network.partition_network(mdp),
                 lambda: tnmdp.policy_values(mdp, uniform),
                 lambda: tnmdp.event_probability(mdp, uniform)):
        with pytest.raises(ValueError, match=r"mdp is continuing \(horizon=None\)"):
            call()


def test_reference_oracle_refuses_continuing():
    with pytest.raises(ValueError, match="the reference oracles need a finite horizon"):
        reference.backward_induction(random_mdp(0, S=4, A=2)[0])


def test_solve_argument_errors():
    mdp = random_mdp(0, S=4, A=2)[0]
    with pytest.raises(ValueError, match="direction='forward' is a finite-horizon sweep option"):
        tnmdp.solve(mdp, direction="forward")
    with pytest.raises(ValueError, match="temperature=0.5 is a finite-horizon"):
        tnmdp.solve(mdp, temperature=0.5)
    with pytest.raises(ValueError, match="backend='numba' is a finite-horizon"):
        tnmdp.solve(mdp, backend="numba")
    with pytest.raises(ValueError, match="method must be one of"):
        tnmdp.solve(mdp, method="simplex")
    with pytest.raises(ValueError, match="tol must be a number > 0, got -1"):
        tnmdp.solve(mdp, tol=-1)
    with pytest.raises(ValueError, match="method='value_iteration' applies to continuing"):
        tnmdp.solve(tnmdp.models.excursion(4), method="value_iteration")
    with pytest.raises(ValueError, match="k must be an int >= 0"):
        modified_policy_iteration(mdp, k=-2)
    with pytest.raises(ValueError, match="needs discount < 1"):
        policy_iteration(tnmdp.FiniteMDP(np.full((2, 1, 2), 0.5), np.zeros((2, 1)), None, 0))


@pytest.mark.parametrize("cell, n_states", [("a", 60), ("b", 300), ("c", 200)])
def test_benchmark_cells_and_peer_wrappers(cell, n_states):
    # the benchmark's models are valid FiniteMDPs and its peer wrappers return optimal policies
    import sys
    from pathlib import Path

    pytest.importorskip("quantecon")
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from benchmarks.continuing import SOLVERS, build

    P, R = build(cell, n_states)
    gamma = 0.95
    mdp = tnmdp.FiniteMDP(P if sp.issparse(P) else P.reshape(n_states, R.shape[1], -1), R,
                          None, 0, discount=gamma)
    v_star = tnmdp.solve(mdp, tol=1e-11).values
    names = ["tnmdp VI", "tnmdp MPI", "QuantEcon PI", "QuantEcon MPI"]
    if cell != "b":  # mdptoolbox's MPI allocates a dense S x S array on sparse input
        names += ["mdptoolbox MPI"]
    for name in names:
        prepare, run = SOLVERS[name]
        with warnings.catch_warnings():  # the peers' own warnings (pymdptoolbox on sparse input)
            warnings.simplefilter("ignore")
            sigma, _ = run(prepare(P, R, gamma))
        v = discounted_values(mdp, np.asarray(sigma, dtype=np.int64))
        assert np.abs(v - v_star).max() <= 1e-8, name
