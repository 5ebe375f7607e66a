"""Classification of chains and models (tnmdp.classify; Puterman 1994, Sect. A.2 and 8.3).

Oracles: hand-checked textbook structures, and brute force over every deterministic policy of
small random models (a state lies in an end component iff it is recurrent under some
deterministic stationary policy).
"""

import itertools

import numpy as np
import pytest

import tnmdp
from tnmdp.chains import recurrent_classes


def model(P, reward=None):
    P = np.asarray(P, dtype=float)
    S, A = P.shape[:2]
    return tnmdp.FiniteMDP(P, np.zeros((S, A)) if reward is None else reward, None, 0)


def lists(classes):
    return [c.tolist() for c in classes]


def test_policy_chain_with_transient_state():
    P = [[[1.0, 0.0, 0.0]], [[0.5, 0.5, 0.0]], [[0.0, 0.3, 0.7]]]
    c = tnmdp.classify(model(P), [0, 0, 0])
    assert c.kind == "unichain" and lists(c.recurrent_classes) == [[0]]
    assert c.transient_states.tolist() == [1, 2]
    assert c.communicating is None


def test_two_absorbing_states_are_multichain():
    P = [[[0.0, 0.5, 0.5]], [[0.0, 1.0, 0.0]], [[0.0, 0.0, 1.0]]]
    c = tnmdp.classify(model(P), np.array([[1.0]] * 3))
    assert c.kind == "multichain" and lists(c.recurrent_classes) == [[1], [2]]
    assert c.transient_states.tolist() == [0]


def test_periodic_ring_is_one_class():
    S = 6
    P = np.zeros((S, 1, S))
    P[np.arange(S), 0, (np.arange(S) + 1) % S] = 1.0
    c = tnmdp.classify(model(P), np.zeros(S, dtype=int))
    assert c.kind == "unichain" and lists(c.recurrent_classes) == [list(range(S))]
    assert c.transient_states.size == 0


def test_communicating_ring_model():
    S = 5
    P = np.zeros((S, 2, S))
    P[np.arange(S), 0, (np.arange(S) - 1) % S] = 1.0
    P[np.arange(S), 1, (np.arange(S) + 1) % S] = 1.0
    c = tnmdp.classify(model(P))
    assert c.communicating and c.weakly_communicating
    assert lists(c.closed_classes) == [list(range(S))] == lists(c.end_components)
    assert c.kind is None and c.recurrent_classes is None


def test_weakly_communicating_not_communicating():
    # 0 always leaves to {1, 2} (transient under every policy); 1 and 2 reach each other
    P = np.zeros((3, 2, 3))
    P[0, :, 1] = 1.0
    P[1, 0, 2] = P[1, 1, 1] = 1.0
    P[2, 0, 1] = P[2, 1, 2] = 1.0
    c = tnmdp.classify(model(P))
    assert not c.communicating and c.weakly_communicating
    assert lists(c.end_components) == [[1, 2]] and lists(c.closed_classes) == [[1, 2]]


def test_stay_action_makes_an_end_component_that_is_not_closed():
    # 0 can stay or move to absorbing 1: {0} is recurrent under "stay", so the model is not
    # weakly communicating although its only closed class is {1}
    P = np.zeros((2, 2, 2))
    P[0, 0, 0] = P[0, 1, 1] = 1.0
    P[1, :, 1] = 1.0
    c = tnmdp.classify(model(P))
    assert not c.communicating and not c.weakly_communicating
    assert lists(c.closed_classes) == [[1]] and lists(c.end_components) == [[0], [1]]


@pytest.mark.parametrize("seed", range(12))
def test_end_components_match_brute_force(seed):
    rng = np.random.default_rng(seed)
    S, A = 5, 2
    P = (rng.random((S, A, S)) < 0.3).astype(float)
    P[np.arange(S), :, rng.integers(0, S, S)] = 1.0  # every row has a successor
    P /= P.sum(axis=2, keepdims=True)
    mdp = model(P)
    recurrent_somewhere = set()
    for actions in itertools.product(range(A), repeat=S):
        c = tnmdp.classify(mdp, np.array(actions))
        for cls in c.recurrent_classes:
            recurrent_somewhere |= set(cls.tolist())
    ends = tnmdp.classify(mdp).end_components
    assert sorted(set().union(*[set(e.tolist()) for e in ends])) == sorted(recurrent_somewhere)


def test_recurrent_classes_against_matrix_powers():
    # a state is recurrent iff the Cesaro limit puts mass on it from itself
    rng = np.random.default_rng(3)
    P = (rng.random((9, 9)) < 0.2) * rng.random((9, 9))
    P[np.arange(9), np.arange(9)] += 1e-3 * (np.arange(9) % 3 == 0)
    P[P.sum(axis=1) == 0, 0] = 1.0
    P /= P.sum(axis=1, keepdims=True)
    classes, transient = recurrent_classes(P)
    limit = sum(np.linalg.matrix_power(P, n) for n in range(2000, 2200)) / 200
    recurrent = sorted(np.flatnonzero(np.diag(limit) > 1e-9).tolist())
    assert sorted(np.concatenate(classes).tolist()) == recurrent
    assert sorted(transient.tolist()) == sorted(set(range(9)) - set(recurrent))


def test_classify_errors():
    with pytest.raises(ValueError, match="classify needs a continuing MDP"):
        tnmdp.classify(tnmdp.models.excursion(3))
    with pytest.raises(TypeError, match="mdp must be a tnmdp.FiniteMDP"):
        tnmdp.classify("mdp")
    with pytest.raises(ValueError, match=r"policy has shape \(2, 1\)"):
        tnmdp.classify(model(np.full((3, 1, 3), 1 / 3)), np.ones((2, 1)))
