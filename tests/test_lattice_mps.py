"""MPS/MPO primitives against dense linear algebra on the flat vectors (small L)."""

import numpy as np
import pytest
from scipy import stats

from tnmdp.lattice import mps as M


def random_mps(rng, L, d=2, bond=3, positive=False):
    dims = [1] + [bond] * (L - 1) + [1]
    draw = rng.random if positive else rng.standard_normal
    return [draw((dims[i], d, dims[i + 1])) for i in range(L)]


def random_mpo(rng, L, d=2, bond=2):
    dims = [1] + [bond] * (L - 1) + [1]
    return [rng.standard_normal((dims[i], dims[i + 1], d, d)) for i in range(L)]


def dense_from_sites(mps):
    """Independent flat vector: sum over bonds written as an explicit enumeration."""
    L, d = len(mps), mps[0].shape[1]
    v = np.zeros(d ** L)
    for flat in range(d ** L):
        x = [(flat // d ** i) % d for i in range(L)]
        m = np.ones((1, 1))
        for i in range(L):
            m = m @ mps[i][:, x[i], :]
        v[flat] = m[0, 0]
    return v


def test_mps_to_dense_matches_enumeration():
    rng = np.random.default_rng(0)
    a = random_mps(rng, 5, d=3)
    np.testing.assert_allclose(M.mps_to_dense(a), dense_from_sites(a), rtol=1e-12, atol=1e-12)


def test_mpo_to_dense_matches_site_by_site_action():
    rng = np.random.default_rng(1)
    w = random_mpo(rng, 4, d=2)
    dense = M.mpo_to_dense(w)
    # column x of W is the MPS with sites W_i[:, :, :, x_i]
    for flat in range(16):
        x = [(flat >> i) & 1 for i in range(4)]
        col = [w[i][:, :, :, x[i]].transpose(0, 2, 1) for i in range(4)]
        np.testing.assert_allclose(dense[:, flat], dense_from_sites(col), rtol=1e-12, atol=1e-12)


def test_apply_mpo_exact_without_truncation():
    rng = np.random.default_rng(2)
    a, w = random_mps(rng, 6), random_mpo(rng, 6)
    res = M.apply_mpo(w, a)
    want = M.mpo_to_dense(w) @ M.mps_to_dense(a)
    got = np.exp(res.log_norm) * M.mps_to_dense(res.mps)
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10 * np.abs(want).max())
    assert res.discarded_weight < 1e-24
    np.testing.assert_allclose(np.linalg.norm(M.mps_to_dense(res.mps)), 1.0, rtol=1e-12)
    assert res.max_bond <= 6


@pytest.mark.parametrize("max_bond", [1, 2, 3, 4])
def test_truncation_error_bounded_by_discarded_weight(max_bond):
    rng = np.random.default_rng(3)
    a, w = random_mps(rng, 7, bond=4), random_mpo(rng, 7)
    want = M.mpo_to_dense(w) @ M.mps_to_dense(a)
    res = M.apply_mpo(w, a, max_bond=max_bond)
    got = np.exp(res.log_norm) * M.mps_to_dense(res.mps)  # the truncated, unnormalised product
    err2 = np.linalg.norm(got - want) ** 2 / np.linalg.norm(want) ** 2
    assert res.max_bond <= max_bond
    assert res.discarded_weight > 0
    # Oseledets' bound for sequential truncation, plus rounding
    assert err2 <= res.discarded_weight * (1 + 1e-9) + 1e-14


def direct_sum(a, b):
    """MPS of ``a + b`` (block-diagonal bonds)."""
    L, out = len(a), []
    for i in range(L):
        x, y = a[i], b[i]
        if i == 0:
            out.append(np.concatenate([x, y], axis=2))
        elif i == L - 1:
            out.append(np.concatenate([x, y], axis=0))
        else:
            z = np.zeros((x.shape[0] + y.shape[0], x.shape[1], x.shape[2] + y.shape[2]))
            z[: x.shape[0], :, : x.shape[2]] = x
            z[x.shape[0]:, :, x.shape[2]:] = y
            out.append(z)
    return out


def test_cutoff_drops_only_small_singular_values():
    rng = np.random.default_rng(4)
    # a bond-2 state plus a 1e-4 perturbation of bond 3: cutoff 1e-2 drops the perturbation only
    big, small = random_mps(rng, 8, bond=2), random_mps(rng, 8, bond=3)
    small[0] = small[0] * 1e-4 * np.linalg.norm(M.mps_to_dense(big)) / np.linalg.norm(
        M.mps_to_dense(small))
    a = direct_sum(big, small)
    exact = M.mps_to_dense(big) + M.mps_to_dense(small)
    np.testing.assert_allclose(M.mps_to_dense(a), exact, rtol=1e-12, atol=1e-15)
    loose, tight = M.compress(a, cutoff=1e-2), M.compress(a, cutoff=1e-13)
    assert loose.max_bond == 2 and 0 < loose.discarded_weight < 1e-7
    np.testing.assert_allclose(np.exp(tight.log_norm) * M.mps_to_dense(tight.mps), exact,
                               rtol=1e-10, atol=1e-12 * np.abs(exact).max())
    assert tight.discarded_weight < 1e-24


def test_log_inner_and_expectation_match_dense():
    rng = np.random.default_rng(5)
    a, b, w = random_mps(rng, 6), random_mps(rng, 6), random_mpo(rng, 6)
    va, vb = M.mps_to_dense(a), M.mps_to_dense(b)
    for (logv, sign), want in [(M.log_inner(a, b), va @ vb),
                               (M.log_expectation(a, w, b), va @ M.mpo_to_dense(w) @ vb)]:
        np.testing.assert_allclose(sign * np.exp(logv), want, rtol=1e-10)


def test_log_inner_does_not_overflow_on_long_chains():
    L = 400
    a = M.product_mps(np.full((L, 2), 10.0))
    logv, sign = M.log_inner(a, a)
    # <a|a> = (2 * 100)^L ~ e^2119 and ||a|| ~ e^1060: both overflow a double (e^709.8)
    np.testing.assert_allclose(logv, L * np.log(200.0), rtol=1e-12)
    assert sign == 1.0
    res = M.compress(a)
    np.testing.assert_allclose(res.log_norm, 0.5 * L * np.log(200.0), rtol=1e-12)


def test_local_expectations_match_dense():
    rng = np.random.default_rng(6)
    a, b = random_mps(rng, 5, positive=True), random_mps(rng, 5, positive=True)
    va, vb = M.mps_to_dense(a), M.mps_to_dense(b)
    got = M.local_expectations(a, b, np.diag([0.0, 1.0]))
    flat = np.arange(32)
    for i in range(5):
        n_i = (flat >> i) & 1
        np.testing.assert_allclose(got[i], (va * n_i) @ vb / (va @ vb), rtol=1e-12)


def test_hadamard_is_elementwise():
    rng = np.random.default_rng(7)
    a, b = random_mps(rng, 5), random_mps(rng, 5)
    np.testing.assert_allclose(M.mps_to_dense(M.hadamard(a, b)),
                               M.mps_to_dense(a) * M.mps_to_dense(b), rtol=1e-12)


def test_quimb_round_trip_matches_dense():
    rng = np.random.default_rng(8)
    a, w = random_mps(rng, 4), random_mpo(rng, 4)
    qa, qw = M.to_quimb_mps(a), M.to_quimb_mpo(w)
    # quimb's dense order has site 0 most significant: reverse ours to compare
    perm = np.array([int(format(k, "04b")[::-1], 2) for k in range(16)])
    np.testing.assert_allclose(np.asarray(qa.to_dense()).ravel(), M.mps_to_dense(a)[perm], rtol=1e-12)
    np.testing.assert_allclose(np.asarray(qw.to_dense()), M.mpo_to_dense(w)[np.ix_(perm, perm)],
                               rtol=1e-12)


def test_sampling_is_linear_in_the_mps():
    rng = np.random.default_rng(9)
    a = random_mps(rng, 4, positive=True)
    p = M.mps_to_dense(a)
    p = p / p.sum()
    n = 40_000
    x, logq, n_neg = M.sample_configurations(a, n, np.random.default_rng(10))
    assert x.dtype == np.int8 and x.shape == (n, 4) and n_neg == 0
    flat = (x.astype(int) * (2 ** np.arange(4))).sum(axis=1)
    np.testing.assert_allclose(logq, np.log(p[flat]), rtol=1e-10)
    counts = np.bincount(flat, minlength=16)
    # chi-square goodness of fit against the exact law; fails with probability 1e-4 if correct
    assert stats.chisquare(counts, n * p).pvalue > 1e-4
