"""Random episode length (FiniteMDP(..., stopping=pmf)): survival-weighted sweeps.

Oracles: the explicit average over ``n`` of fixed-horizon evaluations (``T`` separate
``FiniteMDP(horizon=n)``), a product-state MDP ``(s, stopped)`` with time-dependent transitions
solved by ``tnmdp.reference.backward_induction``, and discounting (a geometric length).
"""

import numpy as np
import pytest

import tnmdp
from tnmdp import reference

T, S, A = 6, 4, 3


def setup(seed, kind):
    rng = np.random.default_rng(seed)
    P = rng.random((S, A, S)) ** 2
    P /= P.sum(axis=2, keepdims=True)
    shapes = {"state_action": (S, A), "arrival": (1, 1, S), "full": (S, A, S),
              "time": (T, S, A, S)}
    R = rng.normal(size=shapes[kind])
    term = rng.normal(size=S)
    pmf = rng.dirichlet(np.ones(T))
    pmf[1] = 0.0  # a length of probability zero
    pmf /= pmf.sum()
    return P, R, term, pmf, rng.dirichlet(np.ones(S))


def truncated(R, n):
    return R[:n] if R.ndim == 4 else R


@pytest.mark.parametrize("kind", ["state_action", "arrival", "full", "time"])
@pytest.mark.parametrize("gamma", [1.0, 0.8])
def test_evaluation_is_average_of_fixed_horizons(kind, gamma):
    P, R, term, pmf, init = setup(1, kind)
    mdp = tnmdp.FiniteMDP(P, R, T, init, term, discount=gamma, stopping=pmf)
    pi = np.random.default_rng(2).dirichlet(np.ones(A), size=(T, S))
    expected = sum(pmf[n - 1] * tnmdp.evaluate(
        tnmdp.FiniteMDP(P, truncated(R, n), n, init, term, discount=gamma), pi[:n])
        for n in range(1, T + 1))
    assert tnmdp.evaluate(mdp, pi) == pytest.approx(expected, abs=1e-13)


def augmented(P, R, term, pmf, init, gamma):
    """States s (alive) and S + s (stopped); time-dependent transitions."""
    survival = np.append(pmf[::-1].cumsum()[::-1], 0.0)
    P2 = np.zeros((T, 2 * S, A, 2 * S))
    R2 = np.zeros((T, 2 * S, A, 2 * S))
    Rn = R[:, :, None] if R.ndim == 2 else R  # (S, A) -> (S, A, 1)
    Rfull = np.broadcast_to(Rn if Rn.ndim == 4 else Rn[None], (T, S, A, S))
    for t in range(T):
        cont = survival[t + 1] / survival[t] if survival[t] > 0 else 1.0
        P2[t, :S, :, :S] = cont * P
        P2[t, :S, :, S:] = (1 - cont) * P
        P2[t, S:, :, S:] = np.eye(S)[:, None, :]
        R2[t, :S, :, :S] = Rfull[t]
        R2[t, :S, :, S:] = Rfull[t] + gamma * term[None, None, :]
    return tnmdp.FiniteMDP(P2, R2, T, np.append(init, np.zeros(S)),
                           np.append(term, np.zeros(S)), discount=gamma)


@pytest.mark.parametrize("kind", ["state_action", "arrival", "full", "time"])
@pytest.mark.parametrize("gamma", [1.0, 0.9])
def test_optimum_matches_product_state_mdp(kind, gamma):
    P, R, term, pmf, init = setup(3, kind)
    mdp = tnmdp.FiniteMDP(P, R, T, init, term, discount=gamma, stopping=pmf)
    sol = tnmdp.solve(mdp)
    oracle = reference.backward_induction(augmented(P, R, term, pmf, init, gamma))
    assert sol.expected_return == pytest.approx(oracle.expected_return, abs=1e-12)
    np.testing.assert_allclose(sol.values, oracle.values[:S], rtol=0, atol=1e-12)
    assert tnmdp.evaluate(mdp, sol.policy) == pytest.approx(sol.expected_return, abs=1e-12)


def test_geometric_length_is_discounting():
    P, R, term, _, init = setup(4, "full")
    q = 0.7
    pmf = np.array([(1 - q) * q ** (n - 1) for n in range(1, T)] + [q ** (T - 1)])
    # terminal rewards paid at the stop would differ from discounting: use none
    stopped = tnmdp.FiniteMDP(P, R, T, init, stopping=pmf)
    discounted = tnmdp.FiniteMDP(P, R, T, init, discount=q)
    a, b = tnmdp.solve(stopped), tnmdp.solve(discounted)
    assert a.expected_return == pytest.approx(b.expected_return, abs=1e-13)
    np.testing.assert_array_equal(a.policy.actions, b.policy.actions)


def test_neg_inf_reward_after_the_last_possible_stop_is_harmless():
    P, R, term, _, init = setup(5, "time")
    R = R.copy()
    R[-1] = -np.inf  # the last step is never taken when Pr(N = T) = 0
    pmf = np.full(T, 1.0 / (T - 1))
    pmf[-1] = 0.0
    mdp = tnmdp.FiniteMDP(P, R, T, init, term, stopping=pmf)
    sol = tnmdp.solve(mdp)
    assert np.isfinite(sol.expected_return) and not np.isnan(sol.values).any()
    expected = sum(pmf[n - 1] * tnmdp.evaluate(tnmdp.FiniteMDP(P, R[:n], n, init, term),
                                                sol.policy[:n]) for n in range(1, T))
    assert sol.expected_return == pytest.approx(expected, abs=1e-12)


def test_stopping_validation_and_refusals():
    P, R, term, pmf, init = setup(0, "state_action")
    with pytest.raises(ValueError, match=r"stopping must be a \(T,\) = \(6,\) distribution"):
        tnmdp.FiniteMDP(P, R, T, init, stopping=pmf[:3])
    bad = pmf.copy()
    bad[2] = -0.1
    with pytest.raises(ValueError, match=r"stopping\[2\] \(Pr\(length = 3\)\) is -0.1"):
        tnmdp.FiniteMDP(P, R, T, init, stopping=bad)
    with pytest.raises(ValueError, match="stopping sums to 0.5, not 1"):
        tnmdp.FiniteMDP(P, R, T, init, stopping=pmf / 2)
    with pytest.raises(ValueError, match="stopping= needs a finite horizon"):
        tnmdp.FiniteMDP(P, R, None, init, stopping=pmf)
    mdp = tnmdp.FiniteMDP(P, R, T, init, term, stopping=pmf)
    uniform = np.full((T, S, A), 1 / A)
    for name, call in [("moments", lambda: tnmdp.moments(mdp, uniform)),
                       ("sample", lambda: tnmdp.sample(mdp, uniform, 2)),
                       ("marginals", lambda: tnmdp.marginals(mdp, uniform)),
                       ("tilted", lambda: tnmdp.log_partition(mdp)),
                       ("tilted", lambda: tnmdp.doob_transform(mdp))]:
        with pytest.raises(ValueError, match=f"{name}.* needs a fixed episode length"):
            call()


def test_pickling_keeps_the_weighted_rewards():
    import pickle

    P, R, term, pmf, init = setup(6, "state_action")
    mdp = tnmdp.FiniteMDP(P, R, T, init, term, stopping=pmf)
    again = pickle.loads(pickle.dumps(mdp))
    assert tnmdp.solve(again).expected_return == pytest.approx(
        tnmdp.solve(mdp).expected_return, abs=1e-14)
