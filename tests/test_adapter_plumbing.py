"""Shared adapter plumbing: transition sampler, CP core, exact references, deprecated names.

Oracles: exact frequencies of stratified uniforms (the inverse CDF is exact up to 1/N), explicit
products and einsum for the CP core, a dense backward induction on raw arrays written here
(with ``0 * -inf = 0``) and finite differences of :func:`tnmdp.evaluate` for the exact paths.
"""

import warnings

import numpy as np
import pytest
import scipy.sparse as sp

import tnmdp
from tnmdp.adapters import parafac_learn
from tnmdp.adapters.cp import cp_full, cp_network, row_products
from tnmdp.adapters.exact import action_values, logit_gradient
from tnmdp.adapters.parafac import ParafacCritic, ParafacPolicy
from tnmdp.adapters.qtensor_learn import optimal_q_table
from tnmdp.adapters.sampling import MDPEnvironment, TransitionSampler
from tnmdp.models.gridworld import gridworld

N_STRATA = 20_000


def _strata(n=N_STRATA):
    """Stratified uniforms: the fraction mapped to an outcome of probability p is p +- 1/n."""
    return (np.arange(n) + 0.5) / n


def _random_mdp(seed, S=4, A=3, T=3, sparse=False, discount=0.9):
    rng = np.random.default_rng(seed)
    P = rng.dirichlet(np.ones(S), size=(S, A))
    P[P < 0.15] = 0.0  # zero entries that must never be drawn
    P /= P.sum(axis=2, keepdims=True)
    R = rng.standard_normal((S, A, S))
    trans = sp.csr_matrix(P.reshape(S * A, S)) if sparse else P
    mdp = tnmdp.FiniteMDP(trans, R, T, rng.dirichlet(np.ones(S)), rng.standard_normal(S),
                          discount=discount)
    return mdp, P, R


# ---------------------------------------------------------------------- sampler
@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "csr"])
def test_sampler_draws_each_row_with_its_probabilities(sparse):
    mdp, P, R = _random_mdp(0, sparse=sparse)
    sampler = TransitionSampler(mdp)
    u = _strata()
    for s in range(4):
        for a in range(3):
            nxt, rew = sampler.step(1, np.full(u.size, s), np.full(u.size, a), u)
            freq = np.bincount(nxt, minlength=4) / u.size
            np.testing.assert_allclose(freq, P[s, a], atol=1.0 / u.size)
            assert not (freq[P[s, a] == 0]).any()
            np.testing.assert_array_equal(rew, R[s, a, nxt])
    freq0 = np.bincount(sampler.initial_states(u), minlength=4) / u.size
    np.testing.assert_allclose(freq0, mdp.initial, atol=1.0 / u.size)


def test_sampler_draws_rewards_from_a_finite_alphabet():
    # p(s', r | s, a) with two reward values; the reward law given (s, a, s') must be honoured
    rng = np.random.default_rng(1)
    joint = rng.dirichlet(np.ones(3 * 2), size=(3, 2)).reshape(3, 2, 3, 2)
    values = np.array([-1.0, 2.0])
    mdp = tnmdp.FiniteMDP.from_joint(joint, values, 2, 0)
    sampler = TransitionSampler(mdp)
    u, u_r = _strata(), np.random.default_rng(2).permutation(_strata())
    nxt, rew = sampler.step(0, np.zeros(u.size, int), np.ones(u.size, int), u, u_r)
    # Pr(s', r) for (s, a) = (0, 1): independent draws, Monte Carlo with 5 standard errors
    for j in range(3):
        for k, value in enumerate(values):
            p = joint[0, 1, j, k]
            freq = np.mean((nxt == j) & (rew == value))
            assert abs(freq - p) < 5 * np.sqrt(p * (1 - p) / u.size)
    with pytest.raises(ValueError, match="u_reward is required"):
        sampler.step(0, np.zeros(2, int), np.zeros(2, int), np.full(2, 0.5))


def test_sampler_validation():
    mdp, _, _ = _random_mdp(3)
    sampler = TransitionSampler(mdp)
    s = np.zeros(2, int)
    with pytest.raises(ValueError, match=r"t must be an int in 0..2, got 3"):
        sampler.step(3, s, s, np.full(2, 0.5))
    with pytest.raises(ValueError, match=r"u\[1\] = 1.0 is outside \[0, 1\)"):
        sampler.step(0, s, s, np.array([0.5, 1.0]))
    with pytest.raises(ValueError, match=r"u must be shape \(2,\), got shape \(3,\)"):
        sampler.step(0, s, s, np.full(3, 0.5))
    with pytest.raises(ValueError, match=r"states\[1\] = 4 is outside 0..3"):
        sampler.step(0, np.array([0, 4]), s, np.full(2, 0.5))
    with pytest.raises(TypeError, match="actions must hold integers, got dtype float64"):
        sampler.step(0, s, np.zeros(2), np.full(2, 0.5))
    with pytest.raises(TypeError, match="mdp must be a tnmdp.FiniteMDP, not dict"):
        TransitionSampler({})
    with pytest.raises(ValueError, match=r"state_shape \(3,\) multiplies to 3, not n_states=4"):
        MDPEnvironment(mdp, (3,))


# ---------------------------------------------------------------------- CP core
def test_row_products_and_leave_one_out_against_explicit_products():
    rng = np.random.default_rng(4)
    rows = [rng.standard_normal((5, 3)) for _ in range(4)]
    rows[2][1, 0] = 0.0  # a zero entry: no division anywhere
    prod, loo = row_products(rows, leave_one_out=True)
    np.testing.assert_allclose(prod, rows[0] * rows[1] * rows[2] * rows[3], rtol=1e-14)
    # different multiplication orders: a few ulps
    np.testing.assert_allclose(row_products(rows), prod, rtol=1e-14)
    for i in range(4):
        others = np.prod([r for j, r in enumerate(rows) if j != i], axis=0)
        np.testing.assert_allclose(loo[:, i], others, rtol=1e-14)
    # one factor: the leave-one-out product is the empty product
    np.testing.assert_array_equal(row_products(rows[:1], leave_one_out=True)[1][:, 0], 1.0)


def test_cp_full_and_network_against_einsum():
    rng = np.random.default_rng(5)
    factors = [rng.standard_normal((n, 2)) for n in (3, 4, 2)]
    want = np.einsum("ik,jk,ak->ija", *factors)
    np.testing.assert_allclose(cp_full(factors), want, rtol=1e-13, atol=1e-14)
    tn = cp_network(factors, ["x", "y", "a"])
    assert {t.inds for t in tn} == {("x", "k"), ("y", "k"), ("a", "k")}
    assert {tag for t in tn for tag in t.tags} == {"X", "Y", "A"}
    np.testing.assert_allclose(tn.contract(output_inds=("x", "y", "a")).data, want,
                               rtol=1e-13, atol=1e-14)
    with pytest.raises(ValueError, match="index_names has 2 names; there are 3 factors"):
        cp_network(factors, ["x", "y"])


# ---------------------------------------------------------------------- exact references
def _dense_q(P, R, terminal, T, discount, policy=None):
    """Q_t on raw arrays by explicit sums, ``0 * -inf = 0`` (independent of tnmdp)."""
    S, A, _ = P.shape
    v = terminal.astype(float)
    out = np.empty((T, S, A))
    for t in range(T - 1, -1, -1):
        for s in range(S):
            for a in range(A):
                terms = [P[s, a, j] * (R[s, a, j] + discount * v[j])
                         for j in range(S) if P[s, a, j] > 0]
                out[t, s, a] = sum(terms)
        if policy is None:
            v = out[t].max(axis=1)
        else:
            v = np.array([sum(policy[t, s, a] * out[t, s, a] for a in range(A)
                              if policy[t, s, a] > 0) for s in range(S)])
    return out


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "csr"])
def test_action_values_match_a_dense_oracle(sparse):
    mdp, P, R = _random_mdp(6, sparse=sparse)
    policy = np.random.default_rng(7).dirichlet(np.ones(3), size=(3, 4))
    terminal = np.asarray(mdp.terminal_rewards)
    np.testing.assert_allclose(action_values(mdp), _dense_q(P, R, terminal, 3, 0.9),
                               rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(action_values(mdp, policy),
                               _dense_q(P, R, terminal, 3, 0.9, policy), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(action_values(mdp, time=1), _dense_q(P, R, terminal, 3, 0.9)[1],
                               rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match=r"time must be an int in 0..2, got 3"):
        action_values(mdp, time=3)


def _forbidden_mdp():
    """Dense 3-state MDP: arriving in state 2 is forbidden (-inf). From state 1 every action
    risks it (V(1) = -inf); from state 0 action 0 stays put, action 1 risks it."""
    P = np.zeros((3, 2, 3))
    P[0, 0, 0] = 1.0
    P[0, 1] = [0.5, 0.0, 0.5]
    P[1, :, 1], P[1, :, 2] = 0.5, 0.5
    P[2, :, 0] = 1.0
    R = np.ones((3, 2, 3))
    R[:, :, 2] = -np.inf
    return tnmdp.FiniteMDP(P, R, 3, 0), P, R


def test_exact_paths_are_neg_inf_safe():
    mdp, P, R = _forbidden_mdp()
    with np.errstate(all="raise"):  # 0 * -inf would raise here instead of giving nan
        q = action_values(mdp)
        q_table = optimal_q_table(mdp)
    want = _dense_q(P, R, np.zeros(3), 3, 1.0)
    assert not np.isnan(q).any()
    np.testing.assert_array_equal(np.isneginf(q), np.isneginf(want))
    finite = np.isfinite(want)
    np.testing.assert_allclose(q[finite], want[finite], rtol=1e-14)
    np.testing.assert_array_equal(q_table, q[0])
    assert q[0, 0, 0] == 3.0 and np.isneginf(q[0, 1]).all()
    # a policy that never risks the forbidden move: finite return, finite gradient
    safe = np.zeros((3, 3, 2))
    safe[:, :, 0] = 1.0
    value, grad = logit_gradient(mdp, safe)
    assert value == tnmdp.evaluate(mdp, safe) == 3.0
    assert np.isfinite(grad).all()
    # a softmax policy takes every action: the return is -inf and the gradient undefined
    with pytest.raises(ValueError, match=r"expected return is -inf \(from state 0, action 0 "
                                         r"at t=0"):
        logit_gradient(mdp, np.full((3, 3, 2), 0.5))


def test_logit_gradient_matches_finite_differences_of_evaluate():
    mdp, _, _ = _random_mdp(8, sparse=True)
    logits = np.random.default_rng(9).standard_normal((3, 4, 3))

    def softmax(x):
        e = np.exp(x - x.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)

    value, grad = logit_gradient(mdp, softmax(logits))
    assert value == pytest.approx(tnmdp.evaluate(mdp, softmax(logits)), abs=1e-13)
    h, fd = 1e-6, np.empty_like(logits)
    for idx in np.ndindex(logits.shape):
        e = np.zeros_like(logits)
        e[idx] = h
        fd[idx] = (tnmdp.evaluate(mdp, softmax(logits + e))
                   - tnmdp.evaluate(mdp, softmax(logits - e))) / (2 * h)
    # central differences, step 1e-6 on O(1) returns: truncation 1e-12, rounding 1e-10
    np.testing.assert_allclose(grad, fd, rtol=0, atol=1e-8)


# ---------------------------------------------------------------------- naming
def test_deprecated_names_warn_and_agree():
    grid = gridworld()
    with pytest.warns(DeprecationWarning, match=r"ParafacPolicy\(mode_sizes=...\) is "
                                                r"deprecated; use state_shape="):
        old = ParafacPolicy(mode_sizes=(4, 4), n_actions=4, rank=2, rng=0)
    new = ParafacPolicy((4, 4), 4, 2, rng=0)
    np.testing.assert_array_equal(old.params, new.params)
    with pytest.warns(DeprecationWarning, match=r"ParafacPolicy.n_params is deprecated"):
        assert new.n_params == new.n_parameters == 2 * (4 + 4 + 4)
    with pytest.warns(DeprecationWarning, match=r"ParafacCritic.mode_sizes is deprecated"):
        assert ParafacCritic((4, 4), 2).mode_sizes == (4, 4)
    kwargs = dict(n_updates=2, episodes_per_update=4, rng=1)
    with pytest.warns(DeprecationWarning) as record:
        a = parafac_learn.tlrac(new, grid, gamma=0.9, lr=0.02, **kwargs)
    assert {str(w.message) for w in record} == {
        "tlrac(gamma=...) is deprecated; use discount=",
        "tlrac(lr=...) is deprecated; use learning_rate="}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        b = parafac_learn.tlrac(new, grid, discount=0.9, learning_rate=0.02, **kwargs)
    np.testing.assert_array_equal(a.policy.params, b.policy.params)
    with pytest.warns(DeprecationWarning, match=r"MDPEnvironment\(mode_sizes=...\)"):
        env = MDPEnvironment(grid, mode_sizes=(4, 4))
    with pytest.warns(DeprecationWarning, match=r"MDPEnvironment.mode_sizes is deprecated"):
        assert env.mode_sizes == env.state_shape == (4, 4)
    with pytest.warns(DeprecationWarning, match=r"LearningResult.n_params is deprecated"):
        assert b.n_params == b.n_parameters
    with pytest.raises(TypeError, match=r"tlrpg\(\) got both discount= and its deprecated "
                                        r"alias gamma="):
        parafac_learn.tlrpg(new, grid, gamma=0.9, discount=0.9)
