"""FiniteMDP: accepted forms, compact storage and validation messages."""

import tracemalloc

import numpy as np
import pytest
import scipy.sparse as sp

import tnmdp
from tnmdp import FiniteMDP
from tnmdp.reference import dense_model

from conftest import random_mdp

P2 = np.array([[[1.0, 0.0], [0.5, 0.5]], [[0.0, 1.0], [0.2, 0.8]]])  # (S=2, A=2, S=2)


def test_dense_sparse_and_sequence_forms_agree():
    rng = np.random.default_rng(1)
    T = 3
    dense = rng.random((T, 2, 2, 2))
    dense /= dense.sum(axis=3, keepdims=True)
    rewards = rng.normal(size=(T, 1, 1, 2))
    a = FiniteMDP(dense, rewards, T, 0)
    b = FiniteMDP([sp.csr_array(d.reshape(4, 2)) for d in dense], rewards, T, 0)
    for t in range(T):
        for (pa, ra), (pb, rb) in [(dense_model(a, t), dense_model(b, t))]:
            np.testing.assert_array_equal(pa, pb)
            np.testing.assert_array_equal(ra, rb)
        np.testing.assert_allclose(a.expected_reward(t), b.expected_reward(t), rtol=0, atol=1e-15)
    assert b.is_sparse and not a.is_sparse and not a.stationary_transitions


@pytest.mark.parametrize("rewards, kind", [(np.ones((2, 2)), "state_action"),
                                           (np.ones((1, 1, 2)), "arrival"),
                                           (np.ones((2, 2, 2)), "full"),
                                           (np.ones((3, 2, 1, 1)), "state_action")])
def test_reward_forms(rewards, kind):
    assert FiniteMDP(P2, rewards, 3, 0).reward_kind() == kind


def test_time_dependent_arrival_reward_is_stored_compactly():
    T, S = 2000, 4001
    P = sp.csr_matrix((np.ones(2 * S), (np.arange(2 * S), np.arange(2 * S) // 2)), shape=(2 * S, S))
    rewards = np.zeros((T, 1, 1, S))
    tracemalloc.start()
    mdp = FiniteMDP(P, rewards, T, 0)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert mdp.rewards.shape == (T, 1, 1, S)
    assert peak < 2 * rewards.nbytes  # at most a copy; never T*S*A*S
    view = np.broadcast_to(np.zeros((1, 1, 1, S)), (T, 1, 1, S))
    assert FiniteMDP(P, view, T, 0).rewards.shape == (1, 1, 1, S)  # stride-0 time axis kept once


def test_neg_inf_rewards_allowed_and_zero_probability_contributes_nothing():
    rewards = np.array([[[0.0, -np.inf], [-np.inf, 0.0]], [[0.0, 0.0], [0.0, 0.0]]])
    # (s=0, a=0, s'=1) has probability 0; (s=0, a=1, s'=0) has probability 0.5
    mdp = FiniteMDP(P2, rewards, 2, 0)
    rbar = mdp.expected_reward(0)
    assert rbar[0, 0] == 0.0 and rbar[0, 1] == -np.inf and not np.isnan(rbar).any()


def test_from_joint_marginalises_rewards():
    p = np.zeros((2, 2, 2, 2))
    p[..., 0] = 0.25 * P2
    p[..., 1] = 0.75 * P2
    mdp = FiniteMDP.from_joint(p, [0.0, 4.0], 3, 0)
    np.testing.assert_allclose(mdp.expected_reward(0), np.full((2, 2), 3.0), rtol=1e-15)
    np.testing.assert_array_equal(dense_model(mdp, 0)[0], P2)


BAD_TRANSITIONS = [
    (np.ones(4), ValueError, r"transitions must have shape \(S, A, S\), \(S\*A, S\)"),
    (np.ones((3, 2)), ValueError, r"transitions must have shape \(S, A, S\), \(S\*A, S\)"),
    (np.ones((2, 2, 3)), ValueError, r"expected \(S, A, S\)"),
    (np.ones((4, 2, 2, 2)) / 2, ValueError, r"first axis \(4\) must equal horizon \(3\)"),
    (np.where(np.arange(8).reshape(2, 2, 2) == 3, np.nan, P2), ValueError,
     r"transitions\[0, 1, 1\] is nan"),
    (np.array([[[1.5, -0.5], [0.5, 0.5]], [[0, 1], [0.2, 0.8]]]), ValueError,
     r"transitions\[s=0, a=0, s'=1\] is -0.5; probabilities must be >= 0"),
    (np.array([[[1.0, 0.0], [0.5, 0.48]], [[0, 1], [0.2, 0.8]]]), ValueError,
     r"transitions\[s=0, a=1\] sums to 0.98, not 1 \(atol=1e-09\)"),
    (sp.csr_matrix(np.ones((3, 2))), ValueError, r"expected \(S\*A, S\)"),
]


@pytest.mark.parametrize("transitions, error, match", BAD_TRANSITIONS,
                         ids=["ndim", "rows", "shape", "horizon", "nan", "negative", "sum",
                              "sparse-shape"])
def test_bad_transitions(transitions, error, match):
    with pytest.raises(error, match=match):
        FiniteMDP(transitions, np.zeros((2, 2)), 3, 0)


def test_bad_time_dependent_row_names_the_time():
    P = np.stack([P2, P2, P2])
    P[2, 1, 0] = [0.3, 0.3]
    with pytest.raises(ValueError, match=r"transitions\[t=2, s=1, a=0\] sums to 0.6"):
        FiniteMDP(P, np.zeros((2, 2)), 3, 0)
    mats = [sp.csr_matrix(p.reshape(4, 2)) for p in P]
    with pytest.raises(ValueError, match=r"transitions\[t=2, s=1, a=0\] sums to 0.6"):
        FiniteMDP(mats, np.zeros((2, 2)), 3, 0)


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(rewards=np.zeros((2, 3))), ValueError, r"axis 1 has length 3"),
    (dict(rewards=np.zeros(2)), ValueError, r"rewards must have 2, 3 or 4 dimensions"),
    (dict(rewards=np.array([[0.0, np.nan], [0, 0]])), ValueError, r"rewards\[0, 1\] is nan"),
    (dict(rewards=np.array([[0.0, np.inf], [0, 0]])), ValueError, r"rewards\[0, 1\] is inf"),
    (dict(horizon=0), ValueError, r"horizon must be >= 1, got 0"),
    (dict(horizon=2.5), TypeError, r"horizon must be an int, not float"),
    (dict(initial=[0.5, 0.4]), ValueError, r"initial sums to 0.9, not 1"),
    (dict(initial=[1.5, -0.5]), ValueError, r"initial\[1\] is -0.5"),
    (dict(initial=5), ValueError, r"initial state 5 is outside 0..1"),
    (dict(initial=[1.0, 0.0, 0.0]), ValueError,
     r"initial must be an int state index or a distribution of shape \(S,\) = \(2,\); got shape"),
    (dict(initial=0.0), TypeError,  # was: "got shape ()"
     r"initial must be an int state index or a distribution .*; got float 0.0"),
    (dict(rewards=np.array([[0.0, np.nan], [0, 0]])), ValueError,  # was: "only finite values
     r"rewards\[0, 1\] is nan; values must be finite or -inf \(nan and \+inf"),  # are not"
    (dict(initial=[np.nan, 1.0]), ValueError, r"initial\[0\] is nan; values must be finite$"),
    (dict(terminal_rewards=[0.0, np.nan]), ValueError, r"terminal_rewards\[1\] is nan"),
    (dict(discount=1.5), ValueError, r"discount must be a number in \[0, 1\]"),
])
def test_bad_arguments(kwargs, error, match):
    args = dict(transitions=P2, rewards=np.zeros((2, 2)), horizon=3, initial=0)
    args.update(kwargs)
    with pytest.raises(error, match=match):
        FiniteMDP(**args)


def test_nothing_is_renormalised():
    P = P2.copy()
    P[0, 0] = [1.0 - 1e-10, 0.0]  # within atol: accepted as given, not renormalised
    mdp = FiniteMDP(P, np.zeros((2, 2)), 1, 0)
    assert mdp.transition_matrix(0)[0, 0] == 1.0 - 1e-10


def test_repr_mentions_sizes():
    assert "n_states=4" in repr(random_mdp(0))


def test_weighted_transitions_share_no_array_with_the_model():
    mdp = random_mdp(2, 4, 2, 3, sparse=True, reward_form="full")
    P = mdp.transition_matrix(0)
    before = P.copy()
    W = mdp.weighted_transitions(0, lambda r: np.where(r > 0, r, 0.0))  # zeros some entries
    W.eliminate_zeros()  # rewrites W's index arrays in place
    np.testing.assert_array_equal(P.indptr, before.indptr)
    np.testing.assert_array_equal(P.indices, before.indices)
    np.testing.assert_array_equal(P.data, before.data)


def test_dense_s_times_a_rows_are_accepted_like_sparse():
    flat = P2.reshape(4, 2)  # row s*A + a, as sparse input
    a = FiniteMDP(flat, np.zeros((2, 2)), 3, 0)
    b = FiniteMDP(sp.csr_matrix(flat), np.zeros((2, 2)), 3, 0)
    np.testing.assert_array_equal(a.transition_matrix(0), b.transition_matrix(0).toarray())
    np.testing.assert_array_equal(a.transition_matrix(0), flat)


def test_arrays_are_copied_at_the_boundary():
    """Editing the caller's arrays after construction changes nothing (was: stored by
    reference, so an edit skipped validation); stored arrays are read-only."""
    P, R = P2.copy(), np.zeros((2, 2, 2))
    initial, terminal = np.array([0.5, 0.5]), np.array([1.0, 2.0])
    mdp = FiniteMDP(P, R, 3, initial, terminal_rewards=terminal)
    before = tnmdp.evaluate(mdp, np.full((3, 2, 2), 0.5))
    P[0, 0] = [7.0, -6.0]
    R[:] = np.nan
    initial[:] = [3.0, -2.0]
    terminal[:] = 100.0
    assert tnmdp.evaluate(mdp, np.full((3, 2, 2), 0.5)) == before
    np.testing.assert_array_equal(mdp.transition_matrix(0), P2.reshape(4, 2))
    for arr in (mdp.transition_matrix(0), mdp.rewards, mdp.initial, mdp.terminal_rewards):
        with pytest.raises(ValueError, match="read-only"):
            arr[...] = 0.0


def test_mostly_zero_dense_input_is_stored_sparse():
    """Dense input with at most SPARSE_DENSITY non-zeros (and SPARSE_MIN_SIZE entries) becomes
    CSR at the boundary; the model is the same (solve agrees with the dense-stored one)."""
    from tnmdp.model import SPARSE_DENSITY, SPARSE_MIN_SIZE

    S, A = 512, 4
    assert S * A * S >= SPARSE_MIN_SIZE
    rng = np.random.default_rng(0)
    P = np.zeros((S, A, S))
    for k in range(3):  # 3 successors per row: density 3/512, far below the threshold
        P[np.arange(S)[:, None], np.arange(A)[None, :], rng.integers(0, S, (S, A))] += 1 / 3
    R = rng.normal(size=(S, A))
    sparse_mdp = FiniteMDP(P, R, 5, 0)
    assert sparse_mdp.is_sparse
    small = FiniteMDP(np.repeat(np.eye(64)[:, None, :], 4, axis=1), np.zeros((64, 4)), 2, 0)
    assert not small.is_sparse  # density 1/64, but below SPARSE_MIN_SIZE: kept dense
    dense_P = np.full((S, A, S), 1.0 / S)
    assert not FiniteMDP(dense_P, R, 5, 0).is_sparse
    assert np.count_nonzero(P) <= SPARSE_DENSITY * P.size
    ref = tnmdp.reference.backward_induction_arrays(P, R, np.eye(S)[0], horizon=5)
    sol = tnmdp.solve(sparse_mdp, backend="numpy")
    np.testing.assert_allclose(sol.values, ref[1], rtol=0, atol=1e-12)


def test_time_dependent_dense_input_keeps_one_format():
    """CSR only when every step is mostly zeros: a model never mixes dense and CSR steps."""
    S, A, T = 512, 4, 2
    sparse_step = np.zeros((S, A, S))
    sparse_step[np.arange(S), :, (np.arange(S) + 1) % S] = 1.0  # one successor: density 1/512
    dense_step = np.full((S, A, S), 1.0 / S)
    both_sparse = FiniteMDP(np.stack([sparse_step, sparse_step]), np.zeros((S, A)), T, 0)
    assert all(sp.issparse(both_sparse.transition_matrix(t)) for t in range(T))
    mixed = FiniteMDP(np.stack([sparse_step, dense_step]), np.zeros((S, A)), T, 0)
    assert not any(sp.issparse(mixed.transition_matrix(t)) for t in range(T))
