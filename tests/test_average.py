"""Average reward (discount == 1): gain and bias, unichain and multichain policy iteration.

Oracles: closed forms worked by hand (Puterman's two-state example, Sect. 3.1), the LP of
Puterman Sect. 8.8 for unichain models, ``V_{T+1} - V_T`` of finite-horizon backward induction
(``tnmdp.reference``; converges geometrically to the optimal gain for aperiodic models), and the
deviation-matrix formula ``h = (I - P + P*)^-1 (I - P*) r`` with ``P*`` from matrix powers.
"""

import numpy as np
import pytest
import scipy.optimize as so

import tnmdp
from tnmdp import reference
from tnmdp.average import average_policy_iteration, average_reward


def two_state():
    # Puterman (1994) Sect. 3.1: s1 has a11 (r 5, stay/leave 1/2) and a12 (r 10, leave);
    # s2 has one action (r -1, stay). (The second action of s2 duplicates the first.)
    P = np.zeros((2, 2, 2))
    P[0, 0] = [0.5, 0.5]
    P[0, 1] = [0.0, 1.0]
    P[1, :, 1] = 1.0
    R = np.array([[5.0, 10.0], [-1.0, -1.0]])
    return tnmdp.FiniteMDP(P, R, None, 0), P, R


def test_two_state_example_closed_form():
    mdp, _, _ = two_state()
    # a11: h(s1) = 5 + 1 + h(s1)/2 -> 12; a12: h(s1) = 10 + 1 = 11; h(s2) = 0 (its class)
    ev = average_reward(mdp, [0, 0])
    np.testing.assert_allclose(ev.gain, [-1, -1], rtol=0, atol=1e-14)
    np.testing.assert_allclose(ev.bias, [12, 0], rtol=0, atol=1e-13)
    np.testing.assert_allclose(average_reward(mdp, [1, 0]).bias, [11, 0], rtol=0, atol=1e-13)
    sol = tnmdp.solve(mdp)  # starts at a12 (larger one-step reward), moves to a11
    assert sol.policy.actions.tolist()[0] == 0 and sol.success
    assert sol.expected_return == pytest.approx(-1, abs=1e-14)
    np.testing.assert_allclose(sol.values, [12, 0], rtol=0, atol=1e-13)
    assert tnmdp.evaluate(mdp, [1, 0]) == pytest.approx(-1, abs=1e-14)


def test_gain_improvement_before_bias():
    # 0: a -> absorbing 1 (r 10 now, 0 after); b -> absorbing 2 (r 0 now, 1 for ever)
    P = np.zeros((3, 2, 3))
    P[0, 0, 1] = P[0, 1, 2] = 1.0
    P[1, :, 1] = P[2, :, 2] = 1.0
    R = np.array([[10.0, 0.0], [0.0, 0.0], [1.0, 1.0]])
    mdp = tnmdp.FiniteMDP(P, R, None, 0)
    sol = tnmdp.solve(mdp)
    assert sol.policy.actions[0] == 1 and sol.expected_return == pytest.approx(1.0, abs=1e-14)
    ev = average_reward(mdp, sol.policy)
    np.testing.assert_allclose(ev.gain, [1, 0, 1], atol=1e-14)
    assert tnmdp.classify(mdp, sol.policy).kind == "multichain"


def lp_gain(P, R):
    S, A = R.shape
    # min g  s.t.  g + h(s) - sum_j P(j|s,a) h(j) >= r(s,a);  variables (g, h)
    E = np.repeat(np.eye(S), A, axis=0)
    A_ub = -np.hstack([np.ones((S * A, 1)), E - P.reshape(S * A, S)])
    res = so.linprog(np.r_[1.0, np.zeros(S)], A_ub=A_ub, b_ub=-R.ravel(),
                     bounds=[(None, None)] * (S + 1), method="highs",
                     options={"primal_feasibility_tolerance": 1e-10,
                              "dual_feasibility_tolerance": 1e-10})
    assert res.status == 0
    return res.x[0]


def deviation_bias(P_pi, r_pi):
    n = P_pi.shape[0]
    P_star = sum(np.linalg.matrix_power(P_pi, k) for k in range(3000, 3100)) / 100
    return np.linalg.solve(np.eye(n) - P_pi + P_star, (np.eye(n) - P_star) @ r_pi), P_star


@pytest.mark.parametrize("seed", range(4))
def test_unichain_random_against_lp_and_deviation_matrix(seed):
    rng = np.random.default_rng(seed)
    S, A = 15, 3
    P = rng.random((S, A, S)) ** 3
    P /= P.sum(axis=2, keepdims=True)
    R = rng.normal(size=(S, A))
    mdp = tnmdp.FiniteMDP(P, R, None, rng.dirichlet(np.ones(S)))
    sol = tnmdp.solve(mdp)
    # HiGHS to 1e-10 feasibility
    assert sol.expected_return == pytest.approx(lp_gain(P, R), abs=1e-8)
    rows = np.arange(S), sol.policy.actions.astype(int)
    h, P_star = deviation_bias(P[rows], R[rows])
    np.testing.assert_allclose(sol.values, h, rtol=0, atol=1e-10)
    ev = average_reward(mdp, sol.policy)
    np.testing.assert_allclose(ev.gain, P_star @ R[rows], rtol=0, atol=1e-10)
    assert abs(ev.stationary @ ev.bias) < 1e-12  # normalisation: stationary mean 0


def test_multichain_random_against_backward_induction():
    rng = np.random.default_rng(8)
    S, A = 10, 2
    P = np.zeros((S, A, S))
    blocks = [range(0, 3), range(3, 6)]  # closed under every action; 6..9 transient-ish
    for s in range(S):
        for a in range(A):
            if s < 6:
                blk = list(blocks[s // 3])
                P[s, a, blk] = rng.random(3) + 0.1
            else:
                P[s, a, rng.choice(S, 3, replace=False)] = rng.random(3) + 0.1
    P /= P.sum(axis=2, keepdims=True)
    R = rng.normal(size=(S, A))
    mdp = tnmdp.FiniteMDP(P, R, None, 0)
    sol = average_policy_iteration(mdp)
    gain = average_reward(mdp, sol.policy).gain
    T = 3000
    v = [reference.backward_induction(tnmdp.FiniteMDP(P, R, t, 0)).values for t in (T, T + 1)]
    np.testing.assert_allclose(gain, v[1] - v[0], rtol=0, atol=1e-9)
    assert sol.success and len(tnmdp.classify(mdp, sol.policy).recurrent_classes) >= 2


def test_average_reward_errors():
    mdp, _, _ = two_state()
    with pytest.raises(ValueError, match="average_reward needs discount == 1"):
        average_reward(tnmdp.FiniteMDP(np.full((2, 1, 2), 0.5), np.zeros((2, 1)), None, 0,
                                       discount=0.9), [0, 0])
    with pytest.raises(ValueError, match="-inf rewards are not supported"):
        average_reward(tnmdp.FiniteMDP(np.full((2, 1, 2), 0.5), np.array([[0.0], [-np.inf]]),
                                       None, 0), [0, 0])
    with pytest.raises(ValueError, match="method 'value_iteration': the average-reward"):
        tnmdp.solve(mdp, method="value_iteration")
