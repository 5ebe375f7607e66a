"""Conditioned random walks against closed forms.

Oracles are the classical path counts, computed here with exact integers (``math.comb``): Catalan
numbers (excursions), central binomials (bridges), ``binom(T, floor(T/2))`` (meanders), ballot
numbers (end at ``h`` above a floor ``m``: ``binom(T, (T+h)/2) - binom(T, (T+h)/2 - h + m - 1)``)
and the log-gamma form of the Catalan numbers for T = 10,000. With hard constraints, uniform
reference and ``tau = 1``, ``soft_value = log_partition = log(#paths / 2^T)``; tolerance 1e-12
relative on these logs (1e-10 at T = 10,000), far below the 1e-10 the issue allows.
"""

import itertools
import math

import numpy as np
import pytest
from scipy import stats

import tnmdp
from tnmdp.backends import worthwhile
from tnmdp.models.walks import (admissible, conditioned_density, conditioned_walk,
                                log_path_count, walk_reference)
from tnmdp.tilted import event_probability


def catalan(n):
    return math.comb(2 * n, n) // (n + 1)


def ballot(T, h, m):
    """Paths of T steps from 0 to h that stay >= m (reflection at m - 1)."""
    k = (T + h) // 2
    return math.comb(T, k) - (math.comb(T, k - h + m - 1) if k - h + m - 1 >= 0 else 0)


def log_prob(count, T):
    return math.log(count) - T * math.log(2)


# the longest horizons, 182 and 181, are the shortest with T S A = T (2T + 1) 2 >= MIN_WORK:
# solve and log_partition take the compiled kernels there, numpy below
CLOSED_FORMS = [
    ("excursion", dict(floor=0, end=0), lambda T: catalan(T // 2), [2, 10, 100, 182]),
    ("bridge", dict(end=0), lambda T: math.comb(T, T // 2), [2, 10, 100, 182]),
    ("meander", dict(floor=0), lambda T: math.comb(T, T // 2), [1, 9, 100, 181]),
    ("ballot", dict(floor=-3, end=4), lambda T: ballot(T, 4, -3), [4, 10, 100, 182]),
]


@pytest.mark.parametrize("kind, cond, count, horizons", CLOSED_FORMS,
                         ids=[c[0] for c in CLOSED_FORMS])
def test_log_counts_equal_closed_forms(kind, cond, count, horizons):
    for T in horizons:
        mdp = conditioned_walk(T, hard=True, **cond)
        assert worthwhile(mdp) == (T > 100)
        exact = log_prob(count(T), T)
        sol = tnmdp.solve(mdp, temperature=1.0)
        assert sol.soft_value == pytest.approx(exact, rel=1e-12), T
        assert tnmdp.log_partition(mdp) == pytest.approx(exact, rel=1e-12), T
        uniform = tnmdp.Policy.uniform(T, 2 * T + 1, 2)
        assert event_probability(mdp, uniform, log=True) == pytest.approx(exact, rel=1e-12), T
        assert log_path_count(T, **cond) - T * math.log(2) == pytest.approx(exact, rel=1e-14)
        # the soft policy generates only admissible paths: the event has probability one
        assert event_probability(mdp, sol.policy) == pytest.approx(1.0, rel=1e-12), T


def test_named_models_and_empty_events():
    T = 12
    for factory, cond in [(tnmdp.models.excursion, dict(floor=0, end=0)),
                          (tnmdp.models.bridge, dict(end=0)), (tnmdp.models.meander,
                                                               dict(floor=0))]:
        a, b = factory(T, hard=True), conditioned_walk(T, hard=True, **cond)
        assert tnmdp.log_partition(a) == tnmdp.log_partition(b)
    odd = tnmdp.models.excursion(11, hard=True)
    assert tnmdp.solve(odd, temperature=1.0).soft_value == -math.inf
    assert log_path_count(11, floor=0, end=0) == -math.inf


def test_samples_are_uniform_over_the_14_dyck_paths():
    mdp = tnmdp.models.excursion(8, hard=True)
    sol = tnmdp.solve(mdp, temperature=1.0)
    doob = tnmdp.doob_transform(mdp)
    n = 14_000
    for states in (tnmdp.sample(mdp, sol.policy, n, rng=1).states,
                   tnmdp.sample(doob, tnmdp.Policy.uniform(8, 17, 1), n, rng=2).states):
        assert admissible(states, 8, floor=0, end=0).all()
        _, counts = np.unique(states, axis=0, return_counts=True)
        assert counts.size == catalan(4) == 14
        # chi-square with 13 degrees of freedom; seeded, so deterministic; p > 0.01
        assert stats.chisquare(counts).pvalue > 0.01


def test_policy_marginals_equal_exact_density():
    for cond in (dict(floor=0, end=0), dict(end=0), dict(floor=0), dict(floor=-2, end=2)):
        mdp = conditioned_walk(40, hard=True, **cond)
        density = tnmdp.marginals(mdp, tnmdp.solve(mdp, temperature=1.0).policy)
        np.testing.assert_allclose(density, conditioned_density(40, **cond), rtol=1e-10,
                                   atol=1e-14)


@pytest.mark.parametrize("cond", [dict(floor=0), dict(floor=-2), dict(), dict(floor=-1, end=2)],
                         ids=["meander", "floor-2", "free", "ballot"])
def test_conditioned_density_equals_path_enumeration(cond):
    # every one of the 2^10 paths, counted directly: an oracle independent of the reflection sums
    T = 10
    paths = np.cumsum(2 * np.array(list(itertools.product((0, 1), repeat=T))) - 1, axis=1)
    paths = np.hstack([np.zeros((len(paths), 1), dtype=int), paths])
    ok = admissible(paths + T, T, **cond)  # state indices x + T
    exact = np.zeros((T + 1, 2 * T + 1))
    for t in range(T + 1):
        exact[t] = np.bincount(paths[ok, t] + T, minlength=2 * T + 1) / ok.sum()
    np.testing.assert_allclose(conditioned_density(T, **cond), exact, rtol=1e-12, atol=1e-15)


def test_conditioned_density_with_a_free_end_needs_quadratic_memory():
    # regression: the free-end sum over ends built a (T+1, S, S) array (T = 400: 14.7 GB)
    import tracemalloc

    tracemalloc.start()
    try:
        density = conditioned_density(400, floor=0)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20 * density.nbytes  # O(T^2): a few arrays of the output's size (2.6 MB)
    np.testing.assert_allclose(density.sum(axis=1), 1.0, rtol=1e-12)
    # the meander's end is spread like binom(T, T/2) paths: Pr(x_T = 0) = C(400, 200)/C(400, 200)
    # restricted to even ends; at the end time every mass sits at an even height >= 0
    assert density[-1][(np.arange(-400, 401) < 0) | (np.arange(-400, 401) % 2 == 1)].sum() == 0


def test_excursion_2000_finite_and_small():
    T, n = 2000, 1000
    mdp = tnmdp.models.excursion(T, hard=True)
    sol = tnmdp.solve(mdp, temperature=1.0)
    exact = math.lgamma(2 * n + 1) - math.lgamma(n + 1) - math.lgamma(n + 2) - T * math.log(2)
    assert sol.soft_value == pytest.approx(exact, rel=1e-11)
    assert sol.expected_return == 0.0 and np.isfinite(sol.values).any()
    assert sol.policy.nbytes < 100 * 2**20  # soft values, not a dense (T, S, A) policy
    site = sol.policy[T // 2]
    assert site.shape == (2 * T + 1, 2) and not np.isnan(site).any()


@pytest.mark.slow
def test_excursion_10000_equals_lgamma_formula():
    T, n = 10_000, 5_000
    mdp = tnmdp.models.excursion(T, hard=True)
    exact = math.lgamma(2 * n + 1) - math.lgamma(n + 1) - math.lgamma(n + 2) - T * math.log(2)
    assert tnmdp.log_partition(mdp) == pytest.approx(exact, rel=1e-10)
    sol = tnmdp.solve(mdp, temperature=1.0)
    assert sol.soft_value == pytest.approx(exact, rel=1e-10)
    assert sol.policy.nbytes < 256 * 2**20
    site = sol.policy[T - 1]
    assert not np.isnan(site).any()


def test_backward_sweep_always_finds_excursions_forward_can_stall():
    mdp = tnmdp.models.excursion(20)
    forward = [tnmdp.solve(mdp, direction="forward", initial_policy="random", rng=seed)
               for seed in range(6)]
    backward = [tnmdp.solve(mdp, direction="backward", initial_policy="random", rng=seed)
                for seed in range(6)]
    assert all(s.expected_return == pytest.approx(1.0, abs=1e-12) for s in backward)
    assert min(s.expected_return for s in forward) < 0.5


def test_biased_reference_walk():
    T, p = 10, 0.6
    ref = walk_reference(T, p)
    assert ref.shape == (T, 2 * T + 1, 2) and ref.nbytes == (2 * T + 1) * 2 * 8
    mdp = tnmdp.models.excursion(T, hard=True)
    # every excursion has T/2 up moves: Pr = C_5 p^5 (1-p)^5
    exact = math.log(catalan(5) * p ** 5 * (1 - p) ** 5)
    assert tnmdp.log_partition(mdp, reference_policy=ref) == pytest.approx(exact, rel=1e-12)
    sol = tnmdp.solve(mdp, temperature=1.0, reference_policy=ref)
    assert sol.soft_value == pytest.approx(exact, rel=1e-12)


def test_noise_is_symmetric_mixing():
    mdp = conditioned_walk(5, noise=0.25)
    P = mdp.transition_matrix(0).toarray().reshape(11, 2, 11)
    assert P[5, 1, 6] == 0.75 and P[5, 1, 4] == 0.25 and P[5, 0, 4] == 0.75


def test_penalty_rewards_follow_the_paper():
    mdp = tnmdp.models.excursion(4)
    # up, down, down, up: below 0 at t = 3 (reward -1), ends at 0 (reward 1): G = 0
    policy = np.zeros((4, 9, 2))
    for t, a in enumerate([1, 0, 0, 1]):
        policy[t, :, a] = 1.0
    assert tnmdp.evaluate(mdp, policy) == 0.0
    assert tnmdp.solve(mdp).expected_return == 1.0


def test_bad_arguments():
    with pytest.raises(ValueError, match=r"reference_policy=walk_reference\(10, 0.7\)"):
        conditioned_walk(10, p_up=0.7)
    with pytest.raises(ValueError, match="horizon must be an int >= 1, got 0"):
        tnmdp.models.excursion(0)
    with pytest.raises(ValueError, match=r"noise must be a number in \[0, 0.5\], got 0.6"):
        tnmdp.models.bridge(4, noise=0.6)
    with pytest.raises(ValueError, match=r"p_up must be a probability in \(0, 1\), got 1.0"):
        walk_reference(4, 1.0)
    with pytest.raises(ValueError, match="floor must be <= 0"):
        log_path_count(4, floor=1)
    with pytest.raises(ValueError, match="no path of 5 steps"):
        conditioned_density(5, floor=0, end=0)


def test_plots_are_written(tmp_path):
    """The three walk figures are drawn and saved (small horizons: the cost is mostly saving
    each PNG, ~0.25 s whatever the horizon)."""
    pytest.importorskip("matplotlib")
    import matplotlib.pyplot as plt

    from tnmdp.plotting import density_figure, plot_walk_demo, sweep_figure

    plot_walk_demo("meander", 8, soft=True, filename=tmp_path / "demo.png", n_samples=20)
    mdp = tnmdp.models.excursion(10)
    initial = np.random.default_rng(0).random((10, mdp.n_states, 2))
    initial /= initial.sum(axis=2, keepdims=True)
    snapshots = {d: (tnmdp.solve(mdp, direction=d, initial_policy=initial, max_sweeps=1,
                                 callback=lambda state: state.site == (5 if d == "backward" else 4)),
                     tnmdp.solve(mdp, direction=d, initial_policy=initial))
                 for d in ("forward", "backward")}
    fig, summary = sweep_figure(snapshots, rng=0, n_samples=20, filename=tmp_path / "fig2.png")
    plt.close(fig)
    assert summary["backward/full"]["expected_return"] == pytest.approx(1.0, abs=1e-12)
    assert summary["backward/full"]["admissible_fraction"] == 1.0
    fig, errors = density_figure(10, filename=tmp_path / "density.png")
    plt.close(fig)
    assert max(errors.values()) < 1e-12
    for name in ("demo.png", "fig2.png", "density.png"):
        assert (tmp_path / name).stat().st_size > 10_000
    with pytest.raises(ValueError, match="kind must be one of"):
        plot_walk_demo("loop", 4, filename=tmp_path / "x.png")
