"""Converters in and out of gymnasium, pymdptoolbox and QuantEcon, checked against each
library's own model and solvers (never against tnmdp's reading of the converted model)."""

import numpy as np
import pytest
import scipy.sparse as sp

import tnmdp
from tnmdp.interop import (from_gymnasium, from_mdptoolbox, from_quantecon, to_gymnasium,
                           to_mdptoolbox, to_quantecon)

gymnasium = pytest.importorskip("gymnasium")

# Backward induction on the env's own dict model P[s][a] = [(p, s', r, terminated)], in
# floating point: sums of ~T terms of size <= 100 agree to ~1e-12 relative.
RTOL = 1e-10

ENVS = [
    pytest.param("FrozenLake-v1", {}, 100, 1.0, id="frozenlake4x4-slippery"),
    pytest.param("FrozenLake-v1", {"is_slippery": False}, 20, 1.0, id="frozenlake4x4"),
    pytest.param("FrozenLake-v1", {"map_name": "8x8"}, 60, 0.99, id="frozenlake8x8-slippery"),
    pytest.param("FrozenLake-v1", {"map_name": "8x8", "is_slippery": False}, 30, 1.0,
                 id="frozenlake8x8"),
    pytest.param("CliffWalking-v1", {}, 40, 1.0, id="cliffwalking"),
    pytest.param("Taxi-v4", {}, 30, 0.95, id="taxi"),
]


def dict_backward_induction(model, n_states, n_actions, isd, horizon, discount):
    """Optimal E[G] and time-dependent greedy actions, read straight from env.P."""
    v = np.zeros(n_states)
    actions = np.zeros((horizon, n_states), dtype=int)
    for t in range(horizon - 1, -1, -1):
        q = np.zeros((n_states, n_actions))
        for s in range(n_states):
            for a in range(n_actions):
                q[s, a] = sum(p * (r + (0.0 if done else discount * v[nxt]))
                              for p, nxt, r, done in model[s][a])
        actions[t] = q.argmax(axis=1)
        v = q.max(axis=1)
    return float(isd @ v), actions


def rollouts(env, actions, n, horizon, discount, seed):
    """Discounted returns of n episodes in the real env under time-dependent actions."""
    base = env.unwrapped
    returns = np.empty(n)
    for i in range(n):
        s, _ = base.reset(seed=seed + i)
        g = 0.0
        for t in range(horizon):
            s, r, terminated, _, _ = base.step(int(actions[t, s]))
            g += discount ** t * r
            if terminated:
                break
        returns[i] = g
    return returns


@pytest.mark.parametrize("env_id, kwargs, horizon, discount", ENVS)
def test_from_gymnasium_optimum_matches_dict_dp_and_monte_carlo(env_id, kwargs, horizon, discount):
    env = gymnasium.make(env_id, **kwargs)
    base = env.unwrapped
    S, A = base.observation_space.n, base.action_space.n
    mdp = from_gymnasium(env, horizon, discount=discount)
    assert (mdp.n_states, mdp.n_actions) == (S + 1, A)  # one absorbing state, index S
    oracle, oracle_actions = dict_backward_induction(base.P, S, A, base.initial_state_distrib,
                                                     horizon, discount)
    sol = tnmdp.solve(mdp)
    assert sol.expected_return == pytest.approx(oracle, rel=RTOL, abs=1e-12)
    # the oracle's policy, evaluated exactly by tnmdp, is optimal too
    padded = np.concatenate([oracle_actions, np.zeros((horizon, 1), dtype=int)], axis=1)
    assert tnmdp.evaluate(mdp, np.eye(A)[padded]) == pytest.approx(oracle, rel=RTOL, abs=1e-12)
    # Monte Carlo in the real env under tnmdp's policy: within 4 standard errors (false
    # failure 6e-5); deterministic moves from one start state give one return, so two rollouts
    # pin it (standard error 0: exact up to 1e-9)
    deterministic = (all(len(outcomes) == 1 for moves in base.P.values()
                         for outcomes in moves.values())
                     and np.max(base.initial_state_distrib) == 1.0)
    returns = rollouts(env, sol.policy.actions, 2 if deterministic else 400, horizon, discount,
                       seed=1)
    se = returns.std(ddof=1) / np.sqrt(returns.size)
    assert abs(returns.mean() - sol.expected_return) <= 4 * se + 1e-9


def test_from_gymnasium_id_wrappers_and_default_horizon():
    env = gymnasium.make("FrozenLake-v1")  # TimeLimit(OrderEnforcing(PassiveEnvChecker(...)))
    mdp = from_gymnasium(env)
    assert mdp.horizon == env.spec.max_episode_steps == 100
    by_id = from_gymnasium("FrozenLake-v1", 100)
    assert tnmdp.solve(by_id).expected_return == tnmdp.solve(mdp).expected_return
    # the absorbing state: zero reward, stays put, starts empty
    S = env.unwrapped.observation_space.n
    assert mdp.initial[S] == 0.0
    P = mdp.transition_matrix(0)
    dense = P.toarray() if sp.issparse(P) else np.asarray(P)
    np.testing.assert_array_equal(dense.reshape(S + 1, 4, S + 1)[S, :, S], 1.0)


def test_from_gymnasium_sums_duplicate_entries():
    base = gymnasium.make("FrozenLake-v1").unwrapped
    dup = [(s, a) for s in base.P for a in base.P[s]
           if len({e[1] for e in base.P[s][a]}) < len(base.P[s][a])]
    assert dup  # slippery FrozenLake lists some outcomes twice
    mdp = from_gymnasium(base, 5)
    P = mdp.transition_matrix(0).toarray().reshape(17, 4, 17)
    for s, a in dup:
        want = np.zeros(17)
        for p, nxt, _, done in base.P[s][a]:
            want[16 if done else nxt] += p
        np.testing.assert_allclose(P[s, a], want, rtol=0, atol=1e-15)


def test_from_gymnasium_keeps_reward_law_when_terminal_rewards_differ():
    # 8x8 slippery: some (s, a) can end in a hole (r = 0) or the goal (r = 1); both enter the
    # absorbing state, so the reward given (s, a, s') is random and its law is kept
    mdp = from_gymnasium("FrozenLake-v1", 30, map_name="8x8")
    assert mdp.reward_power_law(0) is not None
    sol = tnmdp.solve(mdp)
    first, second = tnmdp.moments(mdp, sol.policy, order=2)
    # the return is 0 or 1: E[G^2] = E[G]
    assert second == pytest.approx(first, rel=1e-12)


@pytest.mark.parametrize("env_id, missing", [("Blackjack-v1", "observation_space"),
                                             ("Pendulum-v1", "observation_space")])
def test_from_gymnasium_refuses_models_it_cannot_read(env_id, missing):
    with pytest.raises(ValueError, match=f"env.{missing} is .* not gymnasium.spaces.Discrete"):
        from_gymnasium(env_id, 10)


def test_from_gymnasium_names_missing_model_and_initial():
    class NoModel(gymnasium.Env):
        observation_space = gymnasium.spaces.Discrete(3)
        action_space = gymnasium.spaces.Discrete(2)

    with pytest.raises(ValueError, match="NoModel has no transition model: .*env.unwrapped.P"):
        from_gymnasium(NoModel(), 5)
    env = NoModel()
    env.P = {s: {a: [(1.0, s, 1.0, False)] for a in range(2)} for s in range(3)}
    with pytest.raises(ValueError, match="neither initial_state_distrib nor isd: pass initial"):
        from_gymnasium(env, 5)
    mdp = from_gymnasium(env, 5, initial=[0.5, 0.5, 0.0])
    assert tnmdp.solve(mdp).expected_return == pytest.approx(5.0, abs=1e-12)
    with pytest.raises(TypeError, match=r"keyword arguments \['map_name'\]"):
        from_gymnasium(env, 5, map_name="8x8")
    with pytest.raises(ValueError, match="horizon is None"):
        from_gymnasium(env)


def _filter_spec_warning(func):
    return pytest.mark.filterwarnings("ignore:.*not having a spec")(func)


@_filter_spec_warning
@pytest.mark.parametrize("model", ["walk", "joint"])
def test_to_gymnasium_passes_check_env_and_agrees_with_evaluate(model):
    from gymnasium.utils.env_checker import check_env

    rng = np.random.default_rng(3)
    S, A, T = 4, 2, 6
    if model == "walk":
        mdp = tnmdp.FiniteMDP(rng.dirichlet(np.ones(S), size=(S, A)), rng.normal(size=(S, A, S)),
                              T, rng.dirichlet(np.ones(S)), rng.normal(size=S))
    else:  # random rewards from a finite alphabet
        p = rng.dirichlet(np.ones(S * 2), size=(S, A)).reshape(S, A, S, 2)
        mdp = tnmdp.FiniteMDP.from_joint(p, [-1.0, 2.0], T, 0)
    env = to_gymnasium(mdp)
    check_env(env, skip_render_check=True)
    policy = tnmdp.solve(mdp).policy.actions
    # 4 standard errors: false failure 6e-5; returns have a standard deviation ~2.2, so a bias
    # above ~0.25 is caught
    n = 1500
    returns = np.empty(n)
    obs, _ = env.reset(seed=7)
    for i in range(n):
        if i:
            obs, _ = env.reset()
        g, done = 0.0, False
        while not done:
            t = env.unwrapped._t
            obs, r, terminated, truncated, info = env.step(int(policy[t, obs]))
            assert not terminated and info["t"] == t + 1
            g += r
            done = truncated
        assert info["t"] == T
        returns[i] = g
    se = returns.std(ddof=1) / np.sqrt(n)
    assert abs(returns.mean() - tnmdp.evaluate(mdp, tnmdp.solve(mdp).policy)) <= 4 * se


def test_to_gymnasium_continuing_model_never_truncates():
    rng = np.random.default_rng(8)
    mdp = tnmdp.FiniteMDP(rng.dirichlet(np.ones(3), size=(3, 2)), rng.normal(size=(3, 2)), None,
                          0, discount=0.9)
    env = to_gymnasium(mdp)
    env.reset(seed=0)
    assert not any(env.step(0)[3] for _ in range(500))


def test_to_gymnasium_seeding_and_errors():
    env = to_gymnasium(tnmdp.models.excursion(8))
    first = [env.reset(seed=11)[0]] + [env.step(1)[0] for _ in range(8)]
    again = [env.reset(seed=11)[0]] + [env.step(1)[0] for _ in range(8)]
    assert first == again
    with pytest.raises(RuntimeError, match="ended after horizon=8 steps"):
        env.step(0)
    env.reset()
    with pytest.raises(ValueError, match="action 5 is not in Discrete"):
        env.step(5)
    with pytest.raises(TypeError, match="mdp must be a tnmdp.FiniteMDP"):
        to_gymnasium("FrozenLake-v1")


# --------------------------------------------------------------------------- pymdptoolbox
mdptoolbox = pytest.importorskip("mdptoolbox")


def _toolbox_models():
    import mdptoolbox.example as ex

    np.random.seed(0)  # mdptoolbox.example.rand draws from the global numpy state
    yield "forest", ex.forest(S=5, r1=4, r2=2, p=0.1)
    yield "rand", ex.rand(6, 3)
    yield "rand-sparse", ex.rand(6, 3, is_sparse=True)
    yield "rand-A=S", ex.rand(3, 3)
    yield "rand-mask", ex.rand(5, 2, mask=np.array([[1, 1, 0, 0, 1]] * 5))


@pytest.mark.filterwarnings("ignore::scipy.sparse.SparseEfficiencyWarning")
@pytest.mark.parametrize("name, model", list(_toolbox_models()), ids=lambda x: x
                         if isinstance(x, str) else "")
@pytest.mark.parametrize("discount", [0.9, 1.0])
def test_from_mdptoolbox_matches_finite_horizon(name, model, discount):
    from mdptoolbox.mdp import FiniteHorizon

    P, R = model
    N = 7
    h = np.linspace(-1, 1, P[0].shape[0])
    fh = FiniteHorizon(P, R, discount, N, h=h)
    fh.run()
    mdp = from_mdptoolbox(P, R, N, discount=discount, terminal_rewards=h)
    sol = tnmdp.solve(mdp)
    # FiniteHorizon's V[:, t] is our value_function[t]; same sums in another order
    np.testing.assert_allclose(sol.value_function.T, fh.V, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(sol.policy.actions.T, fh.policy)
    np.testing.assert_allclose(tnmdp.evaluate(mdp, np.eye(mdp.n_actions)[fh.policy.T]),
                               fh.V[:, 0] @ mdp.initial, rtol=1e-12)
    # and back again: to_mdptoolbox gives FiniteHorizon the same model
    P2, R2 = to_mdptoolbox(mdp)
    fh2 = FiniteHorizon(P2, R2, discount, N, h=mdp.terminal_rewards)
    fh2.run()
    np.testing.assert_allclose(fh2.V, fh.V, rtol=1e-12, atol=1e-12)


def test_from_mdptoolbox_layout_trap_when_a_equals_s():
    """A raw (A, S, S) array with A == S is read by FiniteMDP as (S, A, S): from_mdptoolbox
    reads it the right way round."""
    import mdptoolbox.example as ex
    from mdptoolbox.mdp import FiniteHorizon

    np.random.seed(5)
    P, R = ex.rand(4, 4)
    fh = FiniteHorizon(P, R, 1.0, 5)
    fh.run()
    right = tnmdp.solve(from_mdptoolbox(P, R, 5)).values
    np.testing.assert_allclose(right, fh.V[:, 0], rtol=1e-12)
    wrong = tnmdp.solve(tnmdp.FiniteMDP(P, np.moveaxis(R, 0, 1), 5, 0)).values
    assert np.abs(wrong - fh.V[:, 0]).max() > 1e-3


def test_mdptoolbox_errors():
    with pytest.raises(ValueError, match=r"R has shape \(4,\); expected \(S,\) = \(3,\)"):
        from_mdptoolbox(np.ones((2, 3, 3)) / 3, np.zeros(4), 3)
    with pytest.raises(ValueError, match=r"P must have shape \(A, S, S\), got \(2, 3, 4\)"):
        from_mdptoolbox(np.ones((2, 3, 4)) / 4, np.zeros(3), 3)
    with pytest.raises(TypeError, match="P must be an .* got one csr_array"):
        from_mdptoolbox(sp.csr_array(np.eye(3)), np.zeros(3), 3)
    with pytest.raises(ValueError, match=r"transitions\[s=0, a=1\] sums to"):
        from_mdptoolbox(np.stack([np.eye(2), 0.5 * np.eye(2)]), np.zeros(2), 3)
    with pytest.raises(ValueError, match="expected reward at s=0, a=0 is -inf; pymdptoolbox"):
        to_mdptoolbox(tnmdp.models.excursion(4, hard=True))
    timed = tnmdp.FiniteMDP(np.ones((2, 1, 2)) / 2, np.zeros((3, 2, 1, 2)), 3, 0)
    with pytest.raises(ValueError, match="pymdptoolbox models are stationary"):
        to_mdptoolbox(timed)
    with pytest.raises(ValueError, match="QuantEcon models are stationary"):
        to_quantecon(timed)


# --------------------------------------------------------------------------- QuantEcon
quantecon = pytest.importorskip("quantecon")


def _puterman_inventory():
    """QuantEcon's test model: Puterman (2005) Sect. 3.2, inventory control, pair form."""
    from quantecon.markov import DiscreteDP

    s_indices = [0, 0, 0, 0, 1, 1, 1, 2, 2, 3]
    a_indices = [0, 1, 2, 3, 0, 1, 2, 0, 1, 0]
    R = [0., -1., -2., -5., 5., 0., -3., 6., -1., 5.]
    Q = [[1., 0., 0., 0.], [0.75, 0.25, 0., 0.], [0.25, 0.5, 0.25, 0.], [0., 0.25, 0.5, 0.25],
         [0.75, 0.25, 0., 0.], [0.25, 0.5, 0.25, 0.], [0., 0.25, 0.5, 0.25],
         [0.25, 0.5, 0.25, 0.], [0., 0.25, 0.5, 0.25], [0., 0.25, 0.5, 0.25]]
    return DiscreteDP(R, Q, 1.0, s_indices, a_indices)


def _puterman_two_state(form):
    """Puterman (2005) Sect. 3.1 (QuantEcon's TestDiscreteDP), beta = 0.95."""
    from quantecon.markov import DiscreteDP

    R = [[5, 10], [-1, -np.inf]]
    Q = np.empty((2, 2, 2))
    Q[0, 0], Q[0, 1], Q[1, :] = (0.5, 0.5), (0, 1), (0, 1)
    ddp = DiscreteDP(R, Q, 0.95)
    if form == "product":
        return ddp
    return ddp.to_sa_pair_form(sparse=form == "pair-sparse")


@pytest.mark.filterwarnings("ignore:infinite horizon solution methods are disabled")
@pytest.mark.parametrize("form", ["inventory", "product", "pair-sparse", "pair-dense"])
def test_from_quantecon_matches_backward_induction(form):
    from quantecon.markov import backward_induction

    ddp = _puterman_inventory() if form == "inventory" else _puterman_two_state(form)
    T = 3 if form == "inventory" else 12
    v_term = np.arange(ddp.num_states, dtype=float)
    vs, sigmas = backward_induction(ddp, T, v_term=v_term)
    mdp = from_quantecon(ddp, T, terminal_rewards=v_term)
    assert mdp.is_sparse == (form == "pair-sparse")  # the inventory Q is a dense list
    sol = tnmdp.solve(mdp)
    np.testing.assert_allclose(sol.value_function, vs, rtol=1e-12)
    np.testing.assert_array_equal(sol.policy.actions, sigmas)
    if form == "inventory":  # Puterman's published values (QuantEcon's test)
        np.testing.assert_allclose(
            tnmdp.solve(from_quantecon(ddp, 3)).values, [67 / 16, 129 / 16, 194 / 16, 227 / 16],
            rtol=1e-14)
    # and back: both forms
    for sa_pair in (False, True):
        vs2, _ = backward_induction(to_quantecon(mdp, sa_pair=sa_pair), T, v_term=v_term)
        np.testing.assert_allclose(vs2, vs, rtol=1e-12)


def test_from_quantecon_errors():
    with pytest.raises(TypeError, match="ddp must be a quantecon.markov.DiscreteDP"):
        from_quantecon({"R": 1}, 3)


# --------------------------------------------------------------------------- pydata sparse
def test_pydata_sparse_transitions_in_mdptoolbox_and_model():
    sparse = pytest.importorskip("sparse")
    rng = np.random.default_rng(0)
    P = rng.dirichlet(np.ones(4), size=(4, 2))
    P[P < 0.2] = 0
    P /= P.sum(axis=2, keepdims=True)
    R = rng.normal(size=(4, 2))
    dense = tnmdp.solve(tnmdp.FiniteMDP(P, R, 5, 0)).values
    per_action = [sparse.COO.from_numpy(P[:, a, :]) for a in range(2)]
    mdp = from_mdptoolbox(per_action, R, 5, initial=0)
    assert mdp.is_sparse
    np.testing.assert_allclose(tnmdp.solve(mdp).values, dense, rtol=1e-13)
