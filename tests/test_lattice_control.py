"""Controlled lattices: every lattice computation against the flat joint-action MDP or Monte Carlo."""

import itertools

import numpy as np
import pytest

import tnmdp
from tnmdp import lattice
from tnmdp.lattice import control_network as cn
from tnmdp.lattice import mps as mps_ops
from tnmdp.lattice.control import context_index

# Exact contractions against flat ones differ by floating-point summation order only.
EXACT = 1e-10


def random_lattice(seed, L=3, d=2, k=2, T=3, *, per_time=False, discount=1.0):
    rng = np.random.default_rng(seed)
    lead = (T, L) if per_time else (L,)
    kernel = rng.random(lead + (d, d, d, k, d)) ** 2
    kernel /= kernel.sum(axis=-1, keepdims=True)
    reward = rng.normal(size=lead + (d, d, d, k))
    initial = rng.random((L, d))
    initial /= initial.sum(axis=-1, keepdims=True)
    return lattice.LatticeMDP(L, d, k, kernel, reward, T, initial, discount=discount)


def random_policy(seed, mdp):
    rng = np.random.default_rng(seed)
    shape = (mdp.horizon, mdp.n_sites) + (mdp.local_dim,) * 3 + (mdp.n_local_actions,)
    pi = rng.random(shape)
    return pi / pi.sum(axis=-1, keepdims=True)


def digits(index, n, base):
    return [(index // base ** i) % base for i in range(n)]


def site_contexts(x):
    padded = [0] + list(x) + [0]
    return [tuple(padded[i:i + 3]) for i in range(len(x))]


def epidemic_paper():
    return lattice.epidemic(4, 10, beta=0.5, rho=0.1, cost=1.5, p_infected=0.2)


# ---------------------------------------------------------------- model and validation
def loop_flat(mdp):
    """Joint-action arrays built by loops over configurations: P (T, S, A, S), R (T, S, A), p0."""
    L, d, k, T = mdp.n_sites, mdp.local_dim, mdp.n_local_actions, mdp.horizon
    P = np.zeros((T, d ** L, k ** L, d ** L))
    R = np.zeros((T, d ** L, k ** L))
    for t, s, a in itertools.product(range(T), range(d ** L), range(k ** L)):
        ctx, acts = site_contexts(digits(s, L, d)), digits(a, L, k)
        R[t, s, a] = sum(mdp.reward[t, i][ctx[i]][acts[i]] for i in range(L))
        for s2 in range(d ** L):
            x2 = digits(s2, L, d)
            P[t, s, a, s2] = np.prod([mdp.kernel[t, i][ctx[i]][acts[i], x2[i]] for i in range(L)])
    p0 = np.array([np.prod([mdp.initial[i, x] for i, x in enumerate(digits(s, L, d))])
                   for s in range(d ** L)])
    return P, R, p0


def test_to_flat_matches_loops_over_configurations():
    mdp = random_lattice(0, L=3, d=2, k=2, T=2, per_time=True, discount=0.9)
    flat = mdp.to_flat()
    assert (flat.n_states, flat.n_actions, flat.discount) == (8, 8, 0.9)
    P, R, p0 = loop_flat(mdp)
    oracle = tnmdp.FiniteMDP(P, R[..., None], 2, p0, discount=0.9)
    rng = np.random.default_rng(0)
    for _ in range(3):   # arbitrary joint policies probe every (s, a)
        joint = rng.random((2, 8, 8))
        joint /= joint.sum(axis=-1, keepdims=True)
        assert tnmdp.evaluate(flat, joint) == pytest.approx(tnmdp.evaluate(oracle, joint), rel=1e-13)
        np.testing.assert_allclose(tnmdp.marginals(flat, joint), tnmdp.marginals(oracle, joint),
                                   atol=1e-15)
    assert tnmdp.solve(flat).expected_return == pytest.approx(
        tnmdp.solve(oracle).expected_return, rel=1e-13)


def test_policy_to_flat_matches_loops():
    mdp = random_lattice(1, L=3, k=3, T=2)
    pi = random_policy(1, mdp)
    joint = lattice.policy_to_flat(mdp, pi)
    for t, s, a in itertools.product(range(2), range(8), range(27)):
        ctx, acts = site_contexts(digits(s, 3, 2)), digits(a, 3, 3)
        assert joint[t, s, a] == pytest.approx(np.prod([pi[t, i][ctx[i]][acts[i]]
                                                        for i in range(3)]), rel=1e-13)


def test_to_flat_initial_is_the_product():
    mdp = random_lattice(2, L=3)
    flat = mdp.to_flat()
    for s in range(8):
        x = digits(s, 3, 2)
        assert flat.initial[s] == pytest.approx(np.prod([mdp.initial[i, x[i]] for i in range(3)]))


def test_context_index_reads_missing_neighbours_as_zero():
    ctx = context_index(3, 2)
    assert ctx[0b111].tolist() == [[0, 1, 1], [1, 1, 1], [1, 1, 0]]
    assert ctx[0b001].tolist() == [[0, 1, 0], [1, 0, 0], [0, 0, 0]]   # x = (1, 0, 0)


@pytest.mark.parametrize("change, match", [
    (lambda kw: kw.update(kernel=kw["kernel"] * 1.01), r"kernel\[.*\] sums to"),
    (lambda kw: kw.update(kernel=kw["kernel"] - 0.6), r"kernel\[.*\] is .*must be >= 0"),
    (lambda kw: kw.update(kernel=kw["kernel"][..., :1]), r"kernel has shape .* last axes"),
    (lambda kw: kw.update(kernel=np.concatenate([kw["kernel"], kw["kernel"][:2]])),
     r"kernel has shape .*first axis \(5\) must equal n_sites \(3\)"),
    (lambda kw: kw["reward"].__setitem__((1, 0, 1, 0, 1), np.nan), r"reward\[1, 0, 1, 0, 1\] is nan"),
    (lambda kw: kw["reward"].__setitem__((0, 0, 0, 0, 0), np.inf), r"reward\[0, 0, 0, 0, 0\] is inf"),
    (lambda kw: kw.update(initial=np.ones((3, 2))), r"initial\[0\] sums to 2"),
    (lambda kw: kw.update(initial=np.ones((2, 2)) / 2), r"initial must have shape \(n_sites"),
    (lambda kw: kw.update(discount=1.5), r"discount must be a number in \[0, 1\]"),
    (lambda kw: kw.update(horizon=0), r"horizon must be >= 1"),
])
def test_lattice_mdp_validation(change, match):
    mdp = random_lattice(3)
    kw = dict(n_sites=3, local_dim=2, n_local_actions=2, kernel=np.array(mdp.kernel[0]),
              reward=np.array(mdp.reward[0]), horizon=3, initial=np.array(mdp.initial))
    change(kw)
    with pytest.raises(ValueError, match=match):
        lattice.LatticeMDP(**kw)


def test_lattice_mdp_copies_and_freezes_its_arrays():
    mdp = random_lattice(4)
    kernel = np.array(mdp.kernel[0])
    copy = lattice.LatticeMDP(3, 2, 2, kernel, np.zeros((2, 2, 2, 2)), 3, mdp.initial)
    before = copy.kernel.copy()
    kernel[:] = 0.5
    np.testing.assert_array_equal(copy.kernel, before)
    with pytest.raises(ValueError, match="read-only"):
        copy.kernel[0, 0, 0, 0, 0, 0, 0] = 1.0


def test_policy_and_flat_size_validation():
    mdp = random_lattice(5)
    bad = random_policy(0, mdp)
    bad[1, 2, 0, 1, 0] = [0.7, 0.7]
    with pytest.raises(ValueError, match=r"policy\[1, 2, 0, 1, 0\] sums to 1.4"):
        lattice.evaluate(mdp, bad)
    with pytest.raises(ValueError, match=r"policy has shape \(2, 2, 2\)"):
        lattice.evaluate(mdp, np.ones((2, 2, 2)) / 2)
    with pytest.raises(ValueError, match="to_flat: d\\^L \\* k\\^L = 262144 exceeds"):
        lattice.epidemic(9, 2, beta=0.5, rho=0.1, cost=1.0, p_infected=0.1).to_flat()
    with pytest.raises(ValueError, match="max_bond must be >= 1"):
        lattice.evaluate(mdp, bad * 0 + 0.5, max_bond=0)


def test_model_factories_validate_and_follow_their_rules():
    with pytest.raises(ValueError, match=r"beta must be a probability in \[0, 1\], got 1.5"):
        lattice.epidemic(3, 2, beta=1.5, rho=0.1, cost=1.0, p_infected=0.1)
    with pytest.raises(ValueError, match="cost must be a finite number >= 0"):
        lattice.epidemic(3, 2, beta=0.5, rho=0.1, cost=-1.0, p_infected=0.1)
    with pytest.raises(ValueError, match="fail_neighbour must be a probability"):
        lattice.sysadmin(3, 2, fail_neighbour=2)
    beta, rho, cost = 0.3, 0.2, 1.7
    K = lattice.epidemic(3, 2, beta=beta, rho=rho, cost=cost, p_infected=0.1).kernel[0, 1]
    assert K[1, 0, 1, 0, 1] == pytest.approx(1 - (1 - beta) ** 2)   # two infected neighbours
    assert K[0, 0, 1, 0, 1] == pytest.approx(beta)
    assert K[1, 0, 1, 1, 0] == 1.0                                   # protected
    assert K[0, 1, 0, 0, 0] == pytest.approx(rho) and K[0, 1, 1, 1, 0] == 1.0
    R = lattice.epidemic(3, 2, beta=beta, rho=rho, cost=cost, p_infected=0.1).reward[0, 0]
    assert R[0, 1, 0, 1] == pytest.approx(-1 - cost) and R[0, 0, 0, 0] == 0.0
    S = lattice.sysadmin(3, 2, fail_base=0.1, fail_neighbour=0.5, p_recover=0.05)
    assert S.kernel[0, 1][1, 0, 1, 0, 1] == pytest.approx(1 - 0.9 * 0.25)
    assert S.kernel[0, 1][0, 1, 0, 0, 0] == pytest.approx(0.05)
    assert S.kernel[0, 1][1, 1, 1, 1, 0] == 1.0
    assert S.reward[0, 1][1, 0, 1, 0] == 1.0 and S.reward[0, 1][0, 0, 0, 1] == 0.0
    S = lattice.sysadmin(3, 2, reboot_cost=0.4)
    assert S.reward[0, 1][1, 1, 0, 1] == pytest.approx(-0.4) and S.reward[0, 1][0, 0, 0, 0] == 1.0
    with pytest.raises(ValueError, match="reboot_cost must be a finite number >= 0, got inf"):
        lattice.sysadmin(3, 2, reboot_cost=np.inf)


# ---------------------------------------------------------------- network pieces
def test_transfer_mpo_equals_the_flat_joint_transition():
    mdp = random_lattice(6, L=4)
    pi = random_policy(6, mdp)
    P, _, _ = loop_flat(lattice.LatticeMDP(4, 2, 2, mdp.kernel[0], mdp.reward[0], 1, mdp.initial))
    want = np.einsum("sa,sat->ts", lattice.policy_to_flat(mdp, pi)[0], P[0])
    got = mps_ops.mpo_to_dense(cn.transfer_mpo(cn.transfer_tensors(mdp.kernel[0], pi[0])))
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-15)


def test_reward_mps_is_the_sum_of_local_terms():
    rng = np.random.default_rng(7)
    for L in (1, 2, 5):
        rbar = rng.normal(size=(L, 3, 3, 3))
        ctx = context_index(L, 3)
        want = sum(rbar[i][ctx[:, i, 0], ctx[:, i, 1], ctx[:, i, 2]] for i in range(L))
        np.testing.assert_allclose(mps_ops.mps_to_dense(cn.reward_mps(rbar)), want, atol=1e-13)


def test_row_environments_contract_to_the_same_number_everywhere():
    mdp = random_lattice(8, L=5)
    pi = random_policy(8, mdp)
    rng = np.random.default_rng(8)
    M = cn.transfer_tensors(mdp.kernel[0], pi[0])
    p = [rng.random((1 if i == 0 else 3, 2, 1 if i == 4 else 3)) for i in range(5)]
    V = [rng.normal(size=(1 if i == 0 else 2, 2, 1 if i == 4 else 2)) for i in range(5)]
    dense = mps_ops.mps_to_dense(V) @ mps_ops.mpo_to_dense(cn.transfer_mpo(M)) \
        @ mps_ops.mps_to_dense(p)
    rights = cn.right_environments(p, M, V)
    left = cn.initial_left(2)
    for i in range(5):
        assert np.sum(left * rights[i]) == pytest.approx(dense, rel=1e-12)
        hole = cn.hole(left, p[i], V[i], rights[i + 1])
        assert np.sum(hole * M[i]) == pytest.approx(dense, rel=1e-12)
        left = cn.left_environment(left, p[i], M[i], V[i])


# ---------------------------------------------------------------- evaluate, marginals, sample
@pytest.mark.parametrize("L, k, per_time, discount", [(1, 2, False, 1.0), (2, 3, True, 0.8),
                                                       (4, 2, True, 1.0), (6, 2, False, 0.95),
                                                       (5, 2, False, 1.0)])
def test_evaluate_matches_flat(L, k, per_time, discount):
    mdp = random_lattice(10 + L, L=L, k=k, T=4, per_time=per_time, discount=discount)
    pi = random_policy(L, mdp)
    flat = mdp.to_flat()
    want = tnmdp.evaluate(flat, lattice.policy_to_flat(mdp, pi))
    got = lattice.evaluate(mdp, pi, max_bond=2 ** (L // 2 + 1))
    assert got.value == pytest.approx(want, rel=EXACT)
    assert got.truncation_error < 1e-20


@pytest.mark.slow
def test_evaluate_matches_flat_at_eight_sites():
    mdp = random_lattice(18, L=8, T=3)
    pi = random_policy(18, mdp)
    want = tnmdp.evaluate(mdp.to_flat(), lattice.policy_to_flat(mdp, pi))
    assert lattice.evaluate(mdp, pi, max_bond=16).value == pytest.approx(want, rel=EXACT)


def test_truncated_evaluation_converges_in_bond_dimension():
    mdp = random_lattice(20, L=12, T=6)
    pi = random_policy(20, mdp)
    exact = lattice.evaluate(mdp, pi, max_bond=64)
    assert exact.truncation_error < 1e-20
    results = [lattice.evaluate(mdp, pi, max_bond=chi) for chi in (1, 2, 4, 8)]
    errors = [abs(r.value - exact.value) for r in results]
    assert results[0].truncation_error > 0
    assert errors[-1] < errors[0]
    assert all(r.max_bond_used <= chi for r, chi in zip(results, (1, 2, 4, 8)))


def test_marginals_match_flat():
    mdp = random_lattice(21, L=4, T=3, per_time=True)
    pi = random_policy(21, mdp)
    flat = mdp.to_flat()
    joint = lattice.policy_to_flat(mdp, pi)
    flat_states = tnmdp.marginals(flat, joint)               # (T+1, S)
    states, actions, contexts = lattice.marginals(mdp, pi, contexts=True)
    x = np.array([digits(s, 4, 2) for s in range(16)])
    ctx = context_index(4, 2)
    for i, c in itertools.product(range(4), itertools.product(range(2), repeat=3)):
        mask = np.all(ctx[:, i] == c, axis=1)
        np.testing.assert_allclose(contexts[:, i][(slice(None),) + c],
                                   flat_states[:, mask].sum(axis=1), atol=1e-13)
    a = np.array([digits(j, 4, 2) for j in range(16)])
    for i in range(4):
        for v in range(2):
            np.testing.assert_allclose(states[:, i, v], flat_states[:, x[:, i] == v].sum(axis=1),
                                       atol=1e-13)
            joint_act = np.einsum("ts,tsa->ta", flat_states[:-1], joint)
            np.testing.assert_allclose(actions[:, i, v], joint_act[:, a[:, i] == v].sum(axis=1),
                                       atol=1e-13)


def test_sample_agrees_with_exact_marginals_and_return():
    mdp = random_lattice(22, L=5, T=4, discount=0.9)
    pi = random_policy(22, mdp)
    n = 20000
    traj = lattice.sample_controlled(mdp, pi, n, rng=22)
    assert traj.states.shape == (n, 5, 5) and traj.actions.shape == (n, 4, 5)
    assert traj.states.dtype == np.int8
    value = lattice.evaluate(mdp, pi).value
    se = traj.returns.std() / np.sqrt(n)
    assert abs(traj.returns.mean() - value) < 5 * se       # 5 standard errors
    states, actions = lattice.marginals(mdp, pi)
    freq = (traj.states == 1).mean(axis=0)
    se = np.sqrt(states[..., 1] * states[..., 0] / n) + 1e-12
    assert np.all(np.abs(freq - states[..., 1]) < 5 * se + 1e-12)
    freq = (traj.actions == 1).mean(axis=0)
    se = np.sqrt(actions[..., 1] * actions[..., 0] / n) + 1e-12
    assert np.all(np.abs(freq - actions[..., 1]) < 5 * se + 1e-12)


def test_sample_validates_its_arguments():
    mdp = random_lattice(24)
    pi = random_policy(24, mdp)
    with pytest.raises(ValueError, match="n must be >= 1, got 0"):
        lattice.sample_controlled(mdp, pi, 0)
    with pytest.raises(TypeError, match="rng must be None, an int or a numpy.random.Generator"):
        lattice.sample_controlled(mdp, pi, 5, rng="seed")
    with pytest.raises(TypeError, match="mdp must be a LatticeMDP, not FiniteMDP"):
        lattice.sample_controlled(mdp.to_flat(), pi, 5)
    a = lattice.sample_controlled(mdp, pi, 50, rng=3)
    b = lattice.sample_controlled(mdp, pi, 50, rng=np.random.default_rng(3))
    np.testing.assert_array_equal(a.states, b.states)


def test_heuristics_evaluate_as_flat():
    mdp = lattice.sysadmin(5, 4, p_failed=0.3)
    flat = mdp.to_flat()
    for rule in lattice.heuristic_policies().values():
        want = tnmdp.evaluate(flat, lattice.policy_to_flat(mdp, rule))
        assert lattice.evaluate(mdp, rule).value == pytest.approx(want, rel=EXACT)


def test_forbidden_actions_give_minus_inf_and_are_avoided():
    mdp = random_lattice(23, L=3)
    reward = np.array(mdp.reward[0])
    reward[:, :, 1, :, 1] = -np.inf          # action 1 forbidden wherever x_i = 1
    forbid = lattice.LatticeMDP(3, 2, 2, np.array(mdp.kernel[0]), reward, 3, mdp.initial)
    assert lattice.evaluate(forbid, np.full((2, 2, 2, 2), 0.5)).value == -np.inf
    sol = lattice.solve(forbid, max_bond=16)
    assert np.all(sol.policy[:, :, :, 1, :, 1] == 0)
    want = tnmdp.evaluate(forbid.to_flat(), lattice.policy_to_flat(forbid, sol.policy))
    assert np.isfinite(want) and sol.expected_return == pytest.approx(want, rel=EXACT)


# ---------------------------------------------------------------- solve
def flat_value(mdp, pi, flat=None):
    """Expected return of ``pi`` on the flat joint-action MDP (``flat``: ``mdp.to_flat()``)."""
    flat = mdp.to_flat() if flat is None else flat
    return tnmdp.evaluate(flat, lattice.policy_to_flat(mdp, pi))


@pytest.mark.parametrize("seed", range(3))
def test_sweep_is_monotone_and_reaches_a_local_optimum(seed):
    mdp = random_lattice(30 + seed, L=3, T=3, per_time=True, discount=0.9)
    sol = lattice.solve(mdp, max_bond=16, max_sweeps=20, initial_policy="random", rng=seed)
    scale = np.abs(sol.history).max()
    assert np.all(np.diff(sol.history) >= -1e-12 * scale)      # exact environments: round-off only
    assert sol.success and sol.status == 0
    flat = mdp.to_flat()  # built once for the 73 flat evaluations below
    base = flat_value(mdp, sol.policy, flat)
    assert sol.expected_return == pytest.approx(base, rel=EXACT)
    assert sol.history[-1] == pytest.approx(base, rel=EXACT)
    assert sol.environment_error < 1e-12 * abs(base)
    # no single local decision can be changed for the better (checked on the flat MDP)
    pi = np.array(sol.policy)
    for t, i in itertools.product(range(3), range(3)):
        for ctx in itertools.product(range(2), repeat=3):
            alt = pi.copy()
            alt[t, i][ctx] = 1.0 - alt[t, i][ctx]
            assert flat_value(mdp, alt, flat) <= base + 1e-10 * abs(base)
    # and the class optimum cannot beat the joint-action optimum
    assert base <= tnmdp.solve(flat).expected_return + 1e-10 * abs(base)


def test_sweep_finds_the_joint_optimum_of_the_epidemic():
    mdp = epidemic_paper()
    joint = tnmdp.solve(mdp.to_flat()).expected_return
    assert joint == pytest.approx(-3.3440, abs=5e-5)
    sol = lattice.solve(mdp, max_bond=16)
    assert sol.expected_return == pytest.approx(joint, rel=EXACT)
    assert flat_value(mdp, sol.policy) == pytest.approx(joint, rel=EXACT)
    assert set(np.unique(sol.policy)) <= {0.0, 1.0}
    site = lattice.solve(mdp, max_bond=16, scope="site")
    pi = np.array(site.policy)
    assert np.all(pi == pi[:, :, :1, :, :1])                 # depends on x_i only
    assert site.expected_return < joint - 1.0                # cannot see the neighbours
    assert site.expected_return == pytest.approx(flat_value(mdp, pi), rel=EXACT)


def soft_objective_flat(mdp, pi, tau):
    """``E[G] - tau sum_t gamma^t sum_i E[KL(pi || uniform)]`` from flat marginals."""
    flat = mdp.to_flat()
    joint = lattice.policy_to_flat(mdp, pi)
    occupancy = tnmdp.marginals(flat, joint)
    ctx = context_index(mdp.n_sites, mdp.local_dim)
    k = mdp.n_local_actions
    penalty = 0.0
    for t in range(mdp.horizon):
        for i in range(mdp.n_sites):
            local = pi[t, i][ctx[:, i, 0], ctx[:, i, 1], ctx[:, i, 2]]      # (S, k)
            kl = np.sum(np.where(local > 0, local * np.log(np.where(local > 0, local * k, 1)), 0),
                        axis=1)
            penalty += mdp.discount ** t * occupancy[t] @ kl
    return tnmdp.evaluate(flat, joint) - tau * penalty


def test_soft_sweep_is_monotone_exact_and_tends_to_the_hard_one():
    mdp = random_lattice(40, L=3, T=4, discount=0.9)
    hard = lattice.solve(mdp, max_bond=16, max_sweeps=30)
    gaps = []
    for tau in (1.0, 0.1, 0.01, 0.001):
        soft = lattice.solve(mdp, max_bond=16, max_sweeps=30, temperature=tau)
        scale = np.abs(soft.history).max()
        assert np.all(np.diff(soft.history) >= -1e-12 * scale)
        assert soft.soft_value == pytest.approx(soft_objective_flat(mdp, np.array(soft.policy), tau),
                                                rel=1e-9)
        gaps.append(abs(soft.expected_return - hard.expected_return))
    assert gaps[-1] < 1e-3 * abs(hard.expected_return) and gaps[-1] <= gaps[0]


def test_solve_options_are_validated():
    mdp = random_lattice(41)
    with pytest.raises(ValueError, match="scope must be 'context' or 'site', got 'global'"):
        lattice.solve(mdp, scope="global")
    with pytest.raises(ValueError, match="temperature must be a finite number >= 0"):
        lattice.solve(mdp, temperature=-1.0)
    with pytest.raises(ValueError, match="initial_policy must be 'uniform', 'random' or an array"):
        lattice.solve(mdp, initial_policy="greedy")
    with pytest.raises(TypeError, match="mdp must be a LatticeMDP"):
        lattice.solve(mdp.to_flat())
    sol = lattice.solve(mdp, max_sweeps=1)
    assert sol.n_sweeps == 1 and sol.status in (0, 1)
    stopped = lattice.solve(mdp, callback=lambda n, value, policy: True)
    assert stopped.status == 2 and not stopped.success and stopped.n_sweeps == 1
    with pytest.raises(AttributeError):
        sol.status = 0


# ---------------------------------------------------------------- benchmark smoke run
def test_benchmark_flat_part_runs_and_agrees():
    """``benchmarks.lattice_control --part flat --quick``: local optimum = joint optimum."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    pytest.importorskip("benchmarks")
    from benchmarks import lattice_control

    rows = lattice_control.flat((3,), 4)  # three sites: both boundaries and an interior site
    done = [r for r in rows if "ratio" in r]
    assert len(done) == 2 and all(r["ratio"] == pytest.approx(1.0, abs=1e-12) for r in done)
    assert all(r["lattice_value_flat"] == pytest.approx(r["lattice_value"], rel=EXACT)
               for r in done)
