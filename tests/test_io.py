"""Saving/loading (.npz, no pickle), pickling and deep copies; values at every step; the
policy forms users pass; pydata sparse input. Oracles: the original objects (round trips are
bit-exact), and a dense backward induction on raw arrays for the values."""

import copy
import io
import pickle
import zipfile

import numpy as np
import pytest
import scipy.sparse as sp

import tnmdp
from tnmdp import FiniteMDP, Policy, Solution


def _random_models():
    rng = np.random.default_rng(0)
    S, A, T = 5, 3, 6
    P = rng.dirichlet(np.ones(S), size=(S, A))
    yield "dense", FiniteMDP(P, rng.normal(size=(S, A)), T, rng.dirichlet(np.ones(S)),
                             rng.normal(size=S), discount=0.9)
    Pt = rng.dirichlet(np.ones(S), size=(T, S, A))
    yield "dense-time", FiniteMDP(Pt, rng.normal(size=(T, S, A, S)), T, 0)
    thinned = (np.where(P > 0.3, P, 0) + np.eye(S)[:, None, :] * 1e-3).reshape(S * A, S)
    shared = sp.csr_array(thinned / thinned.sum(axis=1, keepdims=True))
    other = sp.csr_array(np.eye(S).repeat(A, axis=0))
    ops = [shared, other, shared, shared, other, shared]  # shared operators stay shared
    yield "sparse-list", FiniteMDP(ops, rng.normal(size=(1, 1, S)), T, 1)
    yield "arrival-hard", tnmdp.models.excursion(12, hard=True)
    p = rng.dirichlet(np.ones(S * 2), size=(S, A)).reshape(S, A, S, 2)
    yield "joint", FiniteMDP.from_joint(p, [-1.0, 3.0], T, 0)


MODELS = list(_random_models())
IDS = [name for name, _ in MODELS]


def _same_model(a, b):
    assert (a.n_states, a.n_actions, a.horizon, a.discount, a.atol) == \
        (b.n_states, b.n_actions, b.horizon, b.discount, b.atol)
    assert a.is_sparse == b.is_sparse and a.stationary_transitions == b.stationary_transitions
    assert a.rewards.shape == b.rewards.shape  # compact form kept
    np.testing.assert_array_equal(a.rewards, b.rewards)
    np.testing.assert_array_equal(a.initial, b.initial)
    np.testing.assert_array_equal(a.terminal_rewards, b.terminal_rewards)
    distinct_a = {id(a.transition_matrix(t)) for t in range(a.horizon)}
    distinct_b = {id(b.transition_matrix(t)) for t in range(b.horizon)}
    assert len(distinct_a) == len(distinct_b)
    for t in range(a.horizon):
        pa, pb = a.transition_matrix(t), b.transition_matrix(t)
        if sp.issparse(pa):
            assert pa.nnz == pb.nnz
            pa, pb = pa.toarray(), pb.toarray()
        np.testing.assert_array_equal(pa, pb)
        la, lb = a.reward_power_law(t), b.reward_power_law(t)
        assert (la is None) == (lb is None)
        if la is not None:
            np.testing.assert_array_equal(la[0], lb[0])
            np.testing.assert_array_equal(la[1], lb[1])


def _round_trips(obj, save, load, tmp_path):
    path = tmp_path / "x.npz"
    save(obj, path)
    buffer = io.BytesIO()
    save(obj, buffer)
    buffer.seek(0)
    return [pickle.loads(pickle.dumps(obj)), copy.deepcopy(obj), load(path), load(buffer)]


@pytest.mark.parametrize("name, mdp", MODELS, ids=IDS)
def test_model_round_trips(name, mdp, tmp_path):
    for other in _round_trips(mdp, FiniteMDP.save, FiniteMDP.load, tmp_path):
        _same_model(mdp, other)
        assert tnmdp.solve(other).expected_return == tnmdp.solve(mdp).expected_return
        if not mdp.has_neg_inf:
            pol = tnmdp.solve(mdp).policy
            np.testing.assert_array_equal(tnmdp.moments(other, pol, 3), tnmdp.moments(mdp, pol, 3))


def test_loaded_model_is_independent_of_the_original(tmp_path):
    mdp = MODELS[0][1]
    clone = copy.deepcopy(mdp)
    assert clone.transition_matrix(0) is not mdp.transition_matrix(0)
    assert not np.shares_memory(clone.rewards, mdp.rewards)


def _solutions():
    hard = tnmdp.models.excursion(16, hard=True)
    yield "hard", tnmdp.solve(MODELS[0][1])
    yield "soft", tnmdp.solve(hard, temperature=1.0)
    yield "stochastic", tnmdp.solve(hard, temperature=0.7, direction="both", max_sweeps=2)
    yield "softmax-local", tnmdp.solve(MODELS[1][1], temperature=0.5, local_solver="softmax")


SOLUTIONS = list(_solutions())


def _same_solution(a, b):
    np.testing.assert_array_equal(np.asarray(a.policy), np.asarray(b.policy))
    assert type(a.policy) is type(b.policy)
    for field in ("expected_return", "soft_value", "n_sweeps", "success", "status", "message"):
        assert getattr(a, field) == getattr(b, field), field
    np.testing.assert_array_equal(a.values, b.values)
    np.testing.assert_array_equal(a.history, b.history)
    np.testing.assert_array_equal(a.value_function, b.value_function)


@pytest.mark.parametrize("name, sol", SOLUTIONS, ids=[n for n, _ in SOLUTIONS])
def test_solution_round_trips_before_history_is_read(name, sol, tmp_path):
    # pickled first: the lazy history (a closure) must not stop it
    copies = _round_trips(sol, Solution.save, Solution.load, tmp_path)
    for other in copies:
        _same_solution(sol, other)
        _same_model(sol.mdp, other.mdp)


def test_soft_solution_file_holds_the_model_once(tmp_path):
    sol = SOLUTIONS[1][1]
    assert isinstance(sol.policy, tnmdp.policy.SoftPolicy)
    path = tmp_path / "soft.npz"
    sol.save(path)
    with np.load(path, allow_pickle=False) as npz:
        assert any(name.startswith("mdp.") for name in npz.files)
        assert not any(name.startswith("policy.mdp.") for name in npz.files)
    again = Solution.load(path)
    assert again.policy._sites.mdp is again.mdp
    _same_solution(sol, again)


def test_soft_policy_saved_as_checkpoints(tmp_path, monkeypatch):
    """A soft policy whose values are kept at sqrt(T) checkpoints pickles and saves only the
    checkpoints, and recomputes the same sites after loading."""
    import tnmdp.environments as env

    monkeypatch.setattr(env, "MEMORY_BUDGET", 4096)
    mdp = tnmdp.models.excursion(64, hard=True)
    sol = tnmdp.solve(mdp, temperature=1.0, backend="numpy")
    stored = len(sol.policy.values._stored)
    assert 1 < stored < mdp.horizon // 4
    want = np.asarray(sol.policy)
    for other in _round_trips(sol.policy, lambda p, f: Solution(
            policy=p, expected_return=0.0, values=np.zeros(1), soft_value=None,
            history=np.zeros(0), n_sweeps=1, success=True, status=0, message="",
            mdp=None).save(f), lambda f: Solution.load(f).policy, tmp_path):
        assert len(other.values._stored) == stored
        np.testing.assert_allclose(np.asarray(other), want, rtol=1e-12, atol=1e-300)


@pytest.mark.parametrize("policy", [
    Policy.from_actions(np.array([[0, 1, 1], [1, 0, 0]]), 2),
    Policy.uniform(3, 4, 2),
    Policy.from_array(np.random.default_rng(1).dirichlet(np.ones(3), size=(2, 4))),
], ids=["actions", "uniform-shared", "stochastic"])
def test_policy_pickles(policy):
    for other in (pickle.loads(pickle.dumps(policy)), copy.deepcopy(policy)):
        np.testing.assert_array_equal(np.asarray(other), np.asarray(policy))
        assert other.deterministic == policy.deterministic
        assert other.nbytes == policy.nbytes  # compact storage (shared sites once) kept


def test_bad_files_are_value_errors(tmp_path):
    mdp = MODELS[0][1]
    good = tmp_path / "m.npz"
    mdp.save(good)
    data = good.read_bytes()
    truncated = tmp_path / "t.npz"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="t.npz is not a readable .npz file"):
        FiniteMDP.load(truncated)
    text = tmp_path / "text.npz"
    text.write_text("hello")
    with pytest.raises(ValueError, match="not a readable .npz file"):
        FiniteMDP.load(text)
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, a=np.arange(3))
    with pytest.raises(ValueError, match="an .npz file but not a tnmdp file"):
        FiniteMDP.load(foreign)
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, __format__=np.array("tnmdp"), obj=np.array([{}], dtype=object))
    with pytest.raises(ValueError, match="holds pickled objects"):
        FiniteMDP.load(pickled)
    with pytest.raises(ValueError, match="holds a FiniteMDP, not a Solution"):
        Solution.load(good)
    with zipfile.ZipFile(good) as z:
        entries = {n: z.read(n) for n in z.namelist()}
    newer = tmp_path / "newer.npz"
    with zipfile.ZipFile(newer, "w") as z:
        for n, raw in entries.items():
            if n != "__version__.npy":
                z.writestr(n, raw)
        buf = io.BytesIO()
        np.save(buf, np.array(99))
        z.writestr("__version__.npy", buf.getvalue())
    with pytest.raises(ValueError, match="file version 99; this tnmdp reads versions 1..1"):
        FiniteMDP.load(newer)
    with pytest.raises(FileNotFoundError):
        FiniteMDP.load(tmp_path / "missing.npz")


# --------------------------------------------------------------------------- values
def dense_values(P, R, terminal, probs, discount):
    """V_t for t = 0..T and Q_t for t = 0..T-1 of a (T, S, A) policy, from raw arrays."""
    T = probs.shape[0]
    V = np.empty((T + 1, P.shape[0]))
    V[T] = terminal
    Q = np.empty(probs.shape)
    for t in range(T - 1, -1, -1):
        Q[t] = np.einsum("sap,sap->sa", P, R + discount * V[t + 1][None, None, :])
        V[t] = (probs[t] * Q[t]).sum(axis=1)
    return V, Q


def test_value_function_q_values_and_per_state_against_dense_oracle():
    rng = np.random.default_rng(4)
    S, A, T, gamma = 6, 3, 7, 0.8
    P = rng.dirichlet(np.ones(S), size=(S, A))
    R = rng.normal(size=(S, A, S))
    terminal = rng.normal(size=S)
    mdp = FiniteMDP(P, R, T, rng.dirichlet(np.ones(S)), terminal, discount=gamma)
    sol = tnmdp.solve(mdp)
    V, Q = dense_values(P, R, terminal, np.asarray(sol.policy), gamma)
    # sums of a few dozen O(1) terms: agreement to ~1e-14, 1e-12 leaves room
    np.testing.assert_allclose(sol.value_function, V, rtol=1e-12, atol=1e-12)
    for t in range(T):
        np.testing.assert_allclose(sol.q_values(t), Q[t], rtol=1e-12, atol=1e-12)
        np.testing.assert_array_equal(np.argmax(Q[t], axis=1), sol.policy.actions[t])
    assert not sol.value_function.flags.writeable
    probs = rng.dirichlet(np.ones(A), size=(T, S))
    V2, _ = dense_values(P, R, terminal, probs, gamma)
    np.testing.assert_allclose(tnmdp.policy_values(mdp, probs), V2, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(tnmdp.evaluate(mdp, probs, per_state=True), V2[0], rtol=1e-12)
    with pytest.raises(ValueError, match=r"t must be an int in 0..6, got 7"):
        sol.q_values(7)


def test_value_function_needs_the_model():
    sol = SOLUTIONS[0][1]
    bare = Solution(policy=sol.policy, expected_return=0.0, values=sol.values, soft_value=None,
                    history=np.zeros(0), n_sweeps=1, success=True, status=0, message="")
    with pytest.raises(ValueError, match="value_function needs the model"):
        bare.value_function


def test_policy_forms():
    rng = np.random.default_rng(2)
    S, A, T = 4, 3, 5
    mdp = FiniteMDP(rng.dirichlet(np.ones(S), size=(S, A)), rng.normal(size=(S, A)), T, 0)
    eye = np.eye(A)
    actions = rng.integers(0, A, size=(T, S))
    stationary = rng.integers(0, A, size=S)
    site = rng.dirichlet(np.ones(A), size=S)
    cases = [(actions, eye[actions]), (stationary, eye[np.broadcast_to(stationary, (T, S))]),
             (site, np.broadcast_to(site, (T, S, A))),
             (actions.astype(np.int8), eye[actions])]
    for form, dense in cases:
        assert tnmdp.evaluate(mdp, form) == tnmdp.evaluate(mdp, dense)
        np.testing.assert_array_equal(tnmdp.policy_values(mdp, form),
                                      tnmdp.policy_values(mdp, dense))
        np.testing.assert_array_equal(tnmdp.marginals(mdp, form), tnmdp.marginals(mdp, dense))
    assert tnmdp.evaluate(mdp, stationary) == pytest.approx(
        dense_values(mdp.transition_matrix(0).reshape(S, A, S),
                     np.asarray(mdp.rewards[0])[:, :, :1].repeat(S, axis=2), np.zeros(S),
                     eye[np.broadcast_to(stationary, (T, S))], 1.0)[0][0, 0], rel=1e-12)
    with pytest.raises(ValueError, match=r"policy\[t=1, s=2\] is 3: integer arrays are actions"):
        bad = actions.copy()
        bad[1, 2] = 3
        tnmdp.evaluate(mdp, bad)
    with pytest.raises(ValueError, match=r"policy\[s=0\] is -1: integer arrays are actions"):
        tnmdp.evaluate(mdp, np.array([-1, 0, 0, 0]))
    with pytest.raises(ValueError, match=r"policy\[s=1\] sums to 2, not 1"):
        tnmdp.evaluate(mdp, np.array([[1.0, 0, 0], [1, 1, 0], [1, 0, 0], [1, 0, 0]]))
    with pytest.raises(ValueError, match=r"policy has shape \(5, 4\); the MDP needs"):
        tnmdp.evaluate(mdp, actions.astype(float))  # float (T, S) is not a form


def pydata_case():
    rng = np.random.default_rng(6)
    S, A = 5, 2
    P = rng.dirichlet(np.ones(S), size=(S, A))
    P[P < 0.15] = 0
    P /= P.sum(axis=2, keepdims=True)
    R = rng.normal(size=(S, A))
    return P, R, tnmdp.solve(FiniteMDP(P, R, 4, 0)).values


def test_pydata_sparse_transitions():
    sparse = pytest.importorskip("sparse")
    P, R, want = pydata_case()
    S, A = P.shape[:2]
    for form in (sparse.COO.from_numpy(P), sparse.COO.from_numpy(P.reshape(S * A, S)),
                 [sparse.COO.from_numpy(P.reshape(S * A, S))] * 4):
        mdp = FiniteMDP(form, R, 4, 0)
        assert mdp.is_sparse
        np.testing.assert_allclose(tnmdp.solve(mdp).values, want, rtol=1e-14)
    with pytest.raises(TypeError, match="transitions must"):
        FiniteMDP({"P": P}, R, 4, 0)


@pytest.mark.slow
def test_pydata_sparse_compressed_transitions():
    """A non-COO pydata array (GCXS, converted through ``asformat("coo")``). Slow: pydata
    sparse compiles its (uncached) numba kernels on the first GCXS, ~0.8 s in every process."""
    sparse = pytest.importorskip("sparse")
    P, R, want = pydata_case()
    S, A = P.shape[:2]
    mdp = FiniteMDP(sparse.GCXS.from_numpy(P.reshape(S * A, S)), R, 4, 0)
    assert mdp.is_sparse
    np.testing.assert_allclose(tnmdp.solve(mdp).values, want, rtol=1e-14)


class HeldPolicy(Policy):
    """A subclass with state of its own (as a policy held on a cluster): never read site by
    site when pickled."""

    def site(self, t):
        raise AssertionError("pickling read the sites of a subclass")


def test_policy_subclass_pickles_by_default():
    held = HeldPolicy(np.zeros((2, 3), dtype=np.int8), 3, 2)
    again = pickle.loads(pickle.dumps(held))
    assert type(again) is HeldPolicy and again.shape == held.shape
