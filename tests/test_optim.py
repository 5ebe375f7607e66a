"""Shared optimisers: closed-form steps, torch's recursions written out, skipping and validation."""

import numpy as np
import pytest

from tnmdp.adapters.optim import OPTIMIZERS, SGD, Adam, Adamax, make_optimizer


def _adam_reference(grads, lr, b1, b2, eps):
    """Adam (Kingma & Ba, Algorithm 1) as a scalar loop, independent of the vectorised code."""
    m = v = 0.0
    out = []
    for t, g in enumerate(grads, start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        out.append(lr * (m / (1 - b1 ** t)) / (np.sqrt(v / (1 - b2 ** t)) + eps))
    return out


def _adamax_reference(grads, lr, b1, b2, eps):
    m = u = 0.0
    out = []
    for t, g in enumerate(grads, start=1):
        m = b1 * m + (1 - b1) * g
        u = max(b2 * u, abs(g) + eps)
        out.append(lr / (1 - b1 ** t) * m / u)
    return out


@pytest.mark.parametrize("cls, reference", [(Adam, _adam_reference),
                                            (Adamax, _adamax_reference)])
def test_steps_match_scalar_recursion(cls, reference):
    rng = np.random.default_rng(0)
    g = rng.normal(size=(6, 3, 2))
    opt = cls(0.01, betas=(0.8, 0.99), eps=1e-6)
    got = [opt.steps({"w": g[k]})["w"] for k in range(6)]
    for i in np.ndindex(3, 2):
        want = reference(list(g[(slice(None), *i)]), 0.01, 0.8, 0.99, 1e-6)
        # same operations in the same order on doubles: agreement to a few ulps
        np.testing.assert_allclose([s[i] for s in got], want, rtol=1e-13, atol=0)


def test_first_adam_step_is_signed_learning_rate():
    # m_hat = g and v_hat = g^2 after one step, so the step is lr * g / (|g| + eps)
    g = np.array([-3.0, 1e-3, 2.0])
    step = Adam(0.1, eps=1e-8).steps({"w": g})["w"]
    np.testing.assert_allclose(step, 0.1 * g / (np.abs(g) + 1e-8), rtol=1e-15)


def test_descent_convention_and_no_mutation():
    params = {"w": np.array([1.0, -2.0]), "b": np.array(5.0)}
    before = {k: v.copy() for k, v in params.items()}
    new = SGD(0.5).step(params, {"w": np.array([2.0, -2.0])})
    np.testing.assert_array_equal(new["w"], [0.0, -1.0])      # 1 - 0.5*2, -2 + 0.5*2
    assert new["b"] is params["b"]                              # absent from grads: untouched
    for k in params:
        np.testing.assert_array_equal(params[k], before[k])


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_minimises_a_quadratic(name):
    # f(x) = 1/2 sum c_i (x_i - x*_i)^2; every optimiser must reach x* from x = 0
    c, target = np.array([1.0, 4.0, 0.5]), np.array([1.0, -2.0, 3.0])
    opt = make_optimizer(name, {"sgd": 0.2, "adam": 0.05, "adamax": 0.05}[name])
    params = {"x": np.zeros(3)}
    for _ in range(1000):
        params = opt.step(params, {"x": c * (params["x"] - target)})
    # Adam's steps near the optimum are ~lr * (noise-free) ratio; 1e-3 is far above what
    # 1000 steps leave (< 1e-14 for all three; Adamax, the slowest, is still 1.5e-3 off after
    # 300) and far below the initial error of order 1
    np.testing.assert_allclose(params["x"], target, atol=1e-3)


def test_missing_key_keeps_its_moments_zero_gradient_moves_by_momentum():
    opt = Adam(0.1)
    opt.steps({"a": np.array([1.0]), "b": np.array([1.0])})
    opt.steps({"a": np.array([1.0])})                          # b skipped
    assert opt.state["a"]["step"] == 2 and opt.state["b"]["step"] == 1
    step = opt.steps({"b": np.array([0.0])})["b"]               # zeroed, not absent
    assert step[0] > 0 and opt.state["b"]["step"] == 2


def test_steps_jax_arrays():
    jnp = pytest.importorskip("jax.numpy")
    g = np.array([0.5, -1.5, 2.0])
    for cls in (Adam, Adamax, SGD):
        a, b = cls(0.1), cls(0.1)
        for _ in range(3):
            want = a.steps({"w": g})["w"]
            got = b.steps({"w": jnp.asarray(g)})["w"]
        # jax computes in float32 by default: 1e-6 relative
        np.testing.assert_allclose(np.asarray(got), want, rtol=1e-6)


def test_validation():
    with pytest.raises(ValueError, match=r"learning_rate must be a finite number > 0, got 0"):
        SGD(0)
    with pytest.raises(ValueError, match=r"betas\[1\] must be a number in \[0, 1\), got 1.0"):
        Adam(0.1, betas=(0.9, 1.0))
    with pytest.raises(ValueError, match=r"eps must be a finite number > 0, got -1"):
        Adamax(0.1, eps=-1)
    with pytest.raises(ValueError, match=r"optimizer must be one of \['adam', 'adamax', 'sgd'\], "
                                         r"got 'rmsprop'"):
        make_optimizer("rmsprop", 0.1)
    opt = Adam(0.1)
    with pytest.raises(ValueError,
                       match=r"grads\['w'\]\[\(1,\)\] is nan; gradients must be finite"):
        opt.steps({"w": np.array([0.0, np.nan])})
    with pytest.raises(ValueError, match=r"grads\['v'\] has no parameter; params has \['w'\]"):
        opt.step({"w": np.zeros(2)}, {"v": np.zeros(2)})
    with pytest.raises(ValueError,
                       match=r"grads\['w'\] has shape \(3,\), params\['w'\] has \(2,\)"):
        opt.step({"w": np.zeros(2)}, {"w": np.zeros(3)})
    opt.steps({"w": np.zeros(2)})
    with pytest.raises(ValueError, match=r"optimiser state for it has \(2,\)"):
        opt.steps({"w": np.zeros(3)})
    with pytest.raises(TypeError, match="grads must be a dict name -> array, not list"):
        opt.steps([np.zeros(2)])
