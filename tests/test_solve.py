"""solve: sweeps against independent backward induction, soft DP and each other."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tnmdp
from tnmdp.local import LinprogSolver
from tnmdp.reference import (backward_induction, backward_induction_arrays, dense_model,
                             soft_backward_induction, soft_backward_induction_arrays)

from conftest import random_mdp, random_model

mdp_params = st.fixed_dictionaries({
    "seed": st.integers(0, 2**31 - 1),
    "n_states": st.integers(1, 6),
    "n_actions": st.integers(1, 4),
    "horizon": st.integers(1, 6),
    "sparse": st.booleans(),
    "stationary": st.booleans(),
    "ties": st.booleans(),
    "reward_form": st.sampled_from(["sa", "full", "arrival", "time", "time_full"]),
    "discount": st.sampled_from([1.0, 0.9]),
})


def oracle_q(mdp, values_next, t):
    """Q_t from dense arrays, independent of the kernels."""
    P, R = dense_model(mdp, t)
    return (P * (R + mdp.discount * values_next[None, None, :])).sum(axis=2)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@settings(max_examples=40, deadline=None)
@given(mdp_params)
def test_backward_sweep_is_backward_induction(backend, params):
    mdp, arrays = random_model(**params)
    sol = tnmdp.solve(mdp, backend=backend)
    ref_actions, ref_values, ref_expected = backward_induction_arrays(**arrays)  # raw arrays
    ref = backward_induction(mdp)  # the model adaptor gives the same
    np.testing.assert_array_equal(ref.policy.actions, ref_actions)
    np.testing.assert_array_equal(ref.values, ref_values)
    scale = max(1.0, np.abs(ref_values).max())
    np.testing.assert_allclose(sol.values, ref_values, rtol=0, atol=1e-12 * scale)
    assert sol.expected_return == pytest.approx(ref_expected, rel=0, abs=1e-12 * scale)
    assert sol.expected_return == pytest.approx(ref.expected_return, rel=0, abs=1e-12 * scale)
    assert sol.success and sol.status == 0 and sol.n_sweeps == 1
    # the policy: identical where the action gap exceeds 1e-9 (ties go to the lowest action)
    actions, ref_actions = np.asarray(sol.policy.actions), np.asarray(ref.policy.actions)
    v = mdp.terminal_rewards
    for t in range(mdp.horizon - 1, -1, -1):
        q = oracle_q(mdp, v, t)
        top2 = np.sort(q, axis=1)[:, -2:] if mdp.n_actions > 1 else np.c_[q - 1, q]
        clear = top2[:, 1] - top2[:, 0] > 1e-9
        np.testing.assert_array_equal(actions[t][clear], ref_actions[t][clear])
        v = q.max(axis=1)


@settings(max_examples=40, deadline=None)
@given(mdp_params, st.sampled_from(["forward", "both"]))
def test_history_never_decreases(params, direction):
    mdp = random_mdp(**params)
    sol = tnmdp.solve(mdp, direction=direction, initial_policy="random", rng=params["seed"])
    scale = max(1.0, np.abs(sol.history).max())
    assert (np.diff(sol.history) >= -1e-12 * scale).all()
    assert sol.history[-1] == pytest.approx(sol.expected_return, rel=1e-12, abs=1e-12)
    if direction == "both":
        ref = backward_induction(mdp)
        assert sol.success
        assert sol.expected_return == pytest.approx(ref.expected_return, rel=1e-10, abs=1e-12)


def test_backward_from_any_initial_policy_is_exact():
    mdp = random_mdp(3, 5, 3, 6)
    ref = backward_induction(mdp).expected_return
    for init in ["uniform", "random", np.full((6, 5, 3), 1 / 3)]:
        sol = tnmdp.solve(mdp, initial_policy=init, rng=1)
        assert sol.expected_return == pytest.approx(ref, rel=1e-13)
        assert sol.history[-1] == pytest.approx(ref, rel=1e-13)


def test_forward_sweep_objective_matches_evaluation_at_every_site():
    mdp = random_mdp(5, 4, 2, 5)
    seen = []

    def callback(state):
        seen.append(state)

    sol = tnmdp.solve(mdp, direction="forward", initial_policy="random", rng=3, callback=callback)
    init = np.random.default_rng(3).random((5, 4, 2))
    init /= init.sum(axis=2, keepdims=True)
    policy = init.copy()
    for state in seen:  # rebuild the policy after each update and evaluate it independently
        policy[state.site] = np.asarray(tnmdp.Policy.from_actions(
            state.policy_site[None], 2)[0]) if state.policy_site.ndim == 1 else state.policy_site
        assert tnmdp.evaluate(mdp, policy) == pytest.approx(state.objective, rel=1e-12, abs=1e-12)
    assert [s.site for s in seen] == list(range(5)) and sol.status == 1


# A linear local problem has a vertex optimum, which HiGHS hits exactly and SLSQP/Powell reach
# to rounding (worst of 12 seeds: 5e-15); 1e-10 leaves room without hiding a wrong action.
@pytest.mark.parametrize("solver, tol", [("linprog", 1e-12), ("slsqp", 1e-10), ("powell", 1e-10)])
def test_numerical_local_solvers_agree_with_argmax(solver, tol):
    mdp = random_mdp(11, 3, 2, 3)
    exact = tnmdp.solve(mdp)
    sol = tnmdp.solve(mdp, local_solver=solver)
    assert sol.expected_return == pytest.approx(exact.expected_return, rel=tol, abs=tol)
    np.testing.assert_allclose(sol.values, exact.values, rtol=0, atol=tol * 10)


def test_linprog_takes_extra_linear_constraints():
    # one step, reward 1 for action 1 and 0 for action 0; constraint pi(0|s) >= 0.3 everywhere
    S, A = 3, 2
    P = np.tile(np.eye(S)[:, None, :], (1, A, 1))
    mdp = tnmdp.FiniteMDP(P, np.tile([0.0, 1.0], (S, 1)), 1, np.full(S, 1 / S))
    A_ub = np.zeros((S, S * A))
    A_ub[np.arange(S), np.arange(S) * A] = -1.0
    sol = tnmdp.solve(mdp, local_solver=LinprogSolver(A_ub=A_ub, b_ub=np.full(S, -0.3)))
    np.testing.assert_allclose(np.asarray(sol.policy)[0], np.tile([0.3, 0.7], (S, 1)), atol=1e-9)
    assert sol.expected_return == pytest.approx(0.7, abs=1e-9)


@settings(max_examples=30, deadline=None)
@given(mdp_params, st.sampled_from([0.3, 1.0, 5.0]), st.booleans())
def test_soft_backward_sweep_is_soft_dynamic_programming(params, tau, random_reference):
    mdp, arrays = random_model(**params)
    T, S, A = mdp.horizon, mdp.n_states, mdp.n_actions
    ref_policy = None
    if random_reference:
        raw = np.random.default_rng(params["seed"]).random((T, S, A)) + 0.05
        ref_policy = raw / raw.sum(axis=2, keepdims=True)
    value, values, policy = soft_backward_induction_arrays(  # the oracle on raw arrays
        **arrays, temperature=tau, reference_policy=ref_policy)
    sol = tnmdp.solve(mdp, temperature=tau, reference_policy=ref_policy,
                      backend=["numpy", "numba"][params["seed"] % 2])
    assert sol.soft_value == pytest.approx(value, rel=1e-12, abs=1e-12)
    np.testing.assert_allclose(np.asarray(sol.policy), policy, rtol=1e-10, atol=1e-14)
    assert sol.expected_return == pytest.approx(tnmdp.evaluate(mdp, policy), rel=1e-12, abs=1e-12)
    # the regularised objective never exceeds the hard optimum, and the soft policy is stochastic
    assert sol.soft_value <= backward_induction_arrays(**arrays)[2] + 1e-12
    assert not sol.policy.deterministic


def test_soft_forward_and_both_improve_to_the_soft_optimum():
    mdp = random_mdp(2, 4, 3, 4)
    value, _, _ = soft_backward_induction(mdp, 0.5)
    sol = tnmdp.solve(mdp, temperature=0.5, direction="both", initial_policy="random", rng=0)
    assert (np.diff(sol.history) >= -1e-12).all()
    assert sol.soft_value == pytest.approx(value, rel=1e-10)


def test_slsqp_solves_the_soft_local_problem():
    mdp = random_mdp(4, 3, 2, 2)
    value, _, _ = soft_backward_induction(mdp, 1.0)
    sol = tnmdp.solve(mdp, temperature=1.0, local_solver="slsqp")
    assert sol.soft_value == pytest.approx(value, abs=1e-10)  # SLSQP ftol 1e-12; seen 2e-13


def test_callback_can_stop_and_solution_is_frozen():
    mdp = random_mdp(0)
    sol = tnmdp.solve(mdp, callback=lambda state: state.site == 2)
    assert sol.status == 2 and not sol.success and len(sol.history) == 3
    assert sol.expected_return == pytest.approx(sol.history[-1], rel=1e-12, abs=1e-12)
    with pytest.raises(AttributeError):
        sol.status = 0


def test_deterministic_policy_is_stored_as_small_ints():
    sol = tnmdp.solve(tnmdp.models.excursion(40))
    assert sol.policy.actions.dtype == np.int8 and sol.policy.nbytes == 40 * 81
    assert sol.policy.deterministic and np.asarray(sol.policy).shape == (40, 81, 2)


def test_progress_bar_runs(capsys):
    sol = tnmdp.solve(random_mdp(0), progress=True)
    assert sol.success
    assert "sites" in capsys.readouterr().err


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(direction="sideways"), ValueError, r"direction must be one of \('backward', 'forward', 'both'\)"),
    (dict(local_solver="newton"), ValueError, r"local_solver must be one of \['argmax', 'linprog'"),
    (dict(temperature=-1.0), ValueError, r"temperature must be a finite number >= 0, got -1.0"),
    (dict(temperature=np.nan), ValueError, r"temperature must be a finite number >= 0"),
    (dict(reference_policy=np.full((5, 4, 3), 1 / 3)), ValueError,
     r"reference_policy is used only with temperature > 0"),
    (dict(temperature=1.0, reference_policy=np.full((5, 4, 2), 0.5)), ValueError,
     r"reference_policy has shape \(5, 4, 2\); the MDP needs \(T, S, A\) = \(5, 4, 3\)"),
    (dict(initial_policy="greedy"), ValueError, r"initial_policy must be 'uniform', 'random'"),
    (dict(initial_policy=np.full((5, 4, 3), 0.5)), ValueError,
     r"initial_policy\[t=0, s=0\] sums to 1.5, not 1"),
    (dict(max_sweeps=0), ValueError, r"max_sweeps must be None or an int >= 1, got 0"),
    (dict(tol=-1), ValueError, r"tol must be a number >= 0"),
    (dict(callback=3), TypeError, r"callback must be callable, got int"),
    (dict(local_solver="linprog", temperature=1.0), ValueError, r"'linprog' solves linear local problems"),
    (dict(local_solver="softmax"), ValueError, r"'softmax' needs temperature > 0"),
])
def test_bad_solve_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        tnmdp.solve(random_mdp(0), **kwargs)


def test_solve_rejects_non_mdp():
    with pytest.raises(TypeError, match="mdp must be a tnmdp.FiniteMDP, got dict"):
        tnmdp.solve({})


@pytest.mark.parametrize("temperature", [0.0, 0.7])
@pytest.mark.parametrize("size", [(6, 3, 5), (300, 4, 120)], ids=["numpy", "compiled"])
def test_lazy_history_equals_the_recorded_one(temperature, size):
    S, A, T = size  # the second is large enough for the compiled sweep (T*S*A >= 2**17)
    mdp = random_mdp(8, S, A, T, sparse=True, density=0.02 if S > 100 else 0.6)
    kwargs = dict(initial_policy="random", rng=4, temperature=temperature)
    lazy = tnmdp.solve(mdp, **kwargs)
    recorded = tnmdp.solve(mdp, callback=lambda state: False, **kwargs)  # the eager path
    assert callable(lazy._history)  # nothing computed yet
    np.testing.assert_allclose(lazy.history, recorded.history, rtol=1e-12, atol=1e-12)
    assert lazy.history[-1] == pytest.approx(
        lazy.soft_value if temperature > 0 else lazy.expected_return, rel=1e-12, abs=1e-12)
    assert lazy.history is lazy.history  # computed once


def test_actions_of_an_array_policy():
    one_hot = np.eye(3)[[[2, 0], [1, 1]]]  # (T=2, S=2, A=3)
    policy = tnmdp.Policy.from_array(one_hot)
    np.testing.assert_array_equal(policy.actions, [[2, 0], [1, 1]])
    assert policy.actions.dtype == np.int8
    with pytest.raises(ValueError, match="policy is not deterministic: it has no .actions"):
        tnmdp.Policy.from_array(np.full((2, 2, 3), 1 / 3)).actions


def test_returned_arrays_are_read_only_and_inputs_are_copied():
    mdp = random_mdp(3, 4, 3, 5)
    sol = tnmdp.solve(mdp)
    for arr in (sol.values, sol.policy.actions, sol.history):
        with pytest.raises(ValueError, match="read-only"):
            arr[...] = 0
    probs = np.full((5, 4, 3), 1 / 3)
    policy = tnmdp.Policy.from_array(probs)
    before = tnmdp.evaluate(mdp, policy)
    probs[:] = [1.0, 0.0, 0.0]  # was: stored by reference, so this changed the policy
    assert tnmdp.evaluate(mdp, policy) == before
    np.testing.assert_array_equal(policy[0], np.full((4, 3), 1 / 3))


def test_backend_argument():
    mdp = tnmdp.models.excursion(40)
    results = {b: tnmdp.solve(mdp, backend=b) for b in ("auto", "numpy", "numba")}
    ref = backward_induction(mdp)
    for b, sol in results.items():
        np.testing.assert_array_equal(sol.policy.actions, ref.policy.actions, err_msg=b)
        np.testing.assert_allclose(sol.values, ref.values, rtol=0, atol=1e-12, err_msg=b)
    with pytest.raises(ValueError,
                       match=r"backend must be one of 'auto', 'numpy', 'numba'; got 'gpu'"):
        tnmdp.solve(mdp, backend="gpu")


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_overflowing_rewards_raise_in_solve(backend):
    # 3 steps of +1e308 add up beyond float64 (was: nan values with RuntimeWarnings)
    P = np.full((2, 2, 2), 0.5)
    mdp = tnmdp.FiniteMDP(P, np.array([[1.0, -1.0], [1.0, 1.0]]) * 1e308, 3, 0)
    with pytest.raises(OverflowError,
                       match=r"the return overflows float64: rewards as large as 1e\+308"):
        tnmdp.solve(mdp, backend=backend)
    fine = tnmdp.FiniteMDP(P, np.array([[1.0, -1.0], [1.0, 1.0]]) * 1e307, 3, 0)
    assert tnmdp.solve(fine, backend=backend).expected_return == pytest.approx(3e307, rel=1e-15)
