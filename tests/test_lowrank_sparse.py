"""LowRankSparse: (W1 W2) ⊙ M from a truncated SVD and a Bernoulli mask."""

import numpy as np
import pytest

from tnmdp.adapters.lowrank_sparse import LowRankSparse


@pytest.fixture
def W():
    return np.random.default_rng(0).normal(size=(9, 7))


def test_full_rank_dense_reproduces_the_matrix(W):
    lrs = LowRankSparse.from_matrix(W, 7, 0.0, rng=1)
    assert lrs.mask.all() and lrs.density == 1.0
    np.testing.assert_allclose(lrs.matrix(), W, rtol=1e-12, atol=1e-12)  # SVD round-off


@pytest.mark.parametrize("rank", [1, 3, 6])
def test_truncation_is_eckart_young(W, rank):
    lrs = LowRankSparse.from_matrix(W, rank, 0.0, rng=1)
    sig = np.linalg.svd(W, compute_uv=False)
    approx = lrs.W1 @ lrs.W2
    assert np.linalg.matrix_rank(approx) == rank
    # best rank-r approximation: spectral error sigma_{r+1}, Frobenius error sqrt(sum_{k>r})
    np.testing.assert_allclose(np.linalg.norm(W - approx, 2), sig[rank], rtol=1e-10)
    np.testing.assert_allclose(np.linalg.norm(W - approx), np.sqrt(np.sum(sig[rank:] ** 2)),
                               rtol=1e-10)
    # the split is symmetric: W1^T W1 = W2 W2^T = Sigma_r
    np.testing.assert_allclose(lrs.W1.T @ lrs.W1, np.diag(sig[:rank]), atol=1e-10)
    np.testing.assert_allclose(lrs.W2 @ lrs.W2.T, np.diag(sig[:rank]), atol=1e-10)
    assert lrs.n_parameters == rank * (9 + 7)


def test_mask_density_as_asked():
    W = np.ones((200, 150))
    for s in (0.3, 0.8):
        lrs = LowRankSparse.from_matrix(W, 1, s, rng=2)
        p = 1 - s
        se = np.sqrt(p * (1 - p) / W.size)
        assert abs(lrs.density - p) < 5 * se  # binomial, 5 standard errors
        np.testing.assert_allclose(lrs.matrix(), lrs.mask.astype(float), atol=1e-12)  # ones * mask


def test_network_equals_matrix(W):
    lrs = LowRankSparse.from_matrix(W, 3, 0.5, rng=3)
    tn = lrs.to_tensor_network()
    assert tn.num_tensors == 5
    dense = tn.contract(output_inds=("i", "j")).data
    np.testing.assert_allclose(dense, (lrs.W1 @ lrs.W2) * lrs.mask, rtol=1e-12, atol=1e-14)


def test_matvec_equals_dense_product(W):
    lrs = LowRankSparse.from_matrix(W, 4, 0.6, rng=4)
    rng = np.random.default_rng(5)
    x, X = rng.normal(size=7), rng.normal(size=(7, 3))
    dense = lrs.matrix()
    np.testing.assert_allclose(lrs.matvec(x), dense @ x, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(lrs.matvec(X), dense @ X, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(lrs.entries(), dense[lrs.mask], rtol=1e-12)


def test_spectral_radius_and_norm_closed_forms():
    # non-normal 2x2: eigenvalues +-1, singular values 2 and 1/2
    lrs = LowRankSparse(np.array([[2.0, 0.0], [0.0, 0.5]]), np.array([[0.0, 1.0], [1.0, 0.0]]),
                        np.ones((2, 2), dtype=bool))
    np.testing.assert_allclose(lrs.matrix(), [[0, 2], [0.5, 0]])
    np.testing.assert_allclose(lrs.spectral_radius(), 1.0, rtol=1e-12)
    np.testing.assert_allclose(lrs.spectral_norm(), 2.0, rtol=1e-12)
    # masking the (0, 1) entry leaves a nilpotent matrix: radius 0, norm 1/2
    masked = LowRankSparse(lrs.W1, lrs.W2, [[1, 0], [1, 1]])
    np.testing.assert_allclose(masked.spectral_radius(), 0.0, atol=1e-12)
    np.testing.assert_allclose(masked.spectral_norm(), 0.5, rtol=1e-12)


def test_inputs_are_copied():
    W1, W2, M = np.ones((2, 1)), np.ones((1, 2)), np.ones((2, 2), dtype=bool)
    lrs = LowRankSparse(W1, W2, M)
    W1[0, 0], M[0, 0] = 5.0, False
    np.testing.assert_array_equal(lrs.matrix(), np.ones((2, 2)))


@pytest.mark.parametrize("call, match", [
    (lambda W: LowRankSparse.from_matrix(W, 8, 0.0), r"rank must be <= min\(m, n\) = 7, got 8"),
    (lambda W: LowRankSparse.from_matrix(W, 0, 0.0), "rank must be >= 1"),
    (lambda W: LowRankSparse.from_matrix(W, 2, 1.0),
     r"sparsity must be a real number in \[0, 1\), got 1.0"),
    (lambda W: LowRankSparse.from_matrix(W[0], 1, 0.0), r"W must be a 2-d array, got shape \(7,\)"),
    (lambda W: LowRankSparse(np.ones((2, 1)), np.ones((2, 2)), np.ones((2, 2))),
     "W2 must have 1 rows"),
    (lambda W: LowRankSparse(np.ones((2, 1)), np.ones((1, 2)), np.ones((2, 3))),
     r"mask must have shape \(2, 2\)"),
    (lambda W: LowRankSparse(np.ones((2, 1)), np.ones((1, 2)), 2 * np.ones((2, 2))),
     "mask must hold booleans"),
    (lambda W: LowRankSparse(np.array([[1.0], [np.nan]]), np.ones((1, 2)), np.ones((2, 2))),
     r"W1\[1, 0\] = nan is not finite"),
    (lambda W: LowRankSparse.from_matrix(W, 2, 0.0).matvec(np.ones(3)),
     r"x must have shape \(7,\)"),
    (lambda W: LowRankSparse.from_matrix(W, 2, 0.0).spectral_radius(), "needs a square matrix"),
])
def test_validation(W, call, match):
    with pytest.raises(ValueError, match=match):
        call(W)
