"""Tilted networks, event probabilities and Doob transforms against exact path enumeration.

Oracles: brute-force enumeration of every (action, noise) sequence of a small walk, written here
without the package; ``enumerate_returns`` (conftest) for random MDPs; the independent soft
dynamic program of :mod:`tnmdp.reference`. Tolerances are relative 1e-12 on log quantities
(sums of at most 4^8 terms in double precision) unless stated.
"""

import itertools
import math

import numpy as np
import pytest

import tnmdp
from tnmdp.models.walks import conditioned_walk, walk_reference
from tnmdp.reference import soft_backward_induction
from tnmdp.tilted import event_probability, log_h_functions

from conftest import enumerate_returns, random_mdp

RTOL = 1e-12


def walk_paths(horizon, *, noise, p_up, policy=None):
    """Every (actions, flips) history of the walk from 0: ``(probability, positions)``.

    ``policy(t, x) -> Pr(up)``; default the reference ``p_up``.
    """
    out = []
    for actions in itertools.product((0, 1), repeat=horizon):
        for flips in itertools.product((0, 1), repeat=horizon if noise > 0 else 0):
            x, xs, prob = 0, [0], 1.0
            for t, a in enumerate(actions):
                up = p_up if policy is None else policy(t, x)
                prob *= up if a else 1.0 - up
                flip = flips[t] if noise > 0 else 0
                prob *= noise if flip else 1.0 - noise
                x += (1 if a else -1) * (-1 if flip else 1)
                xs.append(x)
            if prob > 0:
                out.append((prob, tuple(xs)))
    return out


def walk_return(xs, *, floor, end, hard):
    """The return of a path, written from the model's definition (paper, Sect. 5.1)."""
    below = [floor is not None and x < floor for x in xs[1:]]
    if hard:
        ok = not any(below) and (end is None or xs[-1] == end)
        return 0.0 if ok else -math.inf
    g = -1.0 * sum(below[:-1])
    if end is None:
        return g - 1.0 * below[-1]
    return g + (1.0 if xs[-1] == end else -10.0)


CASES = [
    dict(floor=0, end=0, hard=True, noise=0.0, p_up=0.5, tau=1.0),
    dict(floor=0, end=0, hard=True, noise=0.2, p_up=0.5, tau=1.0),
    dict(floor=-1, end=2, hard=True, noise=0.15, p_up=0.7, tau=1.0),
    dict(floor=0, end=None, hard=False, noise=0.1, p_up=0.4, tau=0.7),
    dict(floor=None, end=0, hard=False, noise=0.3, p_up=0.5, tau=2.0),
]
IDS = ["excursion", "noisy-excursion", "noisy-ballot-biased", "noisy-meander-penalty",
       "noisy-bridge-penalty"]


@pytest.fixture(params=CASES, ids=IDS)
def case(request):
    c = dict(request.param, horizon=6)
    mdp = conditioned_walk(6, floor=c["floor"], end=c["end"], hard=c["hard"], noise=c["noise"])
    paths = walk_paths(6, noise=c["noise"], p_up=c["p_up"])
    weights = {}
    for prob, xs in paths:
        g = walk_return(xs, floor=c["floor"], end=c["end"], hard=c["hard"])
        weights[xs] = weights.get(xs, 0.0) + prob * math.exp(g / c["tau"])
    return c, mdp, walk_reference(6, c["p_up"]), weights


def test_log_partition_equals_enumeration(case):
    c, mdp, ref, weights = case
    exact = math.log(sum(weights.values()))
    got = tnmdp.log_partition(mdp, temperature=c["tau"], reference_policy=ref)
    assert got == pytest.approx(exact, rel=RTOL)
    log_h = log_h_functions(mdp, temperature=c["tau"], reference_policy=ref)
    assert log_h.shape == (7, 13)
    assert log_h[0, 6] == pytest.approx(exact, rel=RTOL)


def test_doob_transform_path_law_equals_enumeration(case):
    c, mdp, ref, weights = case
    doob = tnmdp.doob_transform(mdp, temperature=c["tau"], reference_policy=ref)
    assert (doob.n_states, doob.n_actions, doob.horizon) == (13, 1, 6)
    z = sum(weights.values())
    mats = [doob.transition_matrix(t).toarray() for t in range(6)]
    for xs, w in weights.items():
        prob = doob.initial[xs[0] + 6]
        for t in range(6):
            prob *= mats[t][xs[t] + 6, xs[t + 1] + 6]
        assert prob == pytest.approx(w / z, rel=1e-11, abs=1e-300)
    # the conditioned process's marginals and mean return, from the package
    one = tnmdp.Policy.uniform(6, 13, 1)
    marg = tnmdp.marginals(doob, one)
    exact_end = np.zeros(13)
    for xs, w in weights.items():
        exact_end[xs[-1] + 6] += w / z
    np.testing.assert_allclose(marg[-1], exact_end, rtol=1e-11, atol=1e-15)
    if c["hard"]:
        assert tnmdp.evaluate(doob, one) == 0.0
        assert event_probability(doob, one) == pytest.approx(1.0, rel=1e-13)
    else:
        mean = sum(w / z * walk_return(xs, floor=c["floor"], end=c["end"], hard=False)
                   for xs, w in weights.items())
        assert tnmdp.evaluate(doob, one) == pytest.approx(mean, rel=1e-11)


def test_soft_solve_equals_soft_dynamic_program(case):
    c, mdp, ref, weights = case
    sol = tnmdp.solve(mdp, temperature=c["tau"], reference_policy=ref)
    value, _, policy = soft_backward_induction(mdp, c["tau"], np.asarray(ref))
    assert sol.soft_value == pytest.approx(value, rel=RTOL)
    reachable = tnmdp.marginals(mdp, policy)[:-1] > 0
    np.testing.assert_allclose(np.asarray(sol.policy)[reachable], policy[reachable], rtol=1e-10)
    bound = c["tau"] * math.log(sum(weights.values()))
    if c["noise"] == 0:  # deterministic moves: the optimum is the Doob transform
        assert sol.soft_value == pytest.approx(bound, rel=RTOL)
    elif c["hard"]:  # no policy avoids a forbidden move for sure: every E[G] is -inf
        assert sol.soft_value == -math.inf and np.isfinite(bound)
    else:  # the policy cannot reshape the noise: strictly below tau log Z
        assert sol.soft_value < bound - 1e-3


def test_event_probability_of_a_state_dependent_policy():
    # the soft-optimal policy of the noisy penalty excursion, and the event of the hard one
    sol = tnmdp.solve(conditioned_walk(6, floor=0, end=0, noise=0.2), temperature=1.0)
    hard = conditioned_walk(6, floor=0, end=0, hard=True, noise=0.2)
    pi = np.asarray(sol.policy)
    paths = walk_paths(6, noise=0.2, p_up=None, policy=lambda t, x: pi[t, x + 6, 1])
    exact = sum(p for p, xs in paths if walk_return(xs, floor=0, end=0, hard=True) == 0)
    assert event_probability(hard, sol.policy) == pytest.approx(exact, rel=RTOL)
    assert event_probability(hard, sol.policy, log=True) == pytest.approx(math.log(exact),
                                                                           rel=RTOL)
    # the soft policy raises the event's probability well above the uniform walk's 5/64
    uniform = event_probability(hard, np.full((6, 13, 2), 0.5))
    assert uniform == pytest.approx(5 / 64, rel=RTOL)
    assert exact > 2 * uniform


def test_soft_policy_and_doob_coincide_only_without_noise():
    for noise in (0.0, 0.2):
        mdp = tnmdp.models.excursion(10, noise=noise)  # the paper's penalties: finite returns
        sol = tnmdp.solve(mdp, temperature=1.0)
        doob = tnmdp.doob_transform(mdp)
        one = tnmdp.Policy.uniform(10, 21, 1)
        policy_marg = tnmdp.marginals(mdp, sol.policy)
        doob_marg = tnmdp.marginals(doob, one)
        log_z = tnmdp.log_partition(mdp)
        if noise == 0:
            assert sol.soft_value == pytest.approx(log_z, rel=RTOL)
            np.testing.assert_allclose(policy_marg, doob_marg, rtol=1e-10, atol=1e-14)
        else:
            assert sol.soft_value < log_z - 0.1
            assert np.abs(policy_marg - doob_marg).max() > 0.01


@pytest.mark.parametrize("params", [
    dict(seed=0), dict(seed=1, sparse=True, stationary=False, reward_form="time_full"),
    dict(seed=2, reward_form="arrival", discount=0.7), dict(seed=3, reward_form="sa"),
], ids=["dense", "sparse-time", "arrival-discount", "state-action"])
def test_log_partition_of_random_mdps_equals_enumeration(params):
    mdp = random_mdp(n_states=3, n_actions=2, horizon=3, **params)
    rng = np.random.default_rng(params["seed"])
    ref = rng.random((3, 3, 2))
    ref /= ref.sum(axis=2, keepdims=True)
    tau = 0.8
    exact = math.log(sum(p * math.exp(g / tau) for p, g, _ in enumerate_returns(mdp, ref)))
    assert tnmdp.log_partition(mdp, temperature=tau, reference_policy=ref) == pytest.approx(
        exact, rel=RTOL)


def test_doob_of_action_dependent_rewards_keeps_the_tilted_mean_return():
    mdp = random_mdp(4, n_states=3, n_actions=2, horizon=3, reward_form="full")
    tau = 1.5
    paths = enumerate_returns(mdp, np.full((3, 3, 2), 0.5))
    z = sum(p * math.exp(g / tau) for p, g, _ in paths)
    tilted_mean = sum(p * math.exp(g / tau) * g for p, g, _ in paths) / z
    doob = tnmdp.doob_transform(mdp, temperature=tau)
    assert tnmdp.evaluate(doob, np.ones((3, 3, 1))) == pytest.approx(tilted_mean, rel=1e-11)


def test_stochastic_rewards_are_tilted():
    rng = np.random.default_rng(7)
    p = rng.random((2, 2, 2, 3))
    p /= p.sum(axis=(2, 3), keepdims=True)
    mdp = tnmdp.FiniteMDP.from_joint(p, [-1.0, 0.5, 2.0], 3, 0)
    tau = 0.9
    paths = enumerate_returns(mdp, np.full((3, 2, 2), 0.5))
    z = sum(q * math.exp(g / tau) for q, g, _ in paths)
    assert tnmdp.log_partition(mdp, temperature=tau) == pytest.approx(math.log(z), rel=RTOL)
    tilted_mean = sum(q * math.exp(g / tau) * g for q, g, _ in paths) / z
    doob = tnmdp.doob_transform(mdp, temperature=tau)
    assert tnmdp.evaluate(doob, np.ones((3, 2, 1))) == pytest.approx(tilted_mean, rel=1e-11)


def test_long_horizons_stay_finite_in_log_space():
    # T beyond 1024: the path counts (binom(T, T/2) ~ 2^T / sqrt(T)) overflow float64, so
    # only the probabilities h = count / 2^T (here >= e^-5 where finite) can be formed
    T = 1200
    assert math.comb(T, T // 2) > 2**1024  # beyond the largest float64
    log_h = log_h_functions(tnmdp.models.meander(T, hard=True))
    x = np.arange(-T, T + 1)
    # the floor binds from time 1: at time 0, x = -1 can still step up
    assert np.isfinite(log_h[0][x >= -1]).all() and np.isneginf(log_h[0][x < -1]).all()
    assert not np.isnan(log_h).any()
    # from x = 0 at time 0 the meander count is binom(T, T/2)
    exact = math.log(math.comb(T, T // 2)) - T * math.log(2)
    assert log_h[0, T] == pytest.approx(exact, rel=1e-10)


def test_impossible_event():
    mdp = tnmdp.models.excursion(7, hard=True)  # odd T: no excursion
    assert tnmdp.log_partition(mdp) == -math.inf
    assert event_probability(mdp, np.full((7, 15, 2), 0.5)) == 0.0
    with pytest.raises(ValueError, match="probability zero under the reference policy"):
        tnmdp.doob_transform(mdp)


def test_bad_arguments():
    mdp = tnmdp.models.excursion(4, hard=True)
    with pytest.raises(ValueError, match="temperature must be > 0 for a tilted network"):
        tnmdp.log_partition(mdp, temperature=0.0)
    with pytest.raises(ValueError, match="temperature must be a finite number"):
        tnmdp.doob_transform(mdp, temperature=-1.0)
    with pytest.raises(ValueError, match=r"reference_policy has shape \(4, 9, 3\)"):
        tnmdp.log_partition(mdp, reference_policy=np.full((4, 9, 3), 1 / 3))
    with pytest.raises(TypeError, match="mdp must be a tnmdp.FiniteMDP"):
        event_probability("walk", np.full((4, 9, 2), 0.5))
    with pytest.raises(ValueError, match=r"policy has shape \(3, 9, 2\)"):
        event_probability(mdp, np.full((3, 9, 2), 0.5))


# ---------------------------------------------------------------------------- wide reward spreads
def log_space_dp(P, R, initial, tau, log_pi0=None):
    """Independent log-space tilted DP on raw dense arrays: ``log E_pi0[exp(G / tau)]``.

    ``P (S, A, S)``, ``R (S, A, S)`` (``-inf`` allowed), stationary, ``T = len(log_pi0)``;
    ``log h_t(s) = logsumexp_{a, s'} (log pi0 + log P + R / tau + log h_{t+1}(s'))`` with
    scipy's ``logsumexp`` over every term: no shift shared between states.
    """
    from scipy.special import logsumexp

    with np.errstate(divide="ignore"):
        log_p = np.log(P)
    log_h = np.zeros(P.shape[0])
    for t in range(len(log_pi0) - 1, -1, -1):
        terms = log_pi0[t][:, :, None] + log_p + np.where(P > 0, R / tau, 0.0) + log_h[None, None]
        log_h = logsumexp(terms.reshape(P.shape[0], -1), axis=1)
    with np.errstate(divide="ignore"):
        return float(logsumexp(np.log(initial) + log_h))


def wide_model(seed, *, deterministic, reward_form, scale=1e3, sparse=False):
    """``S = 6, A = 3, T = 5`` with rewards of order ``scale``: at ``tau = 1e-3`` one step's
    weights span ``~10^6`` e-folds across states."""
    import scipy.sparse as sp

    rng = np.random.default_rng(seed)
    S, A, T = 6, 3, 5
    if deterministic:
        P = np.zeros((S, A, S))
        P[np.arange(S)[:, None], np.arange(A)[None, :], rng.integers(0, S, size=(S, A))] = 1.0
    else:
        P = rng.dirichlet(np.ones(S), size=(S, A)) * (rng.random((S, A, S)) < 0.7)
        P[..., 0] += 1e-3
        P /= P.sum(axis=2, keepdims=True)
    full = rng.normal(scale=scale, size=(S, A, S))
    full[0, 1, :] = -np.inf  # a forbidden action
    given = {"state_action": full[:, :, :1], "arrival": full[:1, :1, :], "full": full}[reward_form]
    R = np.broadcast_to(given, (S, A, S))
    transitions = sp.csr_array(P.reshape(S * A, S)) if sparse else P
    return tnmdp.FiniteMDP(transitions, given, T, 0), P, R


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "sparse"])
@pytest.mark.parametrize("reward_form", ["state_action", "arrival", "full"])
@pytest.mark.parametrize("tau", [1.0, 1e-1, 1e-3])
def test_log_partition_with_rewards_spread_far_beyond_745_tau(tau, reward_form, sparse):
    # regression: weights were shifted by one maximum per step, so states whose weight fell
    # below exp(-745) underflowed to 0 and were read as forbidden (log_partition = -inf)
    rng = np.random.default_rng(1)
    mdp, P, R = wide_model(2, deterministic=False, reward_form=reward_form, sparse=sparse)
    ref = rng.dirichlet(np.ones(3), size=(5, 6))
    with np.errstate(divide="ignore"):
        exact = log_space_dp(P, R, mdp.initial, tau, np.log(ref))
    got = tnmdp.log_partition(mdp, temperature=tau, reference_policy=ref)
    assert np.isfinite(exact)
    assert got == pytest.approx(exact, rel=1e-12)
    # log h at every state and time against the same recursion
    assert not np.isnan(log_h_functions(mdp, temperature=tau, reference_policy=ref)).any()


@pytest.mark.parametrize("reward_form", ["state_action", "arrival", "full"])
@pytest.mark.parametrize("tau", [1.0, 1e-2, 1e-3])
def test_log_partition_equals_soft_solve_with_deterministic_moves_at_small_tau(tau, reward_form):
    # deterministic transitions from one state: tau log Z is the optimal soft value
    mdp, _, _ = wide_model(4, deterministic=True, reward_form=reward_form)
    sol = tnmdp.solve(mdp, temperature=tau)
    assert tau * tnmdp.log_partition(mdp, temperature=tau) == pytest.approx(sol.soft_value,
                                                                            rel=1e-12)


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "sparse"])
@pytest.mark.parametrize("reward_form", ["state_action", "arrival", "full"])
def test_doob_transform_with_rewards_spread_far_beyond_745_tau(reward_form, sparse):
    # the conditioned chain's one-step kernel equals the independent log-space h-functions'
    from scipy.special import logsumexp

    tau = 1e-3
    mdp, P, R = wide_model(5, deterministic=False, reward_form=reward_form, sparse=sparse)
    doob = tnmdp.doob_transform(mdp, temperature=tau)
    log_h = log_h_functions(mdp, temperature=tau)
    with np.errstate(divide="ignore"):
        terms = np.log(P / 3) + np.where(P > 0, R / tau, 0.0) + log_h[1][None, None, :]
    log_kernel = logsumexp(terms, axis=1) - log_h[0][:, None]  # (S, S')
    alive = np.isfinite(log_h[0])
    # exponents of order |R / tau| ~ 1e6 carry absolute rounding ~ 1e6 * eps ~ 1e-10 per step:
    # compare the logs of the kernel entries with that absolute tolerance (times a few steps)
    scale = np.abs(log_h[np.isfinite(log_h)]).max()
    got = doob.transition_matrix(0)
    got = (got.toarray() if sparse else got)[alive]  # a dense model gives a dense chain
    positive = np.exp(log_kernel[alive]) > 1e-300
    assert ((got > 0) == positive).all()
    with np.errstate(divide="ignore"):
        np.testing.assert_allclose(np.log(got[positive]), log_kernel[alive][positive],
                                   rtol=0, atol=50 * np.finfo(float).eps * scale)
    marg = tnmdp.marginals(doob, tnmdp.Policy.uniform(5, 6, 1))
    assert np.isfinite(marg).all()
    np.testing.assert_allclose(marg.sum(axis=1), 1.0, rtol=1e-12)


def test_event_probability_reads_the_policy_with_atol():
    mdp = tnmdp.models.bridge(4, hard=True)
    rng = np.random.default_rng(3)
    policy = rng.dirichlet(np.ones(2), size=(4, 9)).astype(np.float32)  # rows sum to 1 +- 1e-7
    policy[0, 0] = [0.5 + 1e-7, 0.5]
    with pytest.raises(ValueError, match="policy"):
        event_probability(mdp, policy)
    got = event_probability(mdp, policy, atol=1e-6)
    exact = event_probability(mdp, policy / policy.sum(axis=2, keepdims=True, dtype=float))
    assert got == pytest.approx(exact, rel=1e-6)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("width", ["narrow", "wide"])
def test_tilted_backends_agree_with_the_log_space_oracle(backend, width):
    # narrow sites (<= 32 entries per state) step by slots of logaddexp, wide ones by a per-row
    # pass (compiled with backend="numba"); the Doob kernel is compiled with "numba"
    import scipy.sparse as sp

    rng = np.random.default_rng(11)
    S, A, T, tau = 30, 2, 6, 1e-3
    keep = rng.random((S, A, S)) < (0.1 if width == "narrow" else 0.9)
    keep[:, :, 0] = True
    P = rng.random((S, A, S)) * keep
    P /= P.sum(axis=2, keepdims=True)
    R = rng.normal(scale=1e3, size=(S, 1, S))  # no action dependence: the Doob chain keeps R
    R[3, 0, 5] = -np.inf
    mdp = tnmdp.FiniteMDP(sp.csr_array(P.reshape(S * A, S)), R, T, 0)
    R = np.broadcast_to(R, (S, A, S))
    ref = np.full((T, S, A), 0.5)
    exact = log_space_dp(P, R, mdp.initial, tau, np.log(ref))
    got = tnmdp.log_partition(mdp, temperature=tau, backend=backend)
    assert got == pytest.approx(exact, rel=1e-12)
    doob = tnmdp.doob_transform(mdp, temperature=tau / 1e3, backend=backend)
    plain = tnmdp.doob_transform(mdp, temperature=tau / 1e3, backend="numpy")
    for t in range(T):
        np.testing.assert_allclose(doob.transition_matrix(t).toarray(),
                                   plain.transition_matrix(t).toarray(), rtol=1e-12, atol=1e-300)
    with pytest.raises(ValueError, match="backend must be one of"):
        tnmdp.log_partition(mdp, backend="gpu")
