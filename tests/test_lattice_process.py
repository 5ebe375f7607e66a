"""LatticeProcess, its MPO, generator and flat form against dense generators built from the rules."""

import numpy as np
import pytest

import tnmdp.lattice as la
from tnmdp.lattice import mps as M
from test_lattice_oracles import MODEL_PARAMETERS, dense_generator, walker_steps

MODELS = [(name, getattr(la, factory), params)
          for name, (factory, params) in MODEL_PARAMETERS.items()]
IDS = [m[0] for m in MODELS]


@pytest.mark.parametrize("name,factory,params", MODELS, ids=IDS)
@pytest.mark.parametrize("L", [1, 2, 3, 6])
@pytest.mark.parametrize("s", [-0.4, 0.0, 0.7])
def test_generator_and_mpo_match_rules(name, factory, params, L, s):
    proc = factory(L, **params)
    want = dense_generator(name, L, s, **params)
    # rounding of sums of O(1) rates
    np.testing.assert_allclose(proc.generator(s).toarray(), want, rtol=0, atol=1e-14)
    np.testing.assert_allclose(M.mpo_to_dense(proc.mpo_arrays(s, kind="generator")), want,
                               rtol=0, atol=1e-13)
    dt = proc.default_dt()
    p = M.mpo_to_dense(proc.mpo_arrays(s, kind="transfer"))
    np.testing.assert_allclose(p, np.eye(2 ** L) + dt * want, rtol=0, atol=1e-13)
    if s == 0:
        assert (p >= -1e-15).all()  # dt is small enough: P is stochastic
        np.testing.assert_allclose(p.sum(axis=0), 1.0, rtol=0, atol=1e-13)


@pytest.mark.parametrize("name,factory,params", MODELS, ids=IDS)
def test_mpo_bond_dimension_independent_of_L(name, factory, params):
    small = M.max_bond_of(factory(6, **params).mpo_arrays(0.3))
    large = M.max_bond_of(factory(40, **params).mpo_arrays(0.3))
    assert small == large <= 6


def test_quimb_mpo_is_the_generator():
    proc = la.east(4, 0.4)
    q = np.asarray(proc.mpo(0.5, kind="generator").to_dense())
    perm = np.array([int(format(k, "04b")[::-1], 2) for k in range(16)])  # quimb: site 0 first
    np.testing.assert_allclose(q, proc.generator(0.5).toarray()[np.ix_(perm, perm)], atol=1e-14)


@pytest.mark.parametrize("name,factory,params", MODELS, ids=IDS)
def test_symmetrisation(name, factory, params):
    proc = factory(5, **params)
    assert proc.symmetrisable == (name in ("spins", "east", "fa"))
    if proc.symmetrisable:
        sym = M.mpo_to_dense(proc.mpo_arrays(0.6, kind="generator", symmetrise=True))
        np.testing.assert_allclose(sym, sym.T, atol=1e-14)
        ev_sym = np.sort(np.linalg.eigvalsh(sym))
        ev = np.sort(np.linalg.eigvals(dense_generator(name, 5, 0.6, **params)).real)
        np.testing.assert_allclose(ev_sym, ev, atol=1e-10)


def test_generator_shift_for_residuals():
    proc = la.tasep(3, 0.4, 0.5)
    got = M.mpo_to_dense(proc.mpo_arrays(0.2, kind="generator", shift=-1.5))
    np.testing.assert_allclose(got, proc.generator(0.2).toarray() - 1.5 * np.eye(8), atol=1e-14)


@pytest.mark.parametrize("L,starts", [(1, [0]), (4, [0, 2]), (6, [1, 2, 4]), (5, [4])])
def test_vicious_walker_transfer_matches_enumeration(L, starts):
    proc = la.vicious_walkers(L, starts)
    p = M.mpo_to_dense(proc.mpo_arrays())
    want = np.zeros((2 ** L, 2 ** L))
    for x in range(2 ** L):
        pos = [i for i in range(L) if (x >> i) & 1]
        for new in walker_steps(pos, L):
            want[sum(1 << i for i in new), x] += 0.5 ** len(pos)
    np.testing.assert_allclose(p, want, atol=1e-15)


def test_initial_defaults():
    np.testing.assert_allclose(M.mps_to_dense(la.east(2, 0.3).initial), [0.49, 0.21, 0.21, 0.09])
    np.testing.assert_allclose(la.tasep(2, 1, 1).initial_vector(), [1, 0, 0, 0])
    np.testing.assert_allclose(la.vicious_walkers(3, [0, 2]).initial_vector(), np.eye(8)[5])


def test_mps_initial_state_is_accepted():
    rng = np.random.default_rng(0)
    sites = [rng.random((1, 2, 2)), rng.random((2, 2, 2)), rng.random((2, 2, 1))]
    total = M.mps_to_dense(sites).sum()
    sites[0] = sites[0] / total
    proc = la.east(3, 0.5, initial=sites)
    np.testing.assert_allclose(proc.initial_vector(), M.mps_to_dense(sites))


@pytest.mark.parametrize("call,match", [
    (lambda: la.east(0, 0.5), r"L must be >= 1, got 0"),
    (lambda: la.east(2.5, 0.5), r"L must be an int, got 2.5"),
    (lambda: la.east(3, 1.5), r"c must be a number in \[0, 1\], got 1.5"),
    (lambda: la.fa(3, -0.1), r"c must be a number in \[0, 1\], got -0.1"),
    (lambda: la.tasep(3, -1.0, 1.0), r"alpha must be a finite rate >= 0, got -1.0"),
    (lambda: la.ssep(3, 1, 1, float("nan"), 1), r"delta must be a finite rate >= 0, got nan"),
    (lambda: la.vicious_walkers(4, [0, 4]), r"starts\[1\] = 4 is outside the lattice 0..3"),
    (lambda: la.vicious_walkers(4, [1, 1]), r"starts has walker position 1 twice"),
    (lambda: la.vicious_walkers(4, []), r"starts is empty"),
    (lambda: la.east(3, 0.5, initial=np.ones((3, 2))), r"initial\[0\] sums to 2, not 1"),
    (lambda: la.east(3, 0.5, initial=np.ones((2, 2)) / 2), r"initial must be an \(L, d\) = \(3, 2\)"),
    (lambda: la.east(2, 0.5, initial=[[1.5, -0.5], [1, 0]]), r"initial\[0, 1\] is -0.5"),
    (lambda: la.LatticeProcess.from_terms(2, [(1, np.ones((4, 4)) - np.eye(4), None)],
                                          np.tile([1, 0], (2, 1))),
     r"terms\[0\] acts on sites 1..2, outside 0..1"),
    (lambda: la.LatticeProcess.from_terms(2, [(0, -np.eye(2)[::-1], None)], np.tile([1, 0], (2, 1))),
     r"terms\[0\].rates\[0, 1\] is -1.0; rates must be >= 0"),
    (lambda: la.LatticeProcess.from_terms(2, [(0, np.ones((2, 2)), None)], np.tile([1, 0], (2, 1))),
     r"terms\[0\].rates\[0, 0\] is 1.0; the diagonal must be 0"),
    (lambda: la.east(3, 0.5).check_dt(10.0), r"dt must be in \(0, 1/max_exit_rate_bound\]"),
    (lambda: la.east(3, 0.5).generator(0.1, max_states=4), r"d\^L = 2\^3 = 8 states, more than"),
    (lambda: la.east(3, 0.5).generator(float("inf")), r"s must be a finite real number"),
    (lambda: la.vicious_walkers(3, [1]).generator(), r"generator does not apply to the discrete"),
    (lambda: la.vicious_walkers(3, [1]).default_dt(), r"does not apply to the discrete-time"),
    (lambda: la.tasep(3, 1, 1).mpo_arrays(symmetrise=True), r"symmetrise=True needs an equilibrium"),
    (lambda: la.east(3, 0.5).mpo_arrays(kind="rates"), r"kind must be 'generator' or 'transfer'"),
])
def test_validation_messages(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()


def test_importing_the_lattice_package_does_not_import_quimb():
    import subprocess
    import sys

    code = "import sys, tnmdp, tnmdp.lattice; print('quimb' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_every_public_name_exists_once():
    assert len(la.__all__) == len(set(la.__all__))
    for name in la.__all__:
        assert getattr(la, name) is not None


def test_site_arrays_must_chain_their_bonds():
    from tnmdp.lattice.process import LatticeProcess

    flat = np.full((2, 2), 0.5)
    with pytest.raises(ValueError, match=r"site_tensors\[1\] has left bond 3, site_tensors\[0\] "
                                         r"right bond 2"):
        LatticeProcess.from_transfer([np.ones((1, 2, 2, 2)), np.ones((3, 1, 2, 2))], flat)
    with pytest.raises(ValueError, match="the end bonds of site_tensors must have dimension 1"):
        LatticeProcess.from_transfer([np.ones((1, 2, 2, 2)), np.ones((2, 2, 2, 2))], flat)
    with pytest.raises(ValueError, match=r"initial\[1\] has left bond 1, initial\[0\] right bond 2"):
        la.east(2, 0.3, initial=[np.ones((1, 2, 2)), np.ones((1, 2, 1))])
    with pytest.raises(ValueError, match="the end bonds of the initial MPS must have dimension 1"):
        la.east(2, 0.3, initial=[np.ones((1, 2, 2)), np.ones((2, 2, 2))])
