"""tnmdp.distributed on a real LocalCluster (loopback, 2 worker processes, no dashboard).

Every distributed result is compared with what it did not compute: the same model built in one
process and solved by :func:`tnmdp.solve`, and a dense backward induction written here on the
raw arrays.

Starting the cluster and its workers costs ~4 s and every backward step is a round of tasks, so
the tests that use the cluster run with the slow tests (CI runs them); the fast suite keeps the
client-side validation (``tests/test_api.py`` checks that ``import tnmdp`` loads no Dask).
"""

import concurrent.futures
import os
import signal
import time

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.special import logsumexp

import tnmdp
from tnmdp.distributed import BlockMDP, BlockPolicy, evaluate, solve, solve_many

distributed = pytest.importorskip("distributed")

S, A, T, GAMMA, TAU = 23, 3, 6, 0.95, 0.7
#: Values agree to rounding: the same kernels in the same order (argmax: the same bits), or the
#: numpy kernels of a small serial solve (soft: a few ulp of values of order 10).
RTOL = 1e-12
#: Policies must agree exactly wherever the best action beats the second by more than this.
GAP = 1e-9


def make_cluster():
    return distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                    host="127.0.0.1", dashboard_address=None,
                                    # its HTTP endpoints (metrics) on a free port, not 8787
                                    scheduler_kwargs={"dashboard_address": "127.0.0.1:0"})


@pytest.fixture(scope="module")
def client():
    with make_cluster() as cluster, distributed.Client(cluster) as client:
        yield client


def raw_model(seed, *, stationary):
    """Dense ``P[t, s, a, s']`` (3 successors per pair), rewards ``r[t, s, a]`` (``-inf`` on
    action 0 of three states), terminal rewards and an initial distribution."""
    rng = np.random.default_rng(seed)
    n_kernels = 1 if stationary else T
    P = np.zeros((n_kernels, S, A, S))
    for k in range(n_kernels):
        for s in range(S):
            for a in range(A):
                succ = rng.choice(S, size=3, replace=False)
                P[k, s, a, succ] = rng.random(3) + 0.1
    P /= P.sum(axis=3, keepdims=True)
    r = rng.normal(size=(n_kernels, S, A))
    r[:, [2, 11, 19], 0] = -np.inf
    terminal = rng.normal(size=S)
    initial = rng.random(S)
    return P, r, terminal, initial / initial.sum()


def finite_mdp(P, r, terminal, initial, gamma=GAMMA):
    mats = [sp.csr_array(Pk.reshape(S * A, S)) for Pk in P]
    if len(mats) == 1:
        return tnmdp.FiniteMDP(mats[0], r[0], T, initial, terminal, discount=gamma)
    return tnmdp.FiniteMDP(mats, r[..., None], T, initial, terminal, discount=gamma)


def block_mdp(P, r, terminal, initial, n_blocks, gamma=GAMMA):
    mats = [sp.csr_array(Pk.reshape(S * A, S)) for Pk in P]

    def block_fn(lo, hi):
        if len(mats) == 1:
            return mats[0][lo * A:hi * A], r[0, lo:hi]
        return [m[lo * A:hi * A] for m in mats], r[:, lo:hi]

    return BlockMDP.from_function(S, A, T, block_fn, n_blocks=n_blocks, initial=initial,
                                  terminal_rewards=terminal, discount=gamma)


def dense_oracle(P, r, terminal, initial, temperature, gamma=GAMMA):
    """Backward induction on the raw arrays: values, policy (T, S, A), Q-gaps, E[G] and J."""
    v = u = terminal
    policy, gaps = np.zeros((T, S, A)), np.zeros((T, S))
    for t in range(T - 1, -1, -1):
        Pt, rt = P[t % len(P)], r[t % len(r)]
        q = rt + gamma * Pt @ v
        top = np.sort(q, axis=1)
        with np.errstate(invalid="ignore"):
            gaps[t] = top[:, -1] - top[:, -2]
        if temperature == 0:
            policy[t, np.arange(S), q.argmax(axis=1)] = 1.0
            v = q.max(axis=1)
            u = v
        else:
            z = q / temperature - np.log(A)
            v = temperature * logsumexp(z, axis=1)
            policy[t] = np.exp(z - v[:, None] / temperature)
            qu = rt + gamma * Pt @ u
            with np.errstate(invalid="ignore"):  # 0 * -inf: a forbidden pair never taken
                u = np.where(policy[t] > 0, policy[t] * qu, 0.0).sum(axis=1)
    return u, policy, gaps, initial @ u, initial @ v


@pytest.mark.slow
@pytest.mark.parametrize("stationary", [True, False], ids=["stationary", "time-dependent"])
@pytest.mark.parametrize("temperature", [0.0, TAU], ids=["hard", "soft"])
@pytest.mark.parametrize("n_blocks", [1, 2, 7])
def test_block_solve_equals_one_process_solve(client, n_blocks, temperature, stationary):
    raw = raw_model(n_blocks + 10 * stationary, stationary=stationary)
    gamma = 1.0 if stationary else GAMMA
    serial = tnmdp.solve(finite_mdp(*raw, gamma), temperature=temperature)
    sol = solve(block_mdp(*raw, n_blocks, gamma), client, temperature=temperature)
    np.testing.assert_allclose(sol.values, serial.values, rtol=RTOL, atol=RTOL)
    assert sol.expected_return == pytest.approx(serial.expected_return, rel=RTOL)
    np.testing.assert_allclose(sol.history, serial.history, rtol=RTOL, atol=RTOL)
    values, policy, gaps, expected, soft = dense_oracle(*raw, temperature, gamma)
    np.testing.assert_allclose(sol.values, values, rtol=1e-10)  # dense sums: other order
    assert sol.expected_return == pytest.approx(expected, rel=1e-10)
    assert isinstance(sol.policy, BlockPolicy) and sol.success
    dense = np.asarray(sol.policy)
    assert dense.shape == (T, S, A)
    np.testing.assert_array_equal(sol.policy[2], dense[2])  # one site, gathered alone
    if temperature == 0:
        assert sol.soft_value is None and sol.policy.deterministic
        clear = gaps > GAP
        assert clear.mean() > 0.9  # the check below covers most state-sites
        np.testing.assert_array_equal(sol.policy.actions[clear],
                                      serial.policy.actions[clear])
        np.testing.assert_array_equal(dense[clear], policy[clear])
    else:
        assert sol.soft_value == pytest.approx(serial.soft_value, rel=RTOL)
        assert sol.soft_value == pytest.approx(soft, rel=1e-10)
        np.testing.assert_allclose(dense, np.asarray(serial.policy), rtol=1e-11, atol=1e-13)
        np.testing.assert_allclose(dense, policy, rtol=1e-10, atol=1e-13)
        assert not sol.policy.deterministic


@pytest.mark.slow
@pytest.mark.parametrize("temperature", [0.0, TAU], ids=["hard", "soft"])
def test_history_equals_one_process_history(client, temperature):
    P, r, terminal, initial = raw_model(4, stationary=False)
    r = np.where(np.isinf(r), -5.0, r)  # finite: every entry of the history is checked
    serial = tnmdp.solve(finite_mdp(P, r, terminal, initial), temperature=temperature)
    sol = solve(block_mdp(P, r, terminal, initial, 3), client, temperature=temperature)
    assert np.isfinite(serial.history).all() and serial.history.shape == (T,)
    np.testing.assert_allclose(sol.history, serial.history, rtol=RTOL, atol=RTOL)


@pytest.mark.slow
def test_evaluate_policies_held_as_blocks_and_local(client):
    raw = raw_model(3, stationary=False)
    mdp, bmdp = finite_mdp(*raw), block_mdp(*raw, 3)
    hard = solve(bmdp, client)
    soft = solve(bmdp, client, temperature=TAU)
    # the argmax policy held on the workers, and gathered
    assert evaluate(bmdp, hard.policy) == pytest.approx(hard.expected_return, rel=RTOL)
    assert tnmdp.evaluate(mdp, hard.policy.gather()) == pytest.approx(hard.expected_return,
                                                                      rel=RTOL)
    # the soft policy, recomputed on the workers from its soft values
    assert evaluate(bmdp, soft.policy) == pytest.approx(soft.expected_return, rel=RTOL)
    # a local stochastic policy, split into the blocks; forbidden pairs get probability 0
    probs = np.random.default_rng(0).random((T, S, A))
    probs[:, [2, 11, 19], 0] = 0.0
    probs /= probs.sum(axis=2, keepdims=True)
    assert evaluate(bmdp, probs, client) == pytest.approx(tnmdp.evaluate(mdp, probs),
                                                          rel=RTOL)
    # a policy taking a forbidden pair has E[G] = -inf
    bad = np.zeros((T, S, A))
    bad[..., 0] = 1.0
    assert evaluate(bmdp, bad, client) == -np.inf == tnmdp.evaluate(mdp, bad)
    other = block_mdp(*raw, 2)
    with pytest.raises(ValueError, match=r"blocks \(\(0, 7\), .*gather it first"):
        evaluate(other, hard.policy)


def _bad_block_mdp(defect):
    """A time-dependent block model whose block holding state 13 has ``defect``."""
    P, r, terminal, initial = raw_model(5, stationary=False)
    mats = [sp.csr_array(Pk.reshape(S * A, S)) for Pk in P]

    def block_fn(lo, hi):
        blocks = [m[lo * A:hi * A].copy() for m in mats]
        rewards = r[:, lo:hi].copy()
        if lo <= 13 < hi:
            row, entry = (13 - lo) * A + 2, blocks[4].indptr[(13 - lo) * A + 2]
            if defect == "sum":
                blocks[4].data[entry] *= 0.5
            elif defect == "negative":
                blocks[4].data[entry] = -0.25
            elif defect == "nan reward":
                rewards[3, 13 - lo, 1] = np.nan
            elif defect == "shape":
                blocks[4] = blocks[4][:-1]
            elif defect == "tuple":
                return blocks
            del row
        return blocks, rewards

    return BlockMDP.from_function(S, A, T, block_fn, n_blocks=4, initial=initial,
                                  terminal_rewards=terminal, discount=GAMMA)


@pytest.mark.slow
@pytest.mark.parametrize("defect, error, match", [
    ("sum", ValueError, r"transitions\[t=4, s=13, a=2\] sums to 0\.\d+, not 1 \(atol=1e-09\) "
                        r"\(from block_fn\(lo=11, hi=17\)\)"),
    ("negative", ValueError, r"transitions\[t=4, s=13, a=2, s'=\d+\] is -0\.25; probabilities"),
    ("nan reward", ValueError, r"rewards\[t=3, s=13, a=1\] is nan; nan and \+inf are not"),
    ("shape", ValueError, r"transitions\[4\] has shape \(17, 23\); the block needs "
                          r"\(\(hi - lo\) \* A, S\) = \(18, 23\)"),
    ("tuple", TypeError, r"block_fn\(lo=11, hi=17\) must return a tuple \(transitions, rewards\)"),
])
def test_worker_side_validation_error_reaches_the_caller(client, defect, error, match):
    with pytest.raises(error, match=match):
        solve(_bad_block_mdp(defect), client)


def test_client_side_validation():
    fn = lambda lo, hi: None  # noqa: E731
    with pytest.raises(ValueError, match=r"n_blocks must be in 1\.\.23, got 24"):
        BlockMDP.from_function(S, A, T, fn, n_blocks=24, initial=0)
    with pytest.raises(TypeError, match="block_fn must be callable, got int"):
        BlockMDP.from_function(S, A, T, 3, n_blocks=2, initial=0)
    with pytest.raises(ValueError, match=r"initial sums to 2, not 1"):
        BlockMDP.from_function(S, A, T, fn, n_blocks=2, initial=np.full(S, 2 / S))
    with pytest.raises(ValueError, match=r"terminal_rewards\[4\] is nan"):
        BlockMDP.from_function(S, A, T, fn, n_blocks=2, initial=0,
                               terminal_rewards=np.where(np.arange(S) == 4, np.nan, 0.0))
    with pytest.raises(ValueError, match=r"discount must be a number in \[0, 1\], got 1\.5"):
        BlockMDP.from_function(S, A, T, fn, n_blocks=2, initial=0, discount=1.5)
    with pytest.raises(TypeError, match="block_mdp must be a tnmdp.distributed.BlockMDP"):
        solve(tnmdp.models.excursion(4))
    bmdp = BlockMDP.from_function(S, A, T, fn, n_blocks=2, initial=0)
    with pytest.raises(ValueError, match=r"temperature must be a finite number >= 0, got -1"):
        solve(bmdp, temperature=-1)
    with pytest.raises(TypeError, match="client must be a distributed.Client, got str"):
        solve(bmdp, "tcp://127.0.0.1:8786")


def _batch(n):
    models = [finite_mdp(*raw_model(seed, stationary=seed % 2 == 0)) for seed in range(n)]
    factories = [lambda seed=seed: finite_mdp(*raw_model(seed, stationary=True))
                 for seed in range(n)]
    return models, factories


def _assert_same_solution(got, want):
    assert type(got.policy) is tnmdp.Policy
    np.testing.assert_array_equal(got.values, want.values)
    np.testing.assert_array_equal(np.asarray(got.policy), np.asarray(want.policy))
    np.testing.assert_array_equal(got.history, want.history)
    assert (got.expected_return, got.soft_value, got.n_sweeps, got.status, got.message) == (
        want.expected_return, want.soft_value, want.n_sweeps, want.status, want.message)


@pytest.mark.slow
@pytest.mark.parametrize("temperature", [0.0, TAU], ids=["hard", "soft"])
def test_solve_many_on_the_cluster_equals_serial(client, temperature):
    models, factories = _batch(20)
    items = models[:10] + factories[10:]
    got = solve_many(items, client=client, temperature=temperature)
    assert len(got) == 20
    for item, sol in zip(items, got):
        mdp = item if isinstance(item, tnmdp.FiniteMDP) else item()
        _assert_same_solution(sol, tnmdp.solve(mdp, temperature=temperature))
        assert sol.mdp is (item if isinstance(item, tnmdp.FiniteMDP) else None)
    np.testing.assert_array_equal(got[0].value_function, tnmdp.solve(
        models[0], temperature=temperature).value_function)


@pytest.mark.slow
def test_solve_many_on_local_processes_equals_serial():
    models, factories = _batch(20)
    items = factories[:10] + models[10:]
    got = tnmdp.solve_many(items, direction="both", max_sweeps=2)
    for item, sol in zip(items, got):
        mdp = item if isinstance(item, tnmdp.FiniteMDP) else item()
        _assert_same_solution(sol, tnmdp.solve(mdp, direction="both", max_sweeps=2))


def test_solve_many_validates_its_arguments():
    mdp = finite_mdp(*raw_model(0, stationary=True))
    with pytest.raises(TypeError, match=r"mdps_or_factories\[1\] must be a FiniteMDP or a "
                                        r"callable returning one, got int"):
        solve_many([mdp, 3])
    with pytest.raises(TypeError, match="unexpected keyword argument 'temprature'"):
        solve_many([mdp], temprature=1.0)
    with pytest.raises(TypeError, match=r"mdps_or_factories\[0\]\(\) returned str, not a"):
        solve_many([lambda: "model"])
    with pytest.raises(ValueError, match="temperature must be a finite number >= 0"):
        solve_many([mdp], temperature=-1.0)


def _kill_model():
    """Long enough (T = 80 steps) that the kill lands mid-sweep on an idle machine."""
    n, k, horizon = 3000, 4, 80
    rng = np.random.default_rng(7)
    cols = rng.integers(0, n, size=(n * 2, k))
    P = sp.csr_array((np.full(n * 2 * k, 1.0 / k), cols.ravel(), np.arange(0, n * 2 * k + 1, k)),
                     shape=(n * 2, n))
    r = rng.normal(size=(n, 2))
    mdp = tnmdp.FiniteMDP(P, r, horizon, 0, discount=0.99)
    bmdp = BlockMDP.from_function(n, 2, horizon, lambda lo, hi: (P[lo * 2:hi * 2], r[lo:hi]),
                                  n_blocks=2, initial=0, discount=0.99)
    return mdp, bmdp


def _finished_steps(dask_scheduler, prefix):
    return sum(1 for key, ts in dask_scheduler.tasks.items()
               if str(key).startswith(prefix) and ts.state == "memory")


@pytest.mark.slow
def test_worker_killed_mid_solve_is_recomputed_not_wrong(client):
    """Last in the module: it kills a worker of the shared cluster (its nanny restarts it)."""
    mdp, bmdp = _kill_model()
    serial = tnmdp.solve(mdp)
    blocks = bmdp.blocks(client)  # built before the sweep starts
    pids = client.run(os.getpid)
    victim = client.who_has(blocks)[blocks[0].key][0]
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        running = pool.submit(solve, bmdp, client)
        deadline = time.monotonic() + 60
        while not client.run_on_scheduler(_finished_steps, prefix="tnmdp-argmax1-") >= 20 \
                and time.monotonic() < deadline:
            time.sleep(0.005)
        was_running = not running.done()
        os.kill(pids[victim], signal.SIGKILL)
        try:
            sol = running.result(timeout=120)
        except distributed.KilledWorker as err:  # Dask gave up: a clear error is acceptable
            assert "tnmdp-" in str(err)
            return
    assert was_running, "the solve ended before the worker was killed"
    assert pids[victim] not in client.run(os.getpid).values()  # the victim is gone
    np.testing.assert_allclose(sol.values, serial.values, rtol=RTOL, atol=RTOL)
    # the policy blocks lost with the worker are recomputed from their lineage
    np.testing.assert_array_equal(sol.policy.actions, serial.policy.actions)
