"""Independent oracles for the lattice tests: dense generators written from the model rules.

Nothing here uses tnmdp.lattice: each model's jumps are enumerated configuration by
configuration from its definition in issue 10, and vicious-walker paths are counted by a DP over
walker positions. The tests at the bottom check the oracles against closed forms.
"""

import itertools
import math

import numpy as np
import pytest

#: The continuous-time models the lattice tests share: name -> (factory in tnmdp.lattice,
#: parameters). Plain data, so this module still imports nothing from tnmdp.lattice.
MODEL_PARAMETERS = {
    "spins": ("independent_spins", {"c": 0.3}),
    "east": ("east", {"c": 0.3}),
    "fa": ("fa", {"c": 0.6}),
    "tasep": ("tasep", {"alpha": 0.3, "beta": 0.7}),
    "ssep": ("ssep", {"alpha": 0.3, "gamma": 0.2, "delta": 0.1, "beta": 0.6}),
}


def bits_of(x, L):
    return [(x >> i) & 1 for i in range(L)]


def jumps(model, L, params, x):
    """``[(y, rate, count)]`` for every jump out of configuration ``x`` (flat, site 0 lowest)."""
    b = bits_of(x, L)
    out = []

    def flip(i, rate, count=1.0):
        if rate > 0:
            out.append((x ^ (1 << i), rate, count))

    if model in ("spins", "east", "fa"):
        c = params["c"]
        for i in range(L):
            if model == "spins":
                ok = True
            elif model == "east":
                ok = i == 0 or b[i - 1] == 1
            else:
                left = 1 if i == 0 else b[i - 1]
                right = 0 if i == L - 1 else b[i + 1]
                ok = left == 1 or right == 1
            if ok:
                flip(i, (1 - c) if b[i] else c)
    elif model == "tasep":
        if b[0] == 0:
            flip(0, params["alpha"], 1.0)
        for i in range(L - 1):
            if b[i] == 1 and b[i + 1] == 0:
                out.append((x ^ (1 << i) ^ (1 << (i + 1)), 1.0, 0.0))
        if b[L - 1] == 1:
            flip(L - 1, params["beta"], 0.0)
    elif model == "ssep":
        if b[0] == 0:
            flip(0, params["alpha"], 1.0)
        else:
            flip(0, params["gamma"], -1.0)
        for i in range(L - 1):
            if b[i] != b[i + 1]:
                out.append((x ^ (1 << i) ^ (1 << (i + 1)), 1.0, 0.0))
        if b[L - 1] == 0:
            flip(L - 1, params["delta"], 0.0)
        else:
            flip(L - 1, params["beta"], 0.0)
    else:
        raise ValueError(model)
    return out


def dense_generator(model, L, s, **params):
    """``W_s[y, x]`` from the rules: off-diagonal ``rate e^{-s k}``, diagonal ``-sum rates``."""
    n = 2 ** L
    w = np.zeros((n, n))
    for x in range(n):
        for y, rate, count in jumps(model, L, params, x):
            w[y, x] += rate * np.exp(-s * count)
            w[x, x] -= rate
    return w


def log_matrix_power_sum(p, v, n):
    """``log <1| p^n |v>`` with rescaling at every step."""
    log_scale = 0.0
    for _ in range(n):
        v = p @ v
        m = np.abs(v).max()
        if m == 0:
            return -np.inf
        v, log_scale = v / m, log_scale + np.log(m)
    return log_scale + np.log(v.sum())


def walker_steps(positions, L):
    """Allowed parallel moves of sorted walker ``positions``: list of new sorted positions."""
    out = []
    for moves in itertools.product((-1, 1), repeat=len(positions)):
        new = [p + m for p, m in zip(positions, moves)]
        if new and (min(new) < 0 or max(new) > L - 1 or len(set(new)) < len(new)):
            continue
        swap = any(new[k] == positions[k + 1] and new[k + 1] == positions[k]
                   for k in range(len(positions) - 1))
        if not swap:
            out.append(tuple(sorted(new)))
    return out


def walker_log_survival(L, starts, n):
    """``log`` probability of ``n`` steps without a forbidden event: DP over ``C(L, D)`` states."""
    counts = {tuple(sorted(starts)): 1}
    for _ in range(n):
        nxt = {}
        for pos, c in counts.items():
            for q in walker_steps(pos, L):
                nxt[q] = nxt.get(q, 0) + c
        counts = nxt
    total = sum(counts.values())  # an exact integer count of non-crossing path tuples
    return math.log(total) - n * len(starts) * math.log(2) if total else -np.inf  # big ints


def spins_theta(L, c, s):
    return L * (-1 + np.sqrt(1 - 4 * c * (1 - c) * (1 - np.exp(-2 * s)))) / 2


# ------------------------------------------------------------------ checks of the oracles
@pytest.mark.parametrize("s", [-0.3, 0.0, 0.5])
def test_spin_oracle_matches_closed_form(s):
    w = dense_generator("spins", 3, s, c=0.3)
    theta = np.linalg.eigvals(w).real.max()
    np.testing.assert_allclose(theta, spins_theta(3, 0.3, s), rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("model,params", [("east", {"c": 0.4}), ("fa", {"c": 0.4}),
                                          ("tasep", {"alpha": 0.3, "beta": 0.7}),
                                          ("ssep", {"alpha": 0.3, "gamma": 0.2, "delta": 0.1,
                                                    "beta": 0.6})])
def test_oracle_generators_conserve_probability(model, params):
    w = dense_generator(model, 4, 0.0, **params)
    np.testing.assert_allclose(w.sum(axis=0), 0.0, atol=1e-14)
    assert (w - np.diag(np.diag(w)) >= 0).all()


def test_walker_dp_single_walker_is_the_excursion_count():
    # one walker on L sites never leaving: the paths of a walk in a strip, counted by the
    # transfer matrix of the path graph
    L, n = 5, 9
    adjacency = np.eye(L, k=1) + np.eye(L, k=-1)
    count = np.linalg.matrix_power(adjacency, n)[:, 2].sum()
    np.testing.assert_allclose(walker_log_survival(L, [2], n), np.log(count) - n * np.log(2),
                               rtol=1e-14)


def test_log_power_helper_matches_matrix_power():
    p = np.array([[0.5, 0.2], [0.3, 0.1]])
    v = np.array([0.4, 0.6])
    want = np.log((np.linalg.matrix_power(p, 30) @ v).sum())
    np.testing.assert_allclose(log_matrix_power_sum(p, v, 30), want, rtol=1e-12)
