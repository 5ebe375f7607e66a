"""Regressions for stationary (continuing) policies, against dense linear algebra on raw arrays."""

import numpy as np
import pytest

import tnmdp


def test_probability_policy_with_zeros_is_evaluated_exactly_and_not_modified():
    # regression: the (S, S*A) policy matrix was built on a view of the stored probabilities and
    # eliminate_zeros() compacted that buffer in place, silently corrupting the evaluation
    rng = np.random.default_rng(5)
    S, A, gamma = 7, 3, 0.9
    P = rng.dirichlet(np.ones(S), size=(S, A))
    R = rng.normal(size=(S, A))
    mdp = tnmdp.FiniteMDP(P, R, None, 0, discount=gamma)
    policy = rng.dirichlet(np.ones(A), size=S)
    policy[::2, 1] = 0.0  # zeros in the middle of the rows
    policy /= policy.sum(axis=1, keepdims=True)
    kept = policy.copy()
    P_pi = np.einsum("sa,sap->sp", policy, P)
    exact = np.linalg.solve(np.eye(S) - gamma * P_pi, (policy * R).sum(axis=1))
    for _ in range(2):  # a second evaluation must see the same policy
        values = tnmdp.continuing.discounted_values(mdp, policy)
        np.testing.assert_allclose(values, exact, rtol=1e-12)
    np.testing.assert_array_equal(policy, kept)
    assert tnmdp.evaluate(mdp, policy) == pytest.approx(exact[0], rel=1e-12)


@pytest.mark.parametrize("kind", ["actions", "probabilities"])
def test_continuing_solutions_and_stationary_policies_save_and_pickle(tmp_path, kind):
    import copy
    import pickle

    rng = np.random.default_rng(8)
    S, A = 6, 3
    mdp = tnmdp.FiniteMDP(rng.dirichlet(np.ones(S), size=(S, A)), rng.normal(size=(S, A)), None,
                          0, discount=0.8)
    sol = tnmdp.solve(mdp)
    policy = sol.policy if kind == "actions" else tnmdp.StationaryPolicy.from_array(
        rng.dirichlet(np.ones(A), size=S))
    for copied in (pickle.loads(pickle.dumps(policy)), copy.deepcopy(policy)):
        assert type(copied) is tnmdp.StationaryPolicy
        np.testing.assert_array_equal(np.asarray(copied), np.asarray(policy))
    path = tmp_path / "sol.npz"
    sol.save(path)
    back = tnmdp.Solution.load(path)
    assert type(back.policy) is tnmdp.StationaryPolicy
    np.testing.assert_array_equal(np.asarray(back.policy), np.asarray(sol.policy))
    np.testing.assert_array_equal(back.values, sol.values)
    assert back.expected_return == sol.expected_return and back.message == sol.message
    assert tnmdp.evaluate(back.mdp, back.policy) == pytest.approx(sol.expected_return, rel=1e-12)


def test_continuing_solution_refuses_per_step_values():
    rng = np.random.default_rng(9)
    mdp = tnmdp.FiniteMDP(rng.dirichlet(np.ones(4), size=(4, 2)), rng.normal(size=(4, 2)), None,
                          0, discount=0.5)
    sol = tnmdp.solve(mdp)
    with pytest.raises(ValueError, match="value_function is per time step of a finite horizon"):
        sol.value_function
    with pytest.raises(ValueError, match="q_values is per time step"):
        sol.q_values(0)
