"""theta(s) against exact diagonalisation and closed forms; convergence in the bond dimension."""

import numpy as np
import pytest

import tnmdp.lattice as la
from test_lattice_oracles import MODEL_PARAMETERS, dense_generator, spins_theta

MODELS = [(name, getattr(la, MODEL_PARAMETERS[name][0]), MODEL_PARAMETERS[name][1])
          for name in ("east", "fa", "tasep", "ssep")]  # spins: a closed form of their own
IDS = [m[0] for m in MODELS]


def exact_theta_and_densities(name, L, s, params):
    w = dense_generator(name, L, s, **params)
    vals, right = np.linalg.eig(w)
    k = int(np.argmax(vals.real))
    lvals, left = np.linalg.eig(w.T)
    kl = int(np.argmax(lvals.real))
    rho = (left[:, kl] * right[:, k]).real
    rho /= rho.sum()
    occ = np.array([[(x >> i) & 1 for i in range(L)] for x in range(2 ** L)])
    return vals[k].real, rho @ occ


@pytest.mark.parametrize("name,factory,params", MODELS, ids=IDS)
@pytest.mark.parametrize("s", [-0.3, 0.4])
def test_scgf_matches_exact_diagonalisation(name, factory, params, s):
    # L = 7: two-site problems of size 4 * 2 * 2 * 8 = 128 > 64 still go to the iterative
    # local solvers (eigsh for FA, eigs for TASEP and SSEP; East's bonds stay below that)
    L = 7
    proc = factory(L, **params)
    want, want_rho = exact_theta_and_densities(name, L, s, params)
    got = la.scgf(proc, s, max_bond=8, densities=True, rng=0)
    assert got.method == ("dmrg" if name in ("east", "fa") else "arnoldi")
    assert got.converged and got.residual < 1e-10
    # 8 = 2^floor(L/2): the MPS is exact, so only eigensolver rounding remains
    np.testing.assert_allclose(got.value, want, rtol=1e-10, atol=1e-13)
    gap = np.diff(np.sort(np.linalg.eigvals(dense_generator(name, L, s, **params)).real)[-2:])[0]
    if gap > 1e-3:  # in the East/FA inactive phase the top two levels are degenerate to < 1e-8:
        # the eigenvector (and so the densities) is then defined only to rounding / gap
        np.testing.assert_allclose(got.densities, want_rho, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("s", [-0.5, 0.2, 1.0])
def test_independent_spins_exact_at_bond_one(s):
    got = la.scgf(la.independent_spins(12, 0.3), s, max_bond=1)
    np.testing.assert_allclose(got.value, spins_theta(12, 0.3, s), rtol=1e-12, atol=1e-14)
    assert got.max_bond_used == 1


def derivative_at_zero(proc, h=1e-5, **kwargs):
    """``-theta'(0)`` by central differences.

    Truncation ``h^2 theta_3 / 6`` with ``theta_3`` the third derivative (up to ~1e4 near the
    East crossover): ~2e-7 relative at h = 1e-5; theta is converged to ~1e-13 (tol 1e-13),
    adding ~1e-8.
    """
    plus = la.scgf(proc, h, rng=1, tol=1e-13, **kwargs).value
    minus = la.scgf(proc, -h, rng=1, tol=1e-13, **kwargs).value
    return -(plus - minus) / (2 * h)


def test_east_mean_activity_closed_form():
    L, c = 8, 0.3
    want = 2 * c * (1 - c) * (1 + (L - 1) * c)
    np.testing.assert_allclose(derivative_at_zero(la.east(L, c), max_bond=8), want, rtol=1e-6)


def test_tasep_mean_current_derrida():
    L = 7
    want = (L + 2) / (2 * (2 * L + 1))  # alpha = beta = 1 (Derrida, Evans, Hakim, Pasquier 1993)
    np.testing.assert_allclose(derivative_at_zero(la.tasep(L, 1.0, 1.0), max_bond=8), want,
                               rtol=1e-6)


def test_ssep_mean_current_closed_form():
    L, alpha, gamma, delta, beta = 7, 0.7, 0.2, 0.1, 0.5
    a, b = 1 / (alpha + gamma), 1 / (delta + beta)
    want = (alpha * a - delta * b) / (L + a + b - 1)
    got = derivative_at_zero(la.ssep(L, alpha, gamma, delta, beta), max_bond=8)
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_convergence_in_bond_dimension_is_reported():
    proc = la.east(12, 0.5)  # bond 8 and 16 both truncate at L = 12 (residual ~1e-7 at 16)
    got = la.scgf(proc, -0.1, max_bond=16, tol=1e-12)
    chis = [chi for chi, _ in got.bond_history]
    assert chis == [8, 16]
    change = abs(got.bond_history[-1][1] - got.bond_history[-2][1])
    assert change < 1e-8 * abs(got.value)
    small = la.scgf(proc, -0.1, max_bond=2)  # too small: visibly worse residual
    assert small.residual > 100 * got.residual
    assert abs(small.value - got.value) > 1e-6


@pytest.mark.slow  # 0.1 s, but ~8 s in a new virtualenv: quimb compiles its SVD/QR kernels
def test_quimb_dmrg_option_agrees_on_a_gapped_case():
    got = la.scgf(la.independent_spins(6, 0.4), 0.3, method="quimb", max_bond=8)
    np.testing.assert_allclose(got.value, spins_theta(6, 0.4, 0.3), rtol=1e-9)
    assert got.method == "quimb"


def test_single_site_is_exact():
    got = la.scgf(la.tasep(1, 0.3, 0.6), 0.5, densities=True)
    want = np.linalg.eigvals(dense_generator("tasep", 1, 0.5, alpha=0.3, beta=0.6)).real.max()
    np.testing.assert_allclose(got.value, want, rtol=1e-12)


@pytest.mark.parametrize("kwargs,match", [
    ({"method": "power"}, r"method must be 'auto', 'dmrg', 'arnoldi' or 'quimb', got 'power'"),
    ({"max_bond": 0}, r"max_bond must be an int >= 1, got 0"),
    ({"tol": 0.0}, r"tol must be a positive number, got 0.0"),
    ({"max_sweeps": 0}, r"max_sweeps must be an int >= 1, got 0"),
])
def test_scgf_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        la.scgf(la.east(4, 0.5), 0.1, **kwargs)


def test_scgf_refusals():
    with pytest.raises(ValueError, match=r"method='dmrg' needs a symmetrisable process"):
        la.scgf(la.tasep(4, 1, 1), 0.1, method="dmrg")
    with pytest.raises(ValueError, match=r"scgf does not apply to the discrete-time process"):
        la.scgf(la.vicious_walkers(4, [1]), 0.1)
    with pytest.raises(ValueError, match=r"s must be a finite real number"):
        la.scgf(la.east(4, 0.5), float("nan"))
