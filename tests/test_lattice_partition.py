"""log_partition and Doob densities against dense matrix powers, the flat solver and path counts."""

import numpy as np
import pytest

import tnmdp
import tnmdp.lattice as la
from test_lattice_oracles import MODEL_PARAMETERS, dense_generator, log_matrix_power_sum, walker_log_survival

MODELS = [(name, getattr(la, factory), params)
          for name, (factory, params) in MODEL_PARAMETERS.items()]
IDS = [m[0] for m in MODELS]


def dense_initial(proc):
    return la.mps.mps_to_dense(proc.initial)


@pytest.mark.parametrize("name,factory,params", MODELS, ids=IDS)
@pytest.mark.parametrize("s", [-0.3, 0.5])
def test_log_partition_matches_dense_powers(name, factory, params, s):
    L, n = 7, 25
    proc = factory(L, **params)
    dt = proc.default_dt()
    p = np.eye(2 ** L) + dt * dense_generator(name, L, s, **params)
    want = log_matrix_power_sum(p, dense_initial(proc), n)
    for direction in ("forward", "backward"):
        got = la.log_partition(proc, s, n, direction=direction)
        # max_bond 64 >= 2^(L/2): no truncation beyond the 1e-12 relative singular-value cutoff
        np.testing.assert_allclose(got.value, want, rtol=1e-10, atol=1e-12)
        assert got.truncation_error < 1e-20 and got.dt == dt and got.n_steps == n


@pytest.mark.parametrize("name,factory,params", MODELS, ids=IDS)
def test_log_partition_matches_flat_solver(name, factory, params):
    L, n, s = 5, 12, 0.4
    proc = factory(L, **params)
    flat = proc.to_flat(n, s)
    want = tnmdp.log_partition(flat, temperature=1.0)
    np.testing.assert_allclose(la.log_partition(proc, s, n).value, want, rtol=1e-10, atol=1e-12)


def test_flat_form_at_zero_field_needs_no_reward_array():
    proc = la.east(14, 0.5)  # 16384 states: above the dense-reward limit
    flat = proc.to_flat(3, 0.0)
    assert flat.rewards.size == 1
    np.testing.assert_allclose(tnmdp.log_partition(flat), 0.0, atol=1e-12)
    with pytest.raises(ValueError, match=r"more than max_states=4096"):
        proc.to_flat(3, 0.1)


@pytest.mark.parametrize("L,starts,n", [(5, [2], 9), (6, [0, 2], 10), (7, [0, 2, 4], 12),
                                        (8, [1, 3, 5, 7], 8)])
def test_vicious_walkers_against_path_count(L, starts, n):
    proc = la.vicious_walkers(L, starts)
    want = walker_log_survival(L, starts, n)
    np.testing.assert_allclose(la.log_partition(proc, 0.0, n).value, want, rtol=1e-10)
    if L <= 7:
        flat = proc.to_flat(n)
        np.testing.assert_allclose(tnmdp.log_partition(flat), want, rtol=1e-10)


def test_vicious_walkers_backward_environments_stay_in_the_walker_sector():
    # h_t over all 2^L configurations would be dominated by configurations with fewer walkers
    # (the 4-walker part of h_0 is ~e^-15 of its norm here), losing the 4-walker entries to the
    # 1e-12 cutoff and rounding; the sector keeps them exact. Measured with the all-ones closing
    # vector instead: backward log Z off by 8e-4 relative, sample log weights up to 0.025.
    L, starts, n = 9, [1, 3, 5, 7], 16
    proc = la.vicious_walkers(L, starts)
    want = walker_log_survival(L, starts, n)
    for direction in ("forward", "backward"):
        got = la.log_partition(proc, 0.0, n, direction=direction)
        np.testing.assert_allclose(got.value, want, rtol=1e-10)
    samples = la.sample(proc, 0.0, n, 20, rng=3)
    np.testing.assert_allclose(samples.log_weights, 0.0, atol=1e-8)


def test_long_horizon_no_overflow_spins_closed_form():
    # independent spins: W_s = sum_i w_i with commuting one-site w_i, so with the one-site
    # eigenpairs (lam_j, v_j, u_j) and alpha_j = (1.v_j)(u_j.p0):
    # Z_n = sum_k C(L, k) alpha_0^k alpha_1^(L-k) (1 + dt (k lam_0 + (L-k) lam_1))^n
    from scipy.special import gammaln

    L, c, s, n = 3, 0.4, 2.0, 1000  # |mu| <= 0.37: ~e^-1 per step, Z_n ~ e^-1004
    proc = la.independent_spins(L, c)
    dt = proc.default_dt()
    w = np.array([[-c, (1 - c) * np.exp(-s)], [c * np.exp(-s), -(1 - c)]])
    lam, vec = np.linalg.eig(w)
    lam, vec = lam.real, vec.real
    alpha = vec.sum(axis=0) * np.linalg.solve(vec, [1 - c, c])
    k = np.arange(L + 1)
    mu = 1 + dt * (k * lam[0] + (L - k) * lam[1])  # eigenvalues of P_s (may be negative)
    logs = gammaln(L + 1) - gammaln(k + 1) - gammaln(L - k + 1) + n * np.log(np.abs(mu))
    signs = alpha[0] ** k * alpha[1] ** (L - k) * np.sign(mu) ** n
    top = logs.max()
    want = top + np.log((signs * np.exp(logs - top)).sum())
    got = la.log_partition(proc, s, n, max_bond=4)
    assert got.value < -745  # exp(value) underflows a double
    np.testing.assert_allclose(got.value, want, rtol=1e-10)


def test_long_horizon_east_against_rescaled_powers():
    L, s, n = 4, -2.0, 500
    proc = la.east(L, 0.4)
    p = np.eye(2 ** L) + proc.default_dt() * dense_generator("east", L, s, c=0.4)
    want = log_matrix_power_sum(p, dense_initial(proc), n)
    got = la.log_partition(proc, s, n)
    assert got.value > 710  # exp(value) overflows a double
    np.testing.assert_allclose(got.value, want, rtol=1e-10)


def test_bond_dimension_convergence_and_error_estimate():
    L, s, n = 10, 0.6, 20
    proc = la.east(L, 0.5)
    p = np.eye(2 ** L) + proc.default_dt() * dense_generator("east", L, s, c=0.5)
    want = log_matrix_power_sum(p, dense_initial(proc), n)
    errors, estimates = [], []
    for chi in (1, 2, 4, 8, 32):
        got = la.log_partition(proc, s, n, max_bond=chi)
        errors.append(abs(got.value - want))
        estimates.append(got.truncation_error)
        assert got.max_bond_used <= chi
    assert errors[-1] < 1e-10 * abs(want)
    assert all(a >= b for a, b in zip(estimates, estimates[1:]))  # discarded weight shrinks
    assert errors[0] > 1e-6 and estimates[0] > 0  # bond 1 is visibly approximate, and says so
    assert errors[3] < errors[0] / 100


@pytest.mark.parametrize("name,factory,params", MODELS, ids=IDS)
def test_doob_densities_match_dense(name, factory, params):
    L, n, s = 5, 8, 0.5
    proc = factory(L, **params)
    p = np.eye(2 ** L) + proc.default_dt() * dense_generator(name, L, s, **params)
    psi = [dense_initial(proc)]
    for _ in range(n):
        psi.append(p @ psi[-1])
    h = [np.ones(2 ** L)]
    for _ in range(n):
        h.append(p.T @ h[-1])
    h = h[::-1]
    occ = np.array([[(x >> i) & 1 for i in range(L)] for x in range(2 ** L)])
    want = np.array([(h[t] * psi[t]) @ occ / (h[t] @ psi[t]) for t in range(n + 1)])
    got = la.doob_densities(proc, s, n)
    np.testing.assert_allclose(got.densities, want, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(got.log_partition.value, np.log(h[0] @ psi[0]), rtol=1e-10)
    some = la.doob_densities(proc, s, n, times=[n, 0, 3])
    np.testing.assert_allclose(some.densities, want[[n, 0, 3]], rtol=1e-10, atol=1e-12)


def test_conditioned_walkers_never_leave():
    got = la.doob_densities(la.vicious_walkers(6, [1, 3]), 0.0, 10)
    np.testing.assert_allclose(got.densities.sum(axis=1), 2.0, rtol=1e-12)


@pytest.mark.parametrize("kwargs,match", [
    ({"n_steps": -1}, r"n_steps must be an int >= 0, got -1"),
    ({"max_bond": 0}, r"max_bond must be an int >= 1, got 0"),
    ({"cutoff": 1.0}, r"cutoff must be a number in \[0, 1\), got 1.0"),
    ({"s": float("nan")}, r"s must be a finite real number, got nan"),
    ({"direction": "up"}, r"direction must be 'forward' or 'backward', got 'up'"),
    ({"dt": 5.0}, r"dt must be in \(0, "),
])
def test_log_partition_validation(kwargs, match):
    args = {"s": 0.1, "n_steps": 3} | kwargs
    with pytest.raises(ValueError, match=match):
        la.log_partition(la.east(3, 0.5), args.pop("s"), args.pop("n_steps"), **args)


def test_doob_densities_validate_times():
    with pytest.raises(ValueError, match=r"times must be a 1-D sequence of ints in 0..3"):
        la.doob_densities(la.east(3, 0.5), 0.1, 3, times=[0, 4])


def test_discrete_process_refuses_dt():
    with pytest.raises(ValueError, match=r"dt does not apply to the discrete-time process"):
        la.log_partition(la.vicious_walkers(4, [1]), 0.0, 3, dt=0.1)
    with pytest.raises(TypeError, match=r"process must be a LatticeProcess, got int"):
        la.log_partition(3, 0.0, 3)
