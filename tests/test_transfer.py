"""SCGF and stationary Doob process of continuing chains (tnmdp.transfer).

Oracles: the closed form of the biased ring walk (its uniform vector is the Perron vector, so
``lambda = p e^{1/tau} + (1 - p) e^{-1/tau}`` for every ring size, periodic or not), dense
``numpy.linalg.eigvals`` of a transfer matrix built by hand from the raw arrays, the
finite-horizon ``tnmdp.log_partition`` (its own backward recursion) for ``log Z_T / T``, and
central finite differences of the SCGF for the Doob current.
"""

import numpy as np
import pytest

import tnmdp
from tnmdp.transfer import perron_root, scgf, stationary_doob


def ring(S, p, forbid_left=False):
    P, R = np.zeros((S, 1, S)), np.zeros((S, 1, S))
    for s in range(S):
        P[s, 0, (s + 1) % S] += p
        P[s, 0, (s - 1) % S] += 1 - p
        R[s, 0, (s + 1) % S] = 1.0
        R[s, 0, (s - 1) % S] = -np.inf if forbid_left else -1.0
    return P, R


@pytest.mark.parametrize("S", [3, 4, 7, 10, 600, 601])
@pytest.mark.parametrize("tau", [0.4, 1.0, 3.0])
def test_ring_closed_form(S, tau):
    p = 0.3
    mdp = tnmdp.FiniteMDP(*ring(S, p), None, 0)
    exact = np.log(p * np.exp(1 / tau) + (1 - p) * np.exp(-1 / tau))
    assert scgf(mdp, tau) == pytest.approx(exact, abs=1e-11)  # certified bracket 1e-11


def test_forbidden_moves_have_zero_weight():
    mdp = tnmdp.FiniteMDP(*ring(5, 0.3, forbid_left=True), None, 0)
    assert scgf(mdp, 2.0) == pytest.approx(np.log(0.3) + 0.5, abs=1e-12)


def random_chain(seed, S=6, A=2):
    rng = np.random.default_rng(seed)
    P = rng.random((S, A, S)) + 0.05
    P /= P.sum(axis=2, keepdims=True)
    R = rng.normal(size=(S, A, S))
    return P, R, rng.dirichlet(np.ones(S))


@pytest.mark.parametrize("seed", range(3))
def test_against_dense_eigenvalues(seed):
    P, R, init = random_chain(seed)
    pi0 = np.random.default_rng(seed + 10).dirichlet(np.ones(2), size=6)
    tau = 0.7
    W = np.einsum("sa,sat->st", pi0, P * np.exp(R / tau))
    eig = np.linalg.eigvals(W)
    mdp = tnmdp.FiniteMDP(P, R, None, init)
    assert scgf(mdp, tau, pi0) == pytest.approx(np.log(eig.real.max()), abs=1e-12)


def test_log_partition_over_T_converges_with_one_over_T_correction():
    P, R, init = random_chain(4)
    mdp = tnmdp.FiniteMDP(P, R, None, init)
    s = scgf(mdp)
    W = 0.5 * (P * np.exp(R)).sum(axis=1)
    root = perron_root(W)
    c = np.log((init @ root.right) * root.left.sum() / (root.left @ root.right))
    for T in (5, 40, 80):
        log_z = tnmdp.log_partition(tnmdp.FiniteMDP(P, R, T, init))
        # log Z_T = T s + c + O(|lambda_2 / lambda|^T): the O(1/T) term of log Z_T / T is c / T
        assert T * (log_z / T - s) == pytest.approx(c, abs=1e-9 if T >= 40 else 1e-2)
    assert abs(c) > 1e-3  # the correction is really there


@pytest.mark.parametrize("S", [5, 8])
def test_doob_current_is_derivative_of_scgf(S):
    p, tau = 0.3, 0.8
    mdp = tnmdp.FiniteMDP(*ring(S, p), None, 0)
    doob = tnmdp.doob_transform(mdp, temperature=tau, stationary=True)
    assert doob.continuing and doob.n_actions == 1 and doob.discount == 1
    current = tnmdp.evaluate(doob, np.zeros(S, dtype=int))
    b = 1 / tau
    exact = (p * np.exp(b) - (1 - p) * np.exp(-b)) / (p * np.exp(b) + (1 - p) * np.exp(-b))
    assert current == pytest.approx(exact, abs=1e-12)


def test_doob_with_actions_matches_finite_difference():
    P, R, _ = random_chain(7)
    mdp = tnmdp.FiniteMDP(P, R, None, 0)
    tau, h = 1.3, 1e-5
    doob = stationary_doob(mdp, tau)
    Ph = doob.transition_matrix(0).toarray()
    np.testing.assert_allclose(Ph.sum(axis=1), 1.0, rtol=0, atol=1e-14)
    np.testing.assert_allclose(doob.initial @ Ph, doob.initial, rtol=0, atol=1e-13)
    current = tnmdp.evaluate(doob, np.zeros(6, dtype=int))
    # d log lambda / d beta, beta = 1/tau, central difference: error ~ h^2 + eps/h ~ 1e-10
    deriv = (scgf(mdp, 1 / (1 / tau + h)) - scgf(mdp, 1 / (1 / tau - h))) / (2 * h)
    assert current == pytest.approx(deriv, abs=1e-8)


def test_reducible_chains():
    # a transient state feeding a ring: simple root, the ring's
    P, R = ring(4, 0.3)
    P5 = np.zeros((5, 1, 5))
    R5 = np.zeros((5, 1, 5))
    P5[:4, :, :4], R5[:4, :, :4] = P, R
    P5[4, 0, 0] = 1.0
    mdp = tnmdp.FiniteMDP(P5, R5, None, 4)
    assert scgf(mdp) == pytest.approx(np.log(0.3 * np.e + 0.7 / np.e), abs=1e-11)
    with pytest.raises(ValueError, match="stationary_doob needs an irreducible tilted chain"):
        stationary_doob(mdp)
    # two copies of the same ring: the Perron root is double
    P8 = np.zeros((8, 1, 8))
    R8 = np.zeros((8, 1, 8))
    P8[:4, :, :4] = P8[4:, :, 4:] = P
    R8[:4, :, :4] = R8[4:, :, 4:] = R
    with pytest.raises(ValueError, match="attained by 2 strongly connected components"):
        scgf(tnmdp.FiniteMDP(P8, R8, None, 0))


def test_scgf_errors():
    P, R = ring(4, 0.3)
    with pytest.raises(ValueError, match="needs discount == 1"):
        scgf(tnmdp.FiniteMDP(P, R, None, 0, discount=0.9))
    with pytest.raises(ValueError, match="temperature must be a finite number > 0, got 0"):
        scgf(tnmdp.FiniteMDP(P, R, None, 0), 0)
    with pytest.raises(ValueError, match="scgf needs a continuing MDP"):
        scgf(tnmdp.FiniteMDP(P, R, 5, 0))
