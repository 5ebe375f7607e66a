"""The quimb network: full contraction equals the array evaluation."""

import numpy as np
import pytest

import tnmdp
from tnmdp import network

from conftest import random_mdp


def random_policy(mdp, seed):
    raw = np.random.default_rng(seed).random((mdp.horizon, mdp.n_states, mdp.n_actions))
    return raw / raw.sum(axis=2, keepdims=True)


@pytest.mark.parametrize("params", [
    dict(seed=0), dict(seed=1, sparse=True, stationary=False, reward_form="time_full"),
    dict(seed=2, reward_form="arrival", discount=0.7), dict(seed=3, ties=True, reward_form="sa"),
], ids=["dense", "sparse-time", "arrival-discount", "ties"])
@pytest.mark.parametrize("copy_tensors", [False, True], ids=["hyperindex", "copy-tensor"])
def test_full_contraction_equals_evaluate(params, copy_tensors):
    mdp = random_mdp(n_states=4, n_actions=3, horizon=4, **params)
    policy = random_policy(mdp, 0)
    tn = network.expected_return_network(mdp, policy, copy_tensors=copy_tensors)
    exact = tnmdp.evaluate(mdp, policy)
    assert network.contract(tn) == pytest.approx(exact, rel=1e-12, abs=1e-13)


def test_moment_network_equals_moments():
    mdp = random_mdp(5, 3, 2, 4, discount=0.9)
    policy = random_policy(mdp, 5)
    values = [network.contract(network.moment_network(mdp, policy, k)) for k in (1, 2, 3)]
    np.testing.assert_allclose(values, tnmdp.moments(mdp, policy, 3), rtol=1e-11)


def test_partition_network_equals_log_partition():
    mdp = tnmdp.models.excursion(8, hard=True, noise=0.1)
    z = network.contract(network.partition_network(mdp))
    assert np.log(z) == pytest.approx(tnmdp.log_partition(mdp), rel=1e-12)
    discounted = random_mdp(4, 3, 2, 4, discount=0.8)
    z = network.contract(network.partition_network(discounted, temperature=0.7))
    assert np.log(z) == pytest.approx(tnmdp.log_partition(discounted, temperature=0.7), rel=1e-12)


def test_network_structure_and_drawing(tmp_path):
    mdp = tnmdp.models.excursion(3)
    tn = network.expected_return_network(mdp, np.full((3, 7, 2), 0.5))
    assert {"M0", "M2", "PI1", "G3", "P0", "END"} <= set(tn.tags)
    assert network.return_mpo(mdp).max_bond() == 2 and network.moment_mpo(mdp, 3).max_bond() == 4
    assert max(t.ndim for t in network.policy_mps(mdp, np.full((3, 7, 2), 0.5))) == 2
    import matplotlib

    from tnmdp.plotting import draw_network

    backend = matplotlib.get_backend()
    out = draw_network(tn, tmp_path / "net.png", title="T = 3")
    assert (tmp_path / "net.png").stat().st_size > 10_000 and out == tmp_path / "net.png"
    assert matplotlib.get_backend() == backend  # tnmdp never switches the user's backend
    with pytest.warns(DeprecationWarning, match="use tnmdp.plotting.draw_network"):
        network.draw_network(tn, tmp_path / "old.png")
    assert (tmp_path / "old.png").stat().st_size > 10_000


def test_return_network_rejects_neg_inf():
    with pytest.raises(ValueError, match="the return network needs finite rewards"):
        network.dynamics_mpo(tnmdp.models.excursion(4, hard=True))


def test_quimb_import_leaves_our_sparse_products_alone():
    # quimb replaces scipy's csr_matrix product by a multithreaded numba kernel for nnz > 50,000;
    # operators are stored as csr_array, whose product it does not touch.
    import scipy.sparse as sp

    import quimb.tensor  # noqa: F401  (the import applies the patch)

    P = tnmdp.models.excursion(7000, noise=0.1).transition_matrix(0)  # 2 entries per row
    assert isinstance(P, sp.csr_array) and P.nnz > 50_000
    assert type(P)._matmul_vector.__name__ != "csr_mul_vector"
