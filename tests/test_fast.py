"""tnmdp.backends: compiled kernels against the numpy backend and plain backward induction.

Exactness oracle: MDPs on a dyadic grid (probabilities multiples of 1/4, small integer rewards,
``-inf`` sprinkled in) make every sum exact in float64, whatever the order of summation, so
ties are exact ties and the compiled policy must equal the reference's action for action
(lowest action on ties) with identical values.

Factors that select independent code paths (reward form, storage, stationarity, discount,
reference policy, ...) are covered pairwise (:func:`pairwise`): every value of every factor
meets every value of every other factor in some case, instead of the full product.
"""

import itertools

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

import tnmdp
from tnmdp import kernels
from tnmdp.reference import backward_induction
from tnmdp.sweep import sweep

fast = pytest.importorskip("tnmdp.backends.numba")

from tnmdp.backends import MIN_WORK, select, worthwhile  # noqa: E402
from tnmdp.backends.numba import soft_sweep  # noqa: E402
from tnmdp.backends.numba.soft_kernels import exp_log_rows  # noqa: E402
from tnmdp.backends.numpy.operators import CSR, ELL, Operator  # noqa: E402

from conftest import random_mdp  # noqa: E402


def pairwise(**factors):
    """``(argnames, params)`` for ``pytest.mark.parametrize``: a small set of cases in which
    every pair of values of any two factors occurs (greedy, deterministic).

    Each factor is a list of values (ids ``str(value)``) or a dict ``{id: value}``.
    """
    levels = [list(v.items()) if isinstance(v, dict) else [(str(x), x) for x in v]
              for v in factors.values()]

    def pairs(case):
        return {(i, case[i], j, case[j]) for i, j in itertools.combinations(range(len(case)), 2)}

    candidates = list(itertools.product(*(range(len(level)) for level in levels)))
    uncovered = set().union(*map(pairs, candidates))
    params = []
    while uncovered:
        case = max(candidates, key=lambda c: len(pairs(c) & uncovered))  # first of the best
        uncovered -= pairs(case)
        chosen = [level[k] for level, k in zip(levels, case)]
        params.append(pytest.param(*(value for _, value in chosen),
                                   id="-".join(name for name, _ in chosen)))
    return ",".join(factors), params


SPARSE = {"csr": True, "dense": False}
STATIONARY = {"stationary": True, "time-dependent": False}


def dyadic_mdp(seed, n_states=12, n_actions=3, horizon=9, *, sparse=True, stationary=True,
               reward_form="full", discount=1.0, neg_inf=True):
    """Exact-arithmetic random MDP with many ties and (optionally) ``-inf`` rewards."""
    rng = np.random.default_rng(seed)
    S, A, T = n_states, n_actions, horizon

    def kernel():
        P = np.zeros((S, A, S))
        for s in range(S):
            for a in range(A):
                np.add.at(P[s, a], rng.integers(0, S, size=4), 0.25)  # 4 quanta of 1/4
        P[:, A - 1] = P[:, 0]  # duplicate action: exact ties everywhere it matters
        return P

    def reward(shape):
        r = rng.integers(-2, 3, size=shape).astype(float)
        if neg_inf:
            r[rng.random(shape) < 0.08] = -np.inf
        return r

    kernels_ = [kernel()] if stationary else [kernel() for _ in range(T)]
    shape = {"sa": (S, A), "full": (S, A, S), "arrival": (1, 1, S), "time": (T, 1, 1, S),
             "time_full": (T, S, A, S)}[reward_form]
    rewards = reward(shape)
    if reward_form in ("sa", "full"):
        rewards[:, A - 1] = rewards[:, 0]
    elif reward_form == "time_full":
        rewards[:, :, A - 1] = rewards[:, :, 0]
    if sparse:
        mats = [sp.csr_matrix(k.reshape(S * A, S)) for k in kernels_]
        transitions = mats[0] if stationary else mats
    else:
        transitions = kernels_[0] if stationary else np.stack(kernels_)
    terminal = reward((S,))
    terminal[0] = 0.0
    return tnmdp.FiniteMDP(transitions, rewards, T, 0, terminal_rewards=terminal,
                           discount=discount)


#: The shortest even walk on the compiled path of ``solve``: ``T S A = T (2T + 1) 2 >= MIN_WORK``
#: (182 for ``MIN_WORK = 2**17``), since the dense references cost ``O(T S^2 A)``.
COMPILED_WALK = next(T for T in itertools.count(2, 2) if T * (2 * T + 1) * 2 >= MIN_WORK)


def uniform_sites(mdp):
    return [np.full((mdp.n_states, mdp.n_actions), 1.0 / mdp.n_actions)] * mdp.horizon


def numpy_history(mdp, sites):
    """The objective history of the numpy backward sweep from ``sites``."""
    history = sweep(mdp, sites, tnmdp.local.get_local_solver("argmax"), backend="numpy").history
    return np.asarray(history() if callable(history) else history)


FORMS = ["sa", "full", "arrival", "time", "time_full"]


@pytest.mark.parametrize("sparse", [True, False], ids=["csr", "dense"])
@pytest.mark.parametrize("reward_form", FORMS)
@pytest.mark.parametrize("seed", range(3))
def test_backup_argmax_matches_numpy_kernels(seed, reward_form, sparse):
    mdp = dyadic_mdp(seed, sparse=sparse, reward_form=reward_form)
    rng = np.random.default_rng(seed)
    v = rng.integers(-3, 4, size=mdp.n_states).astype(float)
    v[rng.random(v.size) < 0.2] = -np.inf
    for t in (0, mdp.horizon - 1):
        want_a, want_v = kernels.greedy(kernels.backup(mdp, t, v))
        arrival = mdp.reward_slice(t)[0, 0] if mdp.reward_kind() == "arrival" else None
        got_a, got_v = fast.backup_argmax(mdp.transition_matrix(t), mdp.expected_reward(t), v,
                                          arrival_reward=arrival)
        np.testing.assert_array_equal(got_a, want_a)
        np.testing.assert_array_equal(got_v, want_v)  # exact arithmetic: same bits


@pytest.mark.parametrize("sparse", [True, False], ids=["csr", "dense"])
@pytest.mark.parametrize("seed", range(3))
def test_propagate_gain_matches_numpy_kernels(seed, sparse):
    mdp = dyadic_mdp(seed, sparse=sparse, reward_form="sa")
    rng = np.random.default_rng(seed)
    S, A = mdp.n_states, mdp.n_actions
    probs = rng.dirichlet(np.ones(A), size=S)
    probs[rng.random((S, A)) < 0.3] = 0.0
    probs[probs.sum(axis=1) == 0, 0] = 1.0
    probs /= probs.sum(axis=1, keepdims=True)
    dist = rng.dirichlet(np.ones(S))
    dist[: S // 3] = 0.0  # unvisited states: their -inf rewards must not enter the gain
    dist /= dist.sum()
    rbar = mdp.expected_reward(0)
    got, gain = fast.propagate_gain(mdp.transition_matrix(0), probs, rbar, dist)
    np.testing.assert_allclose(got, kernels.propagate(mdp, 0, dist[:, None] * probs),
                               rtol=0, atol=1e-15)
    w = dist[:, None] * probs
    with np.errstate(invalid="ignore"):
        want = np.where(w > 0, w * rbar, 0.0).sum()
    assert gain == pytest.approx(want, rel=1e-13, abs=1e-15) or (gain == want == -np.inf)
    M, rbar_pi = fast.markov_operator(mdp.transition_matrix(0), probs, rbar)
    got_m, gain_m = fast.propagate_gain(M, np.ones((S, 1)), rbar_pi[:, None], dist)
    np.testing.assert_allclose(got_m, got, rtol=0, atol=1e-15)
    assert gain_m == pytest.approx(gain, rel=1e-13, abs=1e-15) or gain_m == gain


@pytest.mark.parametrize("budget", [None, 200], ids=["cached", "checkpoints"])
@pytest.mark.parametrize("discount", [1.0, 0.75])
@pytest.mark.parametrize("stationary", [True, False], ids=["stationary", "time-dependent"])
@pytest.mark.parametrize("sparse", [True, False], ids=["csr", "dense"])
@pytest.mark.parametrize("reward_form", FORMS)
def test_sweep_is_backward_induction(reward_form, sparse, stationary, discount, budget):
    mdp = dyadic_mdp(7, n_states=10, horizon=11, sparse=sparse, stationary=stationary,
                     reward_form=reward_form, discount=discount)
    actions, values, history = fast.backward_argmax_sweep(mdp, uniform_sites(mdp), budget=budget)
    ref = backward_induction(mdp)
    np.testing.assert_array_equal(actions, ref.policy.actions)  # ties: lowest action
    np.testing.assert_array_equal(values, ref.values)
    want = numpy_history(mdp, uniform_sites(mdp))
    np.testing.assert_array_equal(np.isneginf(history), np.isneginf(want))
    finite = np.isfinite(want)
    np.testing.assert_allclose(history[finite], want[finite], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kind", ["random", "deterministic", "mixed"])
def test_history_for_other_initial_policies(kind):
    """Left environments of a non-uniform initial policy (no Markov-operator shortcut)."""
    mdp = dyadic_mdp(3, n_states=15, n_actions=4, horizon=12, reward_form="sa", neg_inf=False)
    rng = np.random.default_rng(0)
    S, A, T = mdp.n_states, mdp.n_actions, mdp.horizon
    random_sites = list(rng.dirichlet(np.ones(A), size=(T, S)))
    int_sites = list(rng.integers(0, A, size=(T, S)))
    sites = {"random": random_sites, "deterministic": int_sites,
             "mixed": [random_sites[0]] * 5 + int_sites[5:]}[kind]
    _, _, history = fast.backward_argmax_sweep(mdp, sites, budget=300)
    np.testing.assert_allclose(history, numpy_history(mdp, sites), rtol=1e-12, atol=1e-12)


@settings(max_examples=40, deadline=None)
@given(st.fixed_dictionaries({
    "seed": st.integers(0, 2**31 - 1), "n_states": st.integers(1, 7),
    "n_actions": st.integers(1, 4), "horizon": st.integers(1, 7), "sparse": st.booleans(),
    "stationary": st.booleans(), "ties": st.booleans(),
    "reward_form": st.sampled_from(FORMS), "discount": st.sampled_from([1.0, 0.9])}))
def test_random_mdps_match_reference(params):
    """Values and optimality on the shared random MDPs (inexact arithmetic)."""
    mdp = random_mdp(**params)
    actions, values, history = fast.backward_argmax_sweep(mdp, uniform_sites(mdp))
    ref = backward_induction(mdp)
    scale = max(1.0, np.abs(ref.values).max())
    np.testing.assert_allclose(values, ref.values, rtol=0, atol=1e-12 * scale)
    # the policy is optimal: evaluating it gives the optimal values
    np.testing.assert_allclose(tnmdp.evaluate(mdp, tnmdp.Policy.from_actions(actions, mdp.n_actions)),
                               ref.expected_return, rtol=0, atol=1e-12 * scale)
    # (near-ties rounded differently may pick other optimal actions here: the dyadic tests
    # above pin tie-breaking where ties are exact)


def test_operator_formats_agree():
    """ELL (padded, vectorised) and CSR layouts give the same bits."""
    mdp = dyadic_mdp(11, n_states=30, n_actions=2, horizon=5)
    P = mdp.transition_matrix(0)
    v = np.arange(30, dtype=float)
    v[3] = -np.inf
    as_ell, as_csr = Operator(P, ell_padding=100.0), Operator(P, ell_padding=0.0)
    assert (as_ell.kind, as_csr.kind) == (ELL, CSR)
    ell = fast.backup_argmax(as_ell, mdp.expected_reward(0), v)
    csr = fast.backup_argmax(as_csr, mdp.expected_reward(0), v)
    np.testing.assert_array_equal(ell[0], csr[0])
    np.testing.assert_array_equal(ell[1], csr[1])


def test_long_walk_checkpoints_and_solve_uses_compiled_path():
    """A walk large enough for the compiled path in solve, with sqrt(T) checkpoints."""
    mdp = tnmdp.models.excursion(COMPILED_WALK)
    assert worthwhile(mdp)
    budget = 2**16
    assert mdp.horizon * mdp.n_states * 8 > budget  # the left environments do not all fit
    actions, values, history = fast.backward_argmax_sweep(mdp, uniform_sites(mdp), budget=budget)
    ref = backward_induction(mdp)
    np.testing.assert_array_equal(actions, ref.policy.actions)
    np.testing.assert_array_equal(values, ref.values)
    sol = tnmdp.solve(mdp)
    np.testing.assert_array_equal(sol.policy.actions, ref.policy.actions)
    np.testing.assert_allclose(sol.history, history, rtol=1e-12, atol=1e-12)
    assert sol.expected_return == pytest.approx(1.0, abs=1e-12)


def test_hard_walk_with_neg_inf():
    mdp = tnmdp.models.excursion(120, hard=True, noise=0.1)
    actions, values, _ = fast.backward_argmax_sweep(mdp, uniform_sites(mdp), budget=4096)
    ref = backward_induction(mdp)
    np.testing.assert_array_equal(actions, ref.policy.actions)
    np.testing.assert_array_equal(np.isneginf(values), np.isneginf(ref.values))
    finite = np.isfinite(ref.values)
    np.testing.assert_allclose(values[finite], ref.values[finite], rtol=0, atol=1e-12)


# ---------------------------------------------------------------------------- soft (tau > 0)
from tnmdp import sweep as sweep_module  # noqa: E402
from tnmdp.evaluate import start_values  # noqa: E402
from tnmdp.policy import Policy, SoftPolicy  # noqa: E402
from tnmdp.reference import soft_backward_induction  # noqa: E402

#: exp/log and the order of the action sums differ between the compiled and numpy kernels by a
#: few ulp, amplified by |log pi| <= ~50 here: 1e-12 relative, with 1e-12 absolute for values
#: that cancel to about 0.
SOFT_TOL = dict(rtol=1e-12, atol=1e-12)


def reference_policy(mdp, seed, zeros=False):
    """A random full-support reference (or one with zeros, but never a zero row)."""
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.ones(mdp.n_actions), size=(mdp.horizon, mdp.n_states))
    if zeros:
        probs[rng.random(probs.shape) < 0.2] = 0.0
        probs[..., 0] += probs.sum(axis=2) == 0
        probs /= probs.sum(axis=2, keepdims=True)
    return Policy.from_array(probs)


def numpy_soft(mdp, tau, reference, history=None):
    """The numpy closed-form soft backward sweep (compiled kernels switched off)."""
    return sweep_module._backward_closed_form_sweep(
        mdp, uniform_sites(mdp), history, tau, reference, "numpy", keep_sites=False)


def assert_values_close(actual, expected):
    np.testing.assert_array_equal(np.isneginf(actual), np.isneginf(expected))
    finite = np.isfinite(expected)
    np.testing.assert_allclose(actual[finite], expected[finite], **SOFT_TOL)


def check_soft(mdp, tau, reference, budget=None):
    store, plain, history = fast.backward_soft_sweep(mdp, tau, reference, budget=budget)
    np_store, np_plain, np_v0 = numpy_soft(mdp, tau, reference)
    value, v0, policy = soft_backward_induction(
        mdp, tau, None if reference is None else np.asarray(reference))
    assert history is None
    for t in range(mdp.horizon + 1):
        assert_values_close(store[t], np_store[t])
    assert_values_close(store[0], v0)
    assert_values_close(plain, np_plain)
    backups = fast.SoftBackup(mdp, tau, reference)
    sites = np.stack([backups.site(t, store[t + 1]) for t in range(mdp.horizon)])
    np.testing.assert_allclose(sites, policy, **SOFT_TOL)
    np.testing.assert_allclose(np.asarray(SoftPolicy(mdp, store, tau, reference)), policy,
                               **SOFT_TOL)  # the numpy site computation
    compiled_sites = SoftPolicy(mdp, store, tau, reference, site=backups.site)
    np.testing.assert_allclose(np.asarray(compiled_sites), policy, **SOFT_TOL)
    # E[G | s0] of the soft policy, by plain policy evaluation
    assert_values_close(plain, start_values(mdp, Policy.from_array(policy)))
    return store


@pytest.mark.parametrize(*pairwise(reward_form=FORMS, sparse=SPARSE, stationary=STATIONARY,
                                  discount=[1.0, 0.75], reference=["uniform", "random", "zeros"]))
def test_soft_sweep_matches_numpy_and_reference(reward_form, sparse, stationary, discount,
                                                reference):
    mdp = dyadic_mdp(7, sparse=sparse, stationary=stationary, reward_form=reward_form,
                     discount=discount)
    ref = {"uniform": None, "random": reference_policy(mdp, 1),
           "zeros": reference_policy(mdp, 2, zeros=True)}[reference]
    for budget in (None, 300):  # all soft values kept, or sqrt(T) checkpoints
        check_soft(mdp, 0.7, ref, budget=budget)


@pytest.mark.parametrize("n_actions", [2, 3])
@pytest.mark.parametrize("sparse", [True, False], ids=["csr", "dense"])
def test_soft_sweep_dead_states_and_temperatures(sparse, n_actions):
    mdp = dyadic_mdp(3, n_actions=n_actions, sparse=sparse, reward_form="arrival")
    terminal = mdp.terminal_rewards.copy()
    terminal[1::2] = -np.inf  # many states cannot avoid -inf: V = -inf, pi = pi0 there
    P = mdp.transition_matrix(0)
    P = P if sp.issparse(P) else P.reshape(mdp.n_states, n_actions, mdp.n_states)
    mdp = tnmdp.FiniteMDP(P, mdp.rewards, mdp.horizon, 0, terminal_rewards=terminal)
    for tau in (1.0, 0.3, 5.0):
        store = check_soft(mdp, tau, None)
        assert np.isneginf(store[0]).any()


def test_soft_history_matches_numpy():
    mdp = dyadic_mdp(5, reward_form="full", discount=0.9, neg_inf=False)
    ref = reference_policy(mdp, 4)
    expected = []
    numpy_soft(mdp, 0.5, ref, history=expected)
    got = []
    assert select(mdp) == "numpy"  # too small for "auto"; forced below
    sweep_module._backward_closed_form_sweep(mdp, uniform_sites(mdp), got, 0.5, ref, "numba",
                                             keep_sites=False)
    np.testing.assert_allclose(got, expected, **SOFT_TOL)


@pytest.mark.parametrize("case", ["excursion", "noisy-reference", "random-sparse"])
def test_soft_solve_takes_compiled_path(case):
    """Problems large enough for the compiled path: solve and SoftPolicy sites against the
    numpy path and soft backward induction."""
    if case == "random-sparse":  # T S A = 132,000 >= MIN_WORK, ~4 entries per row
        mdp = random_mdp(11, n_states=100, n_actions=3, horizon=440, sparse=True,
                         density=0.04, reward_form="sa", discount=0.99)
        ref = None
    else:
        mdp = tnmdp.models.excursion(COMPILED_WALK, hard=True,
                                     noise=0.1 if case != "excursion" else 0.0)
        ref = reference_policy(mdp, 9) if case == "noisy-reference" else None
    assert worthwhile(mdp)
    assert select(mdp) == "numba"
    sol = tnmdp.solve(mdp, temperature=1.0, reference_policy=ref)
    slow = tnmdp.solve(mdp, temperature=1.0, reference_policy=ref, backend="numpy")
    value, v0, policy = soft_backward_induction(mdp, 1.0, None if ref is None else np.asarray(ref))
    assert sol.soft_value == pytest.approx(slow.soft_value, rel=1e-12, abs=1e-12)
    assert sol.soft_value == pytest.approx(value, rel=1e-12, abs=1e-12)
    assert_values_close(sol.values, slow.values)
    assert_values_close(sol.policy.values[0], v0)
    np.testing.assert_allclose(np.asarray(sol.policy), policy, **SOFT_TOL)
    np.testing.assert_allclose(np.asarray(sol.policy), np.asarray(slow.policy), **SOFT_TOL)
    np.testing.assert_allclose(sol.history, slow.history, **SOFT_TOL)


def test_soft_solution_is_small():
    """The Solution of a T = 800 soft excursion holds little beyond its soft values, kept at
    ``sqrt(T)`` checkpoints (all ``T + 1`` rows would exceed the compiled sweep's budget)."""
    import gc
    import tracemalloc

    mdp = tnmdp.models.excursion(800, hard=True)
    T, S = mdp.horizon, mdp.n_states
    assert (T + 1) * S * 8 > soft_sweep.SOFT_VALUES_BUDGET
    tnmdp.solve(mdp, temperature=1.0)  # compile and warm caches outside the measurement
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        sol = tnmdp.solve(mdp, temperature=1.0)
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert isinstance(sol.policy, SoftPolicy)
    # a checkpoint every isqrt(T) + 1 sites: at most isqrt(T) + 1 rows of S doubles (29 here);
    # the bound allows twice that, against T + 1 = 801 rows kept whole
    assert 0 < sol.policy.nbytes < 2 * (np.sqrt(T) + 1) * S * 8
    assert held < 2 * sol.policy.nbytes


def test_exp_log_rows_match_libm():
    """The vectorised exp / log of the two-action soft maximum, against numpy, to a few ulp."""
    rng = np.random.default_rng(0)
    d = np.concatenate([-rng.random(20000) * 700, -rng.random(20000) * 2, -rng.random(2000) * 1e-8,
                        [0.0, -5e-324, -1e-300, -0.3465735902799726, -36.7, -700.0]])
    n = d.size
    e, log_total, inverse = np.empty(n), np.empty(n), np.empty(n)
    exp_log_rows(d, e, log_total, inverse, n)
    np.testing.assert_allclose(e, np.exp(d), rtol=4e-16, atol=0)
    total = 1.0 + np.exp(d)
    np.testing.assert_allclose(log_total, np.log(total), rtol=1e-14, atol=1e-300)
    np.testing.assert_array_equal(inverse, 1.0 / (1.0 + e))
    assert e[-6] == 1.0 and log_total[-6] == np.log(2.0) and inverse[-6] == 0.5


def test_exp_log_rows_over_every_binade_of_its_domain():
    """Every binade of ``[-700, 0]`` (``|d|`` from the smallest subnormal 2^-1074 to 700), 64
    draws each, and both neighbours of the binade edges: exp within 1 ulp of libm's, log within
    2 ulp (the kernel is fdlibm's, kept because it vectorises: ~3x libm's scalar calls here)."""
    rng = np.random.default_rng(1)
    exponents = np.arange(-1074, 10)
    mags = (2.0 ** exponents[:, None]) * (1.0 + rng.random((exponents.size, 64)))
    edges = 2.0 ** exponents
    mags = np.concatenate([mags.ravel(), edges, np.nextafter(edges, 0), np.nextafter(edges, 1)])
    d = -mags[(mags <= 700.0) & (mags > 0)]
    n = d.size
    e, log_total, inverse = np.empty(n), np.empty(n), np.empty(n)
    exp_log_rows(d, e, log_total, inverse, n)
    want = np.exp(d)
    assert (np.abs(e - want) <= np.spacing(want)).all()
    total = 1.0 + e
    assert (np.abs(log_total - np.log(total)) <= 2 * np.spacing(np.log(total)) + 0.0).all()
    np.testing.assert_array_equal(inverse, 1.0 / total)


@pytest.mark.parametrize("sparse", [True, False], ids=["csr", "dense"])
def test_two_action_soft_maximum_over_the_double_range(sparse):
    """Action-value gaps from 1e-300 to 1e300 (and 0, -inf): the compiled two-action soft
    maximum (fdlibm inside [-700, 0], libm outside) against the numpy soft backup."""
    S = 128
    gaps = np.concatenate([[0.0], np.logspace(-300, 300, S - 3), [np.inf, -np.inf]])
    P = np.zeros((S, 2, S))
    P[np.arange(S), :, np.arange(S)] = 1.0  # stay: Q(s, a) = r(s, a) + V(s)
    R = np.stack([np.zeros(S), -gaps], axis=1)
    R[R == np.inf] = 0.0
    R[-1] = [-np.inf, -np.inf]  # a dead state
    mdp = tnmdp.FiniteMDP(sp.csr_matrix(P.reshape(2 * S, S)) if sparse else P, R, 1, 0)
    backups = fast.SoftBackup(mdp, 1.0)
    got = backups.site(0, np.zeros(S))
    want = np.exp(kernels.soft_backup(kernels.backup(mdp, 0, np.zeros(S)),
                                      np.log(np.full((1, 2), 0.5)), 1.0)[0])
    np.testing.assert_allclose(got, want, rtol=1e-15, atol=0)  # a few ulp: 1/(1+e) vs exp(z - V)
    soft = backups.step(0, np.zeros(S))
    _, want_v = kernels.soft_backup(kernels.backup(mdp, 0, np.zeros(S)),
                                    np.log(np.full((1, 2), 0.5)), 1.0)
    np.testing.assert_array_equal(np.isneginf(soft), np.isneginf(want_v))
    finite = np.isfinite(want_v)
    np.testing.assert_allclose(soft[finite], want_v[finite], rtol=1e-15, atol=1e-300)


@pytest.mark.parametrize("tau", [1.0, 0.01])
def test_soft_sweep_far_below_exp_floor(tau):
    """Action gaps beyond ``-_EXP_FLOOR`` (exp subnormal or 0) take libm's exp, as numpy."""
    mdp = dyadic_mdp(4, n_actions=2, reward_form="sa")
    mdp = tnmdp.FiniteMDP(mdp.transition_matrix(0), mdp.rewards * 371.0, mdp.horizon, 0,
                          terminal_rewards=mdp.terminal_rewards)
    check_soft(mdp, tau, None)


# ----------------------------------------------------------- soft sweep: rows that cannot be live
def banded_mdp(seed, n_states=40, n_actions=2, horizon=12, *, bandwidth=2, stationary=True,
               reward_form="arrival", discount=1.0, live=(18, 22), dead_site=None):
    """A random walk-like MDP whose moves go at most ``bandwidth`` states, with ``-inf`` rewards
    and terminal values finite only on ``live`` (so that most states are dead at most sites);
    ``dead_site`` (``reward_form="time"``) makes every arrival at that site ``-inf``."""
    rng = np.random.default_rng(seed)
    S, A, T = n_states, n_actions, horizon

    def kernel():
        P = np.zeros((S, A, S))
        for s in range(S):
            for a in range(A):
                targets = np.clip(s + rng.integers(-bandwidth, bandwidth + 1, size=4), 0, S - 1)
                np.add.at(P[s, a], targets, 0.25)
        return sp.csr_matrix(P.reshape(S * A, S))

    shape = {"sa": (S, A), "arrival": (1, 1, S), "time": (T, 1, 1, S)}[reward_form]
    rewards = rng.integers(-2, 3, size=shape).astype(float)
    rewards[rng.random(shape) < 0.1] = -np.inf
    if dead_site is not None:
        rewards[dead_site] = -np.inf
    terminal = np.full(S, -np.inf)
    terminal[live[0]:live[1]] = rng.integers(-2, 3, size=live[1] - live[0])
    transitions = kernel() if stationary else [kernel() for _ in range(T)]
    return tnmdp.FiniteMDP(transitions, rewards, T, 0, terminal_rewards=terminal,
                           discount=discount)


def soft_outputs(mdp, tau, reference, budget=None, band_factor=soft_sweep.BAND_FACTOR):
    """Every soft value, the plain values and every policy site of the compiled sweep
    (``band_factor=inf``: the band skip switched off, every row formed)."""
    store, plain, _ = fast.backward_soft_sweep(mdp, tau, reference, budget=budget,
                                               band_factor=band_factor)
    values = np.stack([store[t] for t in range(mdp.horizon + 1)])
    backups = fast.SoftBackup(mdp, tau, reference, band_factor=band_factor)
    sites = np.stack([backups.site(t, values[t + 1]) for t in range(mdp.horizon)])
    steps = np.stack([backups.step(t, values[t + 1]) for t in range(mdp.horizon)])
    return values, plain, sites, steps


def assert_band_is_exact(mdp, tau, reference, budget=None):
    """The band skip is active, changes no bit, and matches numpy and the reference."""
    band = fast.SoftBackup(mdp, tau, reference).arguments(0)[0][-1]
    assert 0 <= band and band * soft_sweep.BAND_FACTOR < mdp.n_states
    got = soft_outputs(mdp, tau, reference, budget)
    expected = soft_outputs(mdp, tau, reference, budget, band_factor=np.inf)
    assert fast.SoftBackup(mdp, tau, reference, band_factor=np.inf).arguments(0)[0][-1] == -1
    for name, a, b in zip(["values", "plain", "sites", "steps"], got, expected):
        assert a.tobytes() == b.tobytes(), name
    values, plain, sites, steps = got
    np.testing.assert_array_equal(steps, values[:-1])
    check_soft(mdp, tau, reference, budget=budget)
    return values, sites


def test_operator_bandwidth():
    S, A = 30, 3
    P = sp.random(S * A, S, density=0.1, random_state=4, format="csr")
    rows, cols = P.nonzero()
    assert Operator(P).bandwidth == np.abs(cols - rows // A).max()
    band = sp.diags([np.ones(S * A)] * 3, [-1, 0, 1], shape=(S * A, S), format="csr")
    assert Operator(band).bandwidth == np.abs(band.nonzero()[1] - band.nonzero()[0] // A).max()
    assert Operator(sp.identity(S, format="csr")).bandwidth == 0
    stored_zero = sp.csr_matrix((np.array([0.5, 0.0]), np.array([0, 1]), np.array([0, 2])),
                                shape=(1, 2))  # never skipped: 0 * -inf is nan there
    assert Operator(stored_zero).bandwidth == -1
    assert Operator(P, transpose=True).bandwidth == -1
    assert Operator(P.toarray()).bandwidth == -1


@pytest.mark.parametrize(*pairwise(n_actions=[2, 3], reward_form=["sa", "arrival", "time"],
                                  stationary=STATIONARY, discount=[1.0, 0.75],
                                  reference=["uniform", "random", "zeros"]))
def test_soft_band_skip_is_exact(n_actions, reward_form, stationary, discount, reference):
    mdp = banded_mdp(5, n_actions=n_actions, stationary=stationary, reward_form=reward_form,
                     discount=discount)
    ref = {"uniform": None, "random": reference_policy(mdp, 1),
           "zeros": reference_policy(mdp, 2, zeros=True)}[reference]
    for budget in (None, 300):
        values, _ = assert_band_is_exact(mdp, 0.7, ref, budget=budget)
        assert np.isneginf(values).mean() > 0.3  # the skip had rows to skip


def test_soft_band_skip_empty_live_range():
    """At site 6 every arrival is -inf: from there down every state is dead, pi = pi0."""
    mdp = banded_mdp(12, n_actions=3, reward_form="time", dead_site=6, live=(12, 28))
    ref = reference_policy(mdp, 3, zeros=True)
    values, sites = assert_band_is_exact(mdp, 1.0, ref)
    assert np.isfinite(values[7]).any()
    assert np.isneginf(values[:7]).all()
    with np.errstate(divide="ignore"):  # pi0 as the soft backup holds it: exp(log pi0)
        pi0 = np.exp(np.log(np.stack([ref.site(t) for t in range(7)])))
    np.testing.assert_array_equal(sites[:7], pi0)


@pytest.mark.parametrize("noise", [0.0, 0.2])
@pytest.mark.parametrize("walk", ["excursion", "bridge", "meander"])
def test_soft_band_skip_on_hard_walks(walk, noise):
    mdp = getattr(tnmdp.models, walk)(40, hard=True, noise=noise)
    for tau in (1.0, 0.3):
        assert_band_is_exact(mdp, tau, None)
    assert_band_is_exact(mdp, 1.0, reference_policy(mdp, 8), budget=2000)


def test_soft_band_skip_solve_is_unchanged():
    """solve (band skip on) gives the bits of the compiled sweep with every row formed."""
    mdp = tnmdp.models.excursion(COMPILED_WALK, hard=True, noise=0.1)
    ref = reference_policy(mdp, 9)
    sol = tnmdp.solve(mdp, temperature=1.0, reference_policy=ref, backend="numba")
    values, plain, sites, _ = soft_outputs(mdp, 1.0, ref, band_factor=np.inf)
    assert np.asarray(sol.values).tobytes() == plain.tobytes()
    assert np.asarray(sol.policy).tobytes() == sites.tobytes()
    assert sol.soft_value == tnmdp.kernels.weighted_sum(mdp.initial, values[0])



# ------------------------------------------------------- the row-block parallel backward run

from tnmdp.backends.numba import parallel  # noqa: E402
from tnmdp.backends.numba.kernels import backward_run  # noqa: E402


def ragged_sparse(seed, n_states, n_actions):
    """Random ``(S A, S)`` CSR operator with 1-8 random successors per row (float
    probabilities), random ``rbar`` with ``-inf`` entries, and the states ``tied`` (a random
    half) on which the last action is a copy of the first (row and reward: exact ties)."""
    rng = np.random.default_rng(seed)
    S, A = n_states, n_actions
    rows = np.repeat(np.arange(S * A), rng.integers(1, 9, size=S * A))
    cols = rng.integers(0, S, size=rows.size)
    vals = rng.random(rows.size) + 0.1
    vals /= np.bincount(rows, weights=vals, minlength=S * A)[rows]
    tied = rng.random(S) < 0.5
    copied = tied[rows // A] & (rows % A == 0)
    kept = ~(tied[rows // A] & (rows % A == A - 1))
    P = sp.csr_matrix((np.concatenate([vals[kept], vals[copied]]),
                       (np.concatenate([rows[kept], rows[copied] + A - 1]),
                        np.concatenate([cols[kept], cols[copied]]))),
                      shape=(S * A, S))  # duplicate successors summed in the same order
    rbar = rng.normal(size=(S, A))
    rbar[rng.random((S, A)) < 0.05] = -np.inf
    rbar[tied, A - 1] = rbar[tied, 0]
    return P, rbar, tied


def run_kernel(kernel, op, rbar, arrival, gamma, v, T, seed):
    rng = np.random.default_rng(seed)
    S, A = rbar.shape
    reward = rng.normal(size=S)
    dists = rng.random((T, S))
    dists[:, rng.random(S) < 0.1] = 0.0  # zero-probability states skipped by the objective
    actions, history = np.empty((T, S), dtype=np.int8), np.empty(T)
    values = kernel(*op.args, rbar, reward, arrival, gamma, v, dists, rng.random(T),
                    gamma ** np.arange(T), actions, history)
    return values, actions, history


@pytest.fixture(scope="module")
def large_sparse():
    """``(P, rbar, mdp)``: the smallest model on the parallel path of ``solve``,
    ``S A = PARALLEL_MIN_ROWS + 20 = 16,404`` rows (three blocks, the last of 5 states) and
    ``T = 8`` sites (``T S A >= MIN_WORK``: ``"auto"`` compiles), shared by the tests below."""
    S, A = parallel.PARALLEL_MIN_ROWS // 4 + 5, 4
    P, rbar, _ = ragged_sparse(6, S, A)
    T = -(-MIN_WORK // (S * A))
    return P, rbar, tnmdp.FiniteMDP(P, rbar, T, 0, discount=0.9)


# Three blocks of parallel.BLOCK_ROWS rows (whole states), the last of 5 states; the four
# factors covered pairwise
@pytest.mark.parametrize(*pairwise(n_actions=[2, 4], kind={"ell": ELL, "csr": CSR},
                                  gamma=[1.0, 0.75], arrival={"sa": False, "arrival": True}))
def test_parallel_backward_run_is_the_serial_bits(n_actions, kind, gamma, arrival):
    """Row blocks change who sums a row, never how: values, policy and objective history are
    the serial kernel's bits (ties to the lowest action, -inf rewards and values)."""
    A, T = n_actions, 4
    S = 2 * parallel.BLOCK_ROWS // A + 5
    P, rbar, tied = ragged_sparse(1, S, A)
    op = Operator(P, ell_padding=np.inf if kind == ELL else 0.0)
    assert op.kind == kind
    v = np.random.default_rng(2).normal(size=S)
    v[::7] = -np.inf
    want = run_kernel(backward_run, op, rbar, arrival, gamma, v, T, 3)
    got = run_kernel(parallel.backward_run_parallel, op, rbar, arrival, gamma, v, T, 3)
    first = want[1][0]
    assert (first[tied] != A - 1).all() and (first[tied] == 0).any()  # ties: lowest action
    assert (first[~tied] == A - 1).any()  # ... where the last action is chosen otherwise
    for w, g in zip(want, got):
        np.testing.assert_array_equal(g, w)
    assert np.isfinite(want[0]).any() and (arrival or np.isneginf(want[0]).any())


def test_parallel_backward_run_is_the_same_at_any_thread_count(large_sparse):
    """The same bits with 1 thread and with numba's default count (restored afterwards)."""
    numba = pytest.importorskip("numba")
    default = numba.get_num_threads()
    if default < 2:
        pytest.skip("one numba thread: nothing to compare")
    P, rbar, _ = large_sparse
    op, v = Operator(P), np.zeros(P.shape[1])
    many = run_kernel(parallel.backward_run_parallel, op, rbar, False, 1.0, v, 3, 5)
    try:
        numba.set_num_threads(1)
        assert not parallel.pays(Operator(sp.csr_matrix((2**16, 2))))  # one thread: serial
        one = run_kernel(parallel.backward_run_parallel, op, rbar, False, 1.0, v, 3, 5)
    finally:
        numba.set_num_threads(default)
    assert numba.get_num_threads() == default
    for a, b in zip(many, one):
        np.testing.assert_array_equal(a, b)


def test_parallel_threshold():
    """Only large sparse operators go parallel (and only with more than one numba thread)."""
    numba = pytest.importorskip("numba")
    big = sp.csr_matrix((np.ones(2**16), (np.arange(2**16), np.zeros(2**16, int))),
                        shape=(2**16, 4))
    small = big[: parallel.PARALLEL_MIN_ROWS - 4]
    assert parallel.pays(Operator(big)) == (numba.get_num_threads() > 1)
    assert not parallel.pays(Operator(small))
    assert not parallel.pays(Operator(big.toarray()))  # dense: BLAS product, serial kernel


def test_solve_on_large_sparse_model_uses_both_cores_and_is_plain_backward_induction(
        large_sparse):
    """``solve`` on a model over the threshold (S A = 16,404 rows) takes the parallel kernel and
    equals, bit for bit, the numpy backend and a CSR backward induction written here on the raw
    arrays (scipy sums each row from 0.0 in the same order; argmax ties to the first action)."""
    P, rbar, mdp = large_sparse
    S, A, T = mdp.n_states, mdp.n_actions, mdp.horizon
    assert parallel.pays(fast.argmax_sweep.packed(mdp, 0)) or \
        pytest.importorskip("numba").get_num_threads() == 1
    v, want = np.zeros(S), np.empty((T, S), dtype=np.int64)
    for t in range(T - 1, -1, -1):
        q = rbar + 0.9 * (P @ v).reshape(S, A)
        want[t], v = q.argmax(axis=1), q.max(axis=1)
    for backend in ("numba", "numpy"):
        sol = tnmdp.solve(mdp, backend=backend)
        np.testing.assert_array_equal(sol.policy.actions, want)
        np.testing.assert_array_equal(sol.values, v)


def test_parallel_kernel_only_from_the_main_thread_and_not_in_a_fork_child(large_sparse):
    """Off the main thread (numba's workqueue layer aborts on concurrent launches) and in a
    ``fork`` child of a process that started the worker threads (GNU OpenMP terminates it),
    the serial kernel runs instead: the child solves and returns the parent's bits."""
    import multiprocessing
    import threading

    numba = pytest.importorskip("numba")
    if numba.get_num_threads() < 2:
        pytest.skip("one numba thread: the parallel kernel is never chosen")
    mdp = large_sparse[2]
    op = fast.argmax_sweep.packed(mdp, 0)
    assert parallel.pays(op) and select(mdp) == "numba"
    values = tnmdp.solve(mdp).values  # the worker threads are started here
    seen = []
    worker = threading.Thread(target=lambda: seen.append(parallel.pays(op)))
    worker.start()
    worker.join()
    assert seen == [False]

    def child(queue):
        queue.put((parallel.pays(op), tnmdp.solve(mdp).values))

    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    proc = ctx.Process(target=child, args=(queue,))
    proc.start()
    chose, got = queue.get(timeout=30)  # a terminated child never answers
    proc.join(timeout=60)
    assert proc.exitcode == 0 and not chose
    np.testing.assert_array_equal(got, values)
