"""Implicit (Markov-reward-chain) and explicit linear value models (tnmdp.adapters.implicit)."""

import numpy as np
import pytest

import tnmdp
from tnmdp.adapters.implicit import (ExplicitValue, ImplicitValue, init_implicit_parameters,
                                     softmax_rows)
from tnmdp.adapters.optim import SGD
from tnmdp.continuing import discounted_values

K = 6


@pytest.fixture
def model():
    m = ImplicitValue(K, 0.9, rng=3)
    m.F = m.F + np.random.default_rng(4).normal(size=(K, K))  # away from the diagonal-heavy init
    return m


@pytest.fixture
def batch():
    rng = np.random.default_rng(5)
    return rng.normal(size=(9, K)), rng.normal(size=9)


def test_theta_is_the_chain_value_from_tnmdp_continuing_evaluation(model):
    # the chain as a one-action continuing FiniteMDP, evaluated by tnmdp.continuing
    P = softmax_rows(model.F)
    mdp = tnmdp.FiniteMDP(P[:, None, :], model.w[:, None], None, np.full(K, 1 / K),
                          discount=model.eta)
    values = discounted_values(mdp, np.ones((K, 1)))
    np.testing.assert_allclose(model.theta, values, rtol=1e-12, atol=1e-14)  # two solvers, fp


def test_theta_is_a_fixed_point_of_the_chain_backup(model):
    theta = model.theta
    backup = model.w + model.eta * softmax_rows(model.F) @ theta
    np.testing.assert_allclose(backup, theta, rtol=1e-13, atol=1e-14)


def test_initialisation_as_the_authors():
    w, F = init_implicit_parameters(50, np.random.default_rng(0))
    assert w.shape == (50,) and F.shape == (50, 50)
    assert abs(w.std() - 0.1) < 0.03 and abs(w.mean()) < 0.05  # 0.1 N(0,1), 50 draws: +-3 se
    np.testing.assert_array_equal(np.diag(F), 0.0)  # 2 I dominates: the diagonal is the row max
    E = np.exp(F)
    off = E[~np.eye(50, dtype=bool)]
    assert off.max() <= 0.5 + 1e-15  # Dirichlet entries <= 1, diagonal >= 2
    # exp(F) rows are (d + 2 e_i) / (d_ii + 2): row sums 3 / (d_ii + 2), diagonal 1
    d_ii = 3.0 / E.sum(axis=1) - 2.0
    assert np.all((d_ii >= -1e-12) & (d_ii <= 1 + 1e-12))


def test_explicit_starts_from_the_implicit_theta():
    for seed in range(3):
        imp = ImplicitValue(7, 0.95, rng=seed)
        exp = ExplicitValue(7, rng=seed, eta=0.95)
        np.testing.assert_array_equal(exp.theta, imp.theta)
    assert not np.allclose(ExplicitValue(7, rng=1).theta, ExplicitValue(7, rng=2).theta)


def _fd(f, x, h):
    g = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        xp, xm = x.copy(), x.copy()
        xp[idx] += h
        xm[idx] -= h
        g[idx] = (f(xp) - f(xm)) / (2 * h)
    return g


def test_gradients_against_central_differences(model, batch):
    X, y = batch
    _, grads = model.loss_and_grad(X, y)

    def loss_w(w):
        m = ImplicitValue(K, model.eta, rng=0)
        m.params = {"w": w, "F": model.F}
        return m.loss_and_grad(X, y)[0]

    def loss_F(F):
        m = ImplicitValue(K, model.eta, rng=0)
        m.params = {"w": model.w, "F": F}
        return m.loss_and_grad(X, y)[0]

    # central differences with h = 1e-5 have truncation error ~h^2 |L'''| ~ 1e-10 relative
    for name, f, x in (("w", loss_w, model.w), ("F", loss_F, model.F)):
        fd = _fd(f, x, 1e-5)
        err = np.max(np.abs(grads[name] - fd)) / np.max(np.abs(fd))
        assert err < 1e-6, (name, err)


def test_gradient_against_forward_mode_dense_jacobian(model, batch):
    # forward mode: d theta / dF[k, j] = eta A^{-1} (dP theta), dP = row-k softmax Jacobian column
    X, y = batch
    P = softmax_rows(model.F)
    A = np.eye(K) - model.eta * P
    theta = np.linalg.solve(A, model.w)
    dL_dtheta = X.T @ (X @ theta - y) / len(y)
    dF = np.zeros((K, K))
    for k in range(K):
        for j in range(K):
            dP = np.zeros((K, K))
            dP[k] = P[k] * ((np.arange(K) == j) - P[k, j])
            dF[k, j] = dL_dtheta @ np.linalg.solve(A, model.eta * dP @ theta)
    dw = np.linalg.inv(A).T @ dL_dtheta
    _, grads = model.loss_and_grad(X, y)
    np.testing.assert_allclose(grads["F"], dF, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(grads["w"], dw, rtol=1e-10, atol=1e-14)


def test_explicit_gradient_closed_form(batch):
    X, y = batch
    m = ExplicitValue(K, rng=1)
    loss, grads = m.loss_and_grad(X, y)
    assert set(grads) == {"theta"}
    np.testing.assert_allclose(loss, 0.5 * np.mean((X @ m.theta - y) ** 2), rtol=1e-14)
    np.testing.assert_allclose(grads["theta"], _fd(
        lambda t: 0.5 * np.mean((X @ t - y) ** 2), m.theta, 1e-5), rtol=1e-8)


def test_small_step_moves_theta_by_the_preconditioner(model, batch):
    # Theorem 1: a gradient step of size a on (w, F) changes theta by -a P_pre dL/dtheta + O(a^2)
    X, y = batch
    theta0 = model.theta
    g = X.T @ (X @ theta0 - y) / len(y)
    a = 1e-6
    _, grads = model.loss_and_grad(X, y)
    model.params = SGD(a).step(model.params, grads)
    predicted = -a * model.preconditioner() @ g  # (at the new point; differs by O(a^2))
    np.testing.assert_allclose(model.theta - theta0, predicted, rtol=1e-4, atol=1e-15)


def test_sgd_with_shared_optimiser_fits_a_target():
    rng = np.random.default_rng(0)
    target = rng.normal(size=5) + 3.0
    X = np.eye(5)
    for m, lr in ((ImplicitValue(5, 0.9, rng=1), 0.02), (ExplicitValue(5, rng=1, eta=0.9), 2.0)):
        opt = SGD(lr)
        first = m.loss_and_grad(X, target)[0]
        for _ in range(300):
            _, grads = m.loss_and_grad(X, target)
            m.params = opt.step(m.params, grads)
        assert m.loss_and_grad(X, target)[0] < 1e-3 * first


def test_tensor_network_converges_at_rate_eta_to_the_horizon(model):
    import quimb.tensor  # noqa: F401  (import cost paid once here)

    P, w, eta = softmax_rows(model.F), model.w, model.eta
    theta = model.theta
    errors = []
    for H in (1, 2, 5, 40, 41):
        tn = model.to_tensor_network(H)
        assert tn.num_tensors == H + 2
        got = tn.contract(output_inds=("s",)).data
        direct = sum(eta ** t * np.linalg.matrix_power(P, t) @ w for t in range(H))
        np.testing.assert_allclose(got, direct, rtol=1e-12, atol=1e-14)
        err = np.max(np.abs(theta - got))
        assert err <= eta ** H * np.max(np.abs(theta)) * (1 + 1e-9)
        errors.append(err)
    # theta - theta_H = eta^H P^H theta -> eta^H (v.theta) 1: successive ratio -> eta
    assert abs(errors[-1] / errors[-2] - eta) < 1e-6


def test_stationary_distribution(model):
    v = model.stationary_distribution()
    np.testing.assert_allclose(v @ softmax_rows(model.F), v, atol=1e-13)
    np.testing.assert_allclose(v.sum(), 1.0, rtol=1e-14)


@pytest.mark.parametrize("args, kwargs, exc, match", [
    ((0, 0.9), {}, ValueError, "n_features must be >= 1"),
    ((3, 1.0), {}, ValueError, r"eta must be a real number in \[0, 1\), got 1.0"),
    ((3, -0.1), {}, ValueError, "eta must be"),
    ((2.5, 0.9), {}, TypeError, "n_features must be an int"),
])
def test_constructor_validation(args, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        ImplicitValue(*args, **kwargs)


def test_batch_and_params_validation(model):
    with pytest.raises(ValueError, match=r"features must have shape \(n, 6\), got \(3, 5\)"):
        model.loss_and_grad(np.ones((3, 5)), np.ones(3))
    with pytest.raises(ValueError, match=r"targets must have shape \(3,\), got \(4,\)"):
        model.loss_and_grad(np.ones((3, K)), np.ones(4))
    with pytest.raises(ValueError, match=r"targets\[1\] = nan is not finite"):
        model.loss_and_grad(np.ones((3, K)), np.array([0.0, np.nan, 1.0]))
    with pytest.raises(ValueError, match=r"params\['theta'\] is not a parameter"):
        model.params = {"theta": np.ones(K)}
    with pytest.raises(ValueError, match=r"params\['F'\] has shape \(6,\), expected \(6, 6\)"):
        model.params = {"F": np.ones(K)}
    with pytest.raises(ValueError, match="horizon must be >= 1"):
        model.to_tensor_network(0)


def test_params_setter_copies():
    m = ExplicitValue(3, rng=0)
    new = np.ones(3)
    m.params = {"theta": new}
    new[0] = 5.0
    np.testing.assert_array_equal(m.theta, 1.0)


# ---------------------------------------------------------------- the paper's domains
def test_reset_chain_values_closed_form():
    from tnmdp.models.value_domains import epsilon_greedy, reset_chain

    g = 0.9
    mdp = reset_chain(horizon=None, discount=g)
    always_next = np.zeros(11, dtype=int)  # action 0 everywhere
    np.testing.assert_array_equal(
        epsilon_greedy(np.tile([1.0, 0.0], (11, 1)), 0.0, 1)[0].argmax(axis=1), always_next)
    v = discounted_values(mdp, always_next)
    # a 10-cycle 0 -> 1 -> ... -> 9 -> 0 paying 10 on leaving 9: V(9) = 10 / (1 - g^10)
    v9 = 10 / (1 - g ** 10)
    expected = [g ** (9 - s) * v9 for s in range(10)] + [g * g ** 9 * v9]  # 10 -> 0
    np.testing.assert_allclose(v, expected, rtol=1e-12)
    shifted = discounted_values(reset_chain(horizon=None, discount=g, reward_offset=1.0),
                                always_next)
    np.testing.assert_allclose(shifted - v, 1 / (1 - g), rtol=1e-12)  # offset c adds c/(1-g)


def test_four_rooms_structure():
    from tnmdp.models.value_domains import FOUR_ROOMS_OBSTACLES, four_rooms

    mdp = four_rooms(horizon=3)
    P = np.asarray(mdp.transition_matrix(0)).reshape(122, 4, 122)
    np.testing.assert_allclose(P.sum(axis=2), 1.0, rtol=1e-14)
    goal = 7 * 11 + 1
    np.testing.assert_allclose(P[goal, :, 121], 1.0, rtol=1e-15)  # mixing sums 2/3 + 3 * 1/9
    np.testing.assert_allclose(P[121, :, 121], 1.0, rtol=1e-15)
    # (0, 4) is left of the obstacle (0, 5): "right" = (0, +1) is blocked, so the intended
    # move stays put (2/3) and the three other moves (down, up = blocked by the wall, left)
    # take 1/9 each
    s = 4
    assert (0, 5) in FOUR_ROOMS_OBSTACLES
    np.testing.assert_allclose(P[s, 2, s], 2 / 3 + 1 / 9, rtol=1e-14)
    np.testing.assert_allclose(P[s, 2, 11 + 4], 1 / 9, rtol=1e-14)
    np.testing.assert_allclose(P[s, 2, 3], 1 / 9, rtol=1e-14)
    with pytest.raises(ValueError, match=r"goal=\(5, 5\) must be a free cell"):
        four_rooms(goal=(5, 5))


def test_epsilon_greedy_shares_ties():
    from tnmdp.models.value_domains import epsilon_greedy

    pi = epsilon_greedy(np.array([[1.0, 1.0, 0.0], [0.0, 2.0, 1.0]]), 0.3, 2)
    assert pi.shape == (2, 2, 3)
    np.testing.assert_allclose(pi[0, 0], [0.35 + 0.1, 0.35 + 0.1, 0.1])
    np.testing.assert_allclose(pi[1, 1], [0.1, 0.7 + 0.1, 0.1])
    with pytest.raises(ValueError, match="epsilon must be a real number in"):
        epsilon_greedy(np.ones((2, 2)), 1.5, 1)
