"""Exact conditioned sampling: chi-square against the exact tilted path law (small L)."""

import numpy as np
import pytest
from scipy import stats

import tnmdp.lattice as la
from test_lattice_oracles import dense_generator, walker_steps


def exact_path_law(p, p0, n):
    """``{path: p0(x_0) prod_t p[x_{t+1}, x_t] / Z}`` over the paths of positive weight."""
    law = {(x,): p0[x] for x in np.flatnonzero(p0)}
    for _ in range(n):
        nxt = {}
        for path, w in law.items():
            for y in np.flatnonzero(p[:, path[-1]]):
                nxt[path + (int(y),)] = w * p[y, path[-1]]
        law = nxt
    total = sum(law.values())
    return {path: w / total for path, w in law.items()}


def chi_square_pvalue(traj, law):
    """Goodness of fit of sampled trajectories, bins with expected count < 5 pooled."""
    L = traj.shape[-1]
    flat = (traj.astype(np.int64) * (2 ** np.arange(L))).sum(axis=-1)
    counts = {}
    for row in map(tuple, flat.tolist()):
        assert row in law  # never a path of probability 0
        counts[row] = counts.get(row, 0) + 1
    n = traj.shape[0]
    paths = list(law)
    expected = n * np.array([law[q] for q in paths])
    observed = np.array([counts.get(q, 0) for q in paths])
    big = expected >= 5
    obs = np.append(observed[big], observed[~big].sum())
    exp = np.append(expected[big], expected[~big].sum())
    keep = exp > 0
    assert keep.sum() >= 8  # a test with a handful of bins would not test much
    return stats.chisquare(obs[keep], exp[keep]).pvalue


@pytest.mark.parametrize("s", [-0.8, 0.8])
def test_east_conditioned_paths_follow_the_exact_law(s):
    L, n, n_samples = 3, 3, 20_000
    proc = la.east(L, 0.4)
    p = np.eye(2 ** L) + proc.default_dt() * dense_generator("east", L, s, c=0.4)
    law = exact_path_law(p, la.mps.mps_to_dense(proc.initial), n)
    got = la.sample(proc, s, n, n_samples, rng=11)
    assert got.trajectories.shape == (n_samples, n + 1, L)
    assert got.trajectories.dtype == np.int8
    # exact environments: every importance weight is 1 to rounding
    np.testing.assert_allclose(got.log_weights, 0.0, atol=1e-10)
    # fails with probability 1e-4 when the sampler is right
    assert chi_square_pvalue(got.trajectories, law) > 1e-4


def test_vicious_walkers_paths_follow_the_exact_law():
    # 27 surviving paths of equal probability, ~150 expected draws each
    L, n, n_samples = 5, 5, 4000
    proc = la.vicious_walkers(L, [1, 3])
    p = np.zeros((2 ** L, 2 ** L))
    for x in range(2 ** L):
        pos = [i for i in range(L) if (x >> i) & 1]
        for new in walker_steps(pos, L):
            p[sum(1 << i for i in new), x] += 0.5 ** len(pos)
    law = exact_path_law(p, la.mps.mps_to_dense(proc.initial), n)
    got = la.sample(proc, 0.0, n, n_samples, rng=12)
    np.testing.assert_allclose(got.log_weights, 0.0, atol=1e-10)
    assert chi_square_pvalue(got.trajectories, law) > 1e-4
    # conditioned walkers never collide, swap or leave
    assert (got.trajectories.sum(axis=2) == 2).all()


def test_truncated_environments_are_corrected_by_the_weights():
    """Bond-1 environments make a visibly wrong proposal: the unweighted mean of the final
    number of up spins is ~14 standard errors off the tilted law's (dense powers), the weighted
    one within 5 (seeds 1-3 and 13: |z| <= 1.6 weighted, 13.5-14.5 unweighted)."""
    L, n, s, c, n_samples = 8, 20, 2.0, 0.3, 3000
    proc = la.east(L, c)
    p = np.eye(2 ** L) + proc.default_dt() * dense_generator("east", L, s, c=c)
    # exact mean number of up spins at the final time under the tilted law
    psi = la.mps.mps_to_dense(proc.initial)
    for _ in range(n):
        psi = p @ psi
    occ = np.array([bin(x).count("1") for x in range(2 ** L)])
    want = psi @ occ / psi.sum()
    got = la.sample(proc, s, n, n_samples, rng=13, max_bond=1)
    assert got.truncation_error > 1e-3
    w = np.exp(got.log_weights - got.log_weights.max())
    final = got.trajectories[:, -1].sum(axis=1)
    estimate = (w * final).sum() / w.sum()
    ess = w.sum() ** 2 / (w * w).sum()
    assert abs(estimate - want) < 5 * final.std() / np.sqrt(ess)  # the weights correct it
    assert abs(final.mean() - want) > 8 * final.std() / np.sqrt(n_samples)  # they are needed


@pytest.mark.parametrize("kwargs,match", [
    ({"n_samples": 0}, r"n_samples must be an int >= 1, got 0"),
    ({"n_steps": -2}, r"n_steps must be an int >= 0, got -2"),
    ({"max_bond": 0}, r"max_bond must be an int >= 1, got 0"),
])
def test_sample_validation(kwargs, match):
    args = {"n_steps": 3, "n_samples": 2} | kwargs
    with pytest.raises(ValueError, match=match):
        la.sample(la.east(3, 0.5), 0.1, args.pop("n_steps"), args.pop("n_samples"), **args)
