"""Recurrent low-rank ⊙ sparse policies (jax) and the T-maze they are judged on."""

import numpy as np
import pytest

import tnmdp
from tnmdp.models.tmaze import tmaze, tmaze_observations

jax = pytest.importorskip("jax")

from tnmdp.adapters.recurrent import (CELLS, RecurrentPolicy, closed_loop,  # noqa: E402
                                      imitation_fit)


# ------------------------------------------------------------------------- T-maze
def test_tmaze_optimum_closed_form():
    # deterministic corridor: L forward moves at cost c, then the right arm (+1)
    for L in (1, 3, 6):
        np.testing.assert_allclose(tnmdp.solve(tmaze(L, slip=0.0)).expected_return,
                                   1 - 0.05 * L, rtol=1e-12)
    # slippery corridor, horizon long enough that truncation is < 1e-12: geometric waiting
    sol = tnmdp.solve(tmaze(4, slip=0.3, horizon=200))
    np.testing.assert_allclose(sol.expected_return, 1 - 0.05 * 4 / 0.7, rtol=1e-10)


def test_tmaze_observations_hide_the_cue():
    O = tmaze_observations(3)
    assert O.shape == (9, 5)
    np.testing.assert_array_equal(O.sum(axis=1), 1.0)
    assert not np.array_equal(O[0], O[1])  # the cue is seen at the start ...
    for pos in range(1, 4):  # ... and nowhere else
        np.testing.assert_array_equal(O[2 * pos], O[2 * pos + 1])
    with pytest.raises(ValueError, match=r"slip must be a real number in \[0, 1\), got 1.0"):
        tmaze(3, slip=1.0)


# ------------------------------------------------------------------------- cells
def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def _numpy_step(kind, p, mask, h, c, x):
    """The cell equations written out independently on numpy arrays."""
    U = (p["U1"] @ p["U2"]) * mask if "U1" in p else p["U"] * mask
    H = h.shape[-1]
    g = [x @ p["W"][k * H:(k + 1) * H].T + p["b"][k * H:(k + 1) * H] for k in range(CELLS[kind])]
    u = [h @ U[k * H:(k + 1) * H].T for k in range(CELLS[kind])]
    if kind == "rnn":
        return np.tanh(g[0] + u[0]), None
    if kind == "gru":
        z, r = _sigmoid(g[0] + u[0]), _sigmoid(g[1] + u[1])
        return (1 - z) * np.tanh(g[2] + r * u[2]) + z * h, None
    i, f, gg, o = (a + b for a, b in zip(g, u))
    if kind == "lstm":
        c2 = _sigmoid(f) * c + _sigmoid(i) * np.tanh(gg)
        return _sigmoid(o) * np.tanh(c2), c2
    s = _sigmoid(-gg + o)
    return np.tanh(i) * (1 - s) + s * np.tanh(f), None


@pytest.mark.parametrize("kind, rank", [(kind, 1) for kind in sorted(CELLS)] + [("lstm", None)])
def test_cell_step_matches_the_equations(kind, rank):
    pol = RecurrentPolicy(kind, 4, 5, 3, rank=rank, sparsity=0.4, rng=0)
    rng = np.random.default_rng(1)
    x1, x2 = rng.normal(size=(2, 4)), rng.normal(size=(2, 4))
    carry, _ = pol.step(None, x1)
    carry, logits = pol.step(carry, x2)
    h, c = np.zeros((2, 5)), np.zeros((2, 5))
    for x in (x1, x2):
        h, c = _numpy_step(kind, pol.params, pol.mask, h, c, x)
    expected = h @ pol.params["W_out"].T + pol.params["b_out"]
    np.testing.assert_allclose(np.asarray(logits), expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("kind", ["cfc", "lstm", pytest.param("gru", marks=pytest.mark.slow),
                                  pytest.param("rnn", marks=pytest.mark.slow)])
def test_autodiff_gradient_against_central_differences(kind):
    pol = RecurrentPolicy(kind, 3, 3, 2, rank=2, sparsity=0.3, rng=2)
    rng = np.random.default_rng(3)
    obs = rng.normal(size=(2, 4, 3))
    actions = rng.integers(0, 2, size=(2, 4))
    valid = np.array([[1, 1, 1, 0], [1, 1, 1, 1]])
    _, grads = pol.loss_and_grad(obs, actions, valid)
    base = dict(pol.params)
    pick = np.random.default_rng(4)
    for name in ("U1", "U2", "W", "W_out"):
        shape = base[name].shape
        entries = [np.unravel_index(k, shape)
                   for k in pick.choice(base[name].size, 3, replace=False)]
        for idx in entries:  # three random entries of each parameter
            vals = []
            for sign in (1, -1):
                p = dict(base)
                p[name] = base[name].copy()
                p[name][idx] += sign * 1e-6
                pol.params = p
                vals.append(pol.loss_and_grad(obs, actions, valid)[0])
            fd = (vals[0] - vals[1]) / 2e-6
            # float64 central differences, h = 1e-6: error ~1e-9 of the gradient scale
            np.testing.assert_allclose(grads[name][idx], fd, rtol=1e-6, atol=1e-8,
                                       err_msg=f"{name}{idx}")
        pol.params = base


def test_recurrent_matrix_rank_density_and_parameter_count():
    pol = RecurrentPolicy("gru", 5, 8, 3, rank=2, sparsity=0.5, rng=4)
    lrs = pol.recurrent_matrix()
    assert lrs.shape == (24, 8) and lrs.rank == 2
    np.testing.assert_allclose(lrs.matrix(), (pol.params["U1"] @ pol.params["U2"]) * pol.mask)
    assert np.linalg.matrix_rank(pol.params["U1"] @ pol.params["U2"]) == 2
    assert pol.n_recurrent_parameters == 2 * (24 + 8)
    full = RecurrentPolicy("gru", 5, 8, 3, sparsity=0.5, rng=4)
    assert full.n_recurrent_parameters == int(full.mask.sum())
    assert pol.gate_spectra().shape == (3, 2)


def test_closed_loop_matches_exact_evaluation():
    # zero read-out weights: logits tie, argmax picks action 0 (forward) everywhere
    mdp = tmaze(3, slip=0.4, horizon=9)
    pol = RecurrentPolicy("rnn", 5, 4, 3, rng=0)
    pol.params = dict(pol.params, W_out=np.zeros((3, 4)))
    returns = closed_loop(pol, mdp, tmaze_observations(3), 4000, rng=5)
    forward = np.zeros((9, mdp.n_states, 3))
    forward[..., 0] = 1.0
    exact = tnmdp.evaluate(mdp, forward)  # never turns: pays the step cost 9 times
    se = returns.std(ddof=1) / np.sqrt(returns.size)
    assert abs(returns.mean() - exact) <= 4 * se + 1e-12


@pytest.mark.slow
def test_imitation_learns_to_remember_the_cue():
    mdp = tmaze(2, slip=0.0, horizon=5)
    O = tmaze_observations(2)
    sol = tnmdp.solve(mdp)
    tr = tnmdp.sample(mdp, sol.policy, 64, rng=0)
    T, end = mdp.horizon, mdp.n_states - 1
    pol = RecurrentPolicy("rnn", 5, 6, 3, rank=2, sparsity=0.25, rng=1)
    losses = imitation_fit(pol, O[tr.states[:, :T]], tr.actions,
                           tr.states[:, :T] != end, n_steps=80, learning_rate=5e-2)
    assert losses[-1] < 0.05 * losses[0]
    returns = closed_loop(pol, mdp, O, 200, rng=2)
    np.testing.assert_allclose(returns.mean(), sol.expected_return, rtol=1e-12)  # deterministic


def test_validation():
    with pytest.raises(ValueError, match=r"kind must be one of \['cfc', 'gru', 'lstm', 'rnn'\]"):
        RecurrentPolicy("tcn", 2, 3, 2)
    with pytest.raises(ValueError, match="rank must be <= n_hidden = 3, got 4"):
        RecurrentPolicy("rnn", 2, 3, 2, rank=4)
    pol = RecurrentPolicy("rnn", 2, 3, 2, rng=0)
    with pytest.raises(ValueError, match=r"obs must have shape \(B, T, 2\)"):
        pol.logits(np.ones((1, 2, 3)))
    with pytest.raises(ValueError, match=r"actions\[0, 1\] = 2 is outside 0..1"):
        pol.loss_and_grad(np.ones((1, 2, 2)), np.array([[0, 2]]), np.ones((1, 2)))
    with pytest.raises(ValueError, match="valid marks no step"):
        pol.loss_and_grad(np.ones((1, 2, 2)), np.array([[0, 1]]), np.zeros((1, 2)))
    with pytest.raises(ValueError, match=r"obs_noise must be a real number >= 0"):
        closed_loop(pol, tmaze(1), np.ones((5, 2)), 3, obs_noise=-1.0)


def test_fitting_policies_together_equals_fitting_each_alone():
    """Two policies fitted together (stacked, ``vmap``-ed gradient) get the updates each gets
    alone: full-batch Adam on its own ``loss_and_grad``, written out here (the policy and batch
    shapes of the gradient test above, so the compiled gradient is shared with it)."""
    from tnmdp.adapters.optim import Adam

    rng = np.random.default_rng(0)
    obs, actions = rng.normal(size=(2, 4, 3)), rng.integers(0, 2, size=(2, 4))
    valid = np.array([[1, 1, 1, 0], [1, 1, 1, 1]])
    together = [RecurrentPolicy("cfc", 3, 3, 2, rank=2, sparsity=0.3, rng=s) for s in (1, 2)]
    losses = imitation_fit(together, obs, actions, valid, n_steps=5, learning_rate=1e-2)
    alone = RecurrentPolicy("cfc", 3, 3, 2, rank=2, sparsity=0.3, rng=2)
    opt, alone_losses = Adam(1e-2), []
    for _ in range(5):
        loss, grads = alone.loss_and_grad(obs, actions, valid)
        alone_losses.append(loss)
        alone.params = opt.step(alone.params, grads)
    # the stacked (vmap) and single gradients may round differently: 1e-12 relative
    np.testing.assert_allclose(losses[1], alone_losses, rtol=1e-12)
    assert not np.allclose(losses[0], losses[1])  # two different fits
    for k in alone.params:
        np.testing.assert_allclose(together[1].params[k], alone.params[k], rtol=1e-10,
                                   atol=1e-14)
    with pytest.raises(ValueError, match="must share kind and shapes"):
        imitation_fit([together[0], RecurrentPolicy("cfc", 2, 3, 2, rank=2, rng=0)], obs,
                      actions, valid, n_steps=1)
