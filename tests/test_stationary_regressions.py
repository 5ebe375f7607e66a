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
