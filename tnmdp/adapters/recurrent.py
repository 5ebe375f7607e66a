"""Recurrent policies whose recurrent matrix is low rank ⊙ sparse (jax; optional extra ``[rnn]``).

Four cells, all with hidden size ``H``, input ``x`` (``n_inputs``) and ``G`` gates whose
recurrent weights are stacked in one matrix ``U`` of shape ``(G H, H)``:

- ``"rnn"`` (Elman, ``G = 1``): ``h' = tanh(W x + U h + b)``;
- ``"gru"`` (Cho et al. 2014, ``G = 3``): ``z, r = sigma(.)``,
  ``n = tanh(W_n x + r ⊙ U_n h + b_n)``, ``h' = (1 - z) ⊙ n + z ⊙ h``;
- ``"lstm"`` (Hochreiter & Schmidhuber 1997, ``G = 4``): ``c' = sigma(f) ⊙ c + sigma(i) ⊙ tanh(g)``,
  ``h' = sigma(o) ⊙ tanh(c')`` (forget-gate bias initialised to 1);
- ``"cfc"`` (closed-form continuous-time cell, Hasani et al., Nature Machine Intelligence 2022,
  default mode without backbone, time step 1, ``G = 4``): ``f1 = tanh(.)``, ``f2 = tanh(.)``,
  ``s = sigma(-t_a + t_b)``, ``h' = f1 ⊙ (1 - s) + s ⊙ f2``.

The recurrent matrix is parameterised as in arXiv 2310.03915, ``U = (U1 U2) ⊙ M``
(:class:`~tnmdp.adapters.lowrank_sparse.LowRankSparse`): ``U1 (G H, r)`` and ``U2 (r, H)`` from
the rank-``r`` SVD truncation of a Glorot-normal initial matrix, ``M`` a fixed
Bernoulli(``1 - sparsity``) mask; at full rank (``r = H``) ``U`` is one dense trainable matrix
(still masked). Input weights ``W (G H, n_inputs)``, biases and the linear read-out
``(n_actions, H)`` are dense. The action logits at step ``t`` are read from ``h_t`` after the
cell has seen ``x_t`` (``h_{-1} = 0``).

Training is imitation (behaviour cloning) of a teacher's actions along its own trajectories:
masked cross-entropy, gradients by ``jax.value_and_grad`` through ``jax.lax.scan`` (automatic
differentiation; no hand-written backpropagation through time), steps by the shared
:class:`tnmdp.adapters.optim.Adam`. jax is imported only when a function of this module runs,
and then switched to 64-bit floats (``jax_enable_x64``; a global jax setting) so that gradients
can be checked against finite differences.
"""

from __future__ import annotations

import numbers

import numpy as np
import scipy.sparse as sp

from ..model import _check_int, as_rng
from .lowrank_sparse import LowRankSparse

__all__ = ["RecurrentPolicy", "CELLS", "imitation_fit", "closed_loop"]

#: Cell name -> number of gates sharing the stacked recurrent matrix.
CELLS = {"rnn": 1, "gru": 3, "lstm": 4, "cfc": 4}


def _jax():
    try:
        import jax
        import jax.numpy as jnp
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("tnmdp.adapters.recurrent needs jax: pip install 'tnmdp[rnn]'") from err
    jax.config.update("jax_enable_x64", True)
    return jax, jnp


def _cell_step(kind, params, mask, carry, x):
    """One step of a cell on a batch: ``carry`` is ``h`` (B, H) or ``(h, c)`` for the LSTM."""
    _, jnp = _jax()
    from jax.nn import sigmoid

    if "U" in params:
        U = params["U"] * mask
    else:
        U = (params["U1"] @ params["U2"]) * mask
    h = carry[0] if kind == "lstm" else carry
    H = h.shape[-1]
    xin = x @ params["W"].T + params["b"]
    rec = h @ U.T
    if kind == "rnn":
        return jnp.tanh(xin + rec)
    if kind == "gru":
        z = sigmoid(xin[:, :H] + rec[:, :H])
        r = sigmoid(xin[:, H:2 * H] + rec[:, H:2 * H])
        n = jnp.tanh(xin[:, 2 * H:] + r * rec[:, 2 * H:])
        return (1 - z) * n + z * h
    pre = xin + rec
    a, b_, c_, d = (pre[:, k * H:(k + 1) * H] for k in range(4))
    if kind == "lstm":
        c = sigmoid(b_) * carry[1] + sigmoid(a) * jnp.tanh(c_)
        return (sigmoid(d) * jnp.tanh(c), c)
    s = sigmoid(-c_ + d)  # cfc: a, b_ = f1, f2 pre-activations; c_, d = t_a, t_b
    return jnp.tanh(a) * (1 - s) + s * jnp.tanh(b_)


def _initial_carry(kind, batch, n_hidden):
    _, jnp = _jax()
    h = jnp.zeros((batch, n_hidden))
    return (h, jnp.zeros((batch, n_hidden))) if kind == "lstm" else h


def _hidden(kind, carry):
    return carry[0] if kind == "lstm" else carry


def _sequence_logits(kind, params, mask, obs):
    """Logits ``(B, T, A)`` of observation sequences ``(B, T, n_inputs)``."""
    jax, jnp = _jax()
    B = obs.shape[0]
    H = params["W_out"].shape[1]

    def step(carry, x):
        carry = _cell_step(kind, params, mask, carry, x)
        return carry, _hidden(kind, carry) @ params["W_out"].T + params["b_out"]

    _, logits = jax.lax.scan(step, _initial_carry(kind, B, H), jnp.swapaxes(obs, 0, 1))
    return jnp.swapaxes(logits, 0, 1)


def _imitation_loss(kind, params, mask, obs, actions, valid):
    jax, jnp = _jax()
    logp = jax.nn.log_softmax(_sequence_logits(kind, params, mask, obs), axis=-1)
    picked = jnp.take_along_axis(logp, actions[..., None], axis=-1)[..., 0]
    return -jnp.sum(picked * valid) / jnp.sum(valid)


class RecurrentPolicy:
    """A recurrent policy with a low-rank ⊙ sparse recurrent matrix.

    Parameters
    ----------
    kind : {"rnn", "gru", "lstm", "cfc"}
    n_inputs, n_hidden, n_actions : int
    rank : int or None
        ``1..n_hidden``; ``None`` or ``n_hidden`` means full rank (one dense ``U``).
    sparsity : float in [0, 1)
        Probability that a recurrent connection is masked out.
    rng : numpy.random.Generator or int or None
        Initial weights and the mask.

    Attributes
    ----------
    params : dict of str -> ndarray
        ``W (G H, n_inputs)``, ``b (G H,)``, ``U (G H, H)`` or ``U1 (G H, r)`` and
        ``U2 (r, H)``, ``W_out (A, H)``, ``b_out (A,)``.
    mask : ndarray of float, shape (G H, H)
        The fixed mask ``M``.
    """

    def __init__(self, kind, n_inputs, n_hidden, n_actions, *, rank=None, sparsity=0.0,
                 rng=None):
        if kind not in CELLS:
            raise ValueError(f"kind must be one of {sorted(CELLS)}, got {kind!r}")
        self.kind = kind
        self.n_inputs = _check_int("n_inputs", n_inputs, 1)
        self.n_hidden = H = _check_int("n_hidden", n_hidden, 1)
        self.n_actions = _check_int("n_actions", n_actions, 1)
        rank = H if rank is None else _check_int("rank", rank, 1)
        if rank > H:
            raise ValueError(f"rank must be <= n_hidden = {H}, got {rank}")
        self.rank = rank
        rng = as_rng(rng)
        G = CELLS[kind]
        W0 = rng.normal(scale=np.sqrt(2.0 / (G * H + H)), size=(G * H, H))  # Glorot normal
        lrs = LowRankSparse.from_matrix(W0, rank, sparsity, rng)
        self.sparsity = float(sparsity)
        b = np.zeros(G * H)
        if kind == "lstm":
            b[H:2 * H] = 1.0  # forget gate open at the start
        params = {"W": rng.normal(scale=np.sqrt(2.0 / (G * H + n_inputs)), size=(G * H, n_inputs)),
                  "b": b,
                  "W_out": rng.normal(scale=np.sqrt(2.0 / (H + n_actions)), size=(n_actions, H)),
                  "b_out": np.zeros(n_actions)}
        if rank == H:
            params["U"] = lrs.matrix()
        else:
            params["U1"], params["U2"] = lrs.W1, lrs.W2
        self.params = {k: np.asarray(v, dtype=float) for k, v in params.items()}
        self.mask = lrs.mask.astype(float)

    def __repr__(self):
        return (f"RecurrentPolicy({self.kind!r}, n_hidden={self.n_hidden}, rank={self.rank}, "
                f"sparsity={self.sparsity})")

    @property
    def n_gates(self):
        return CELLS[self.kind]

    @property
    def n_recurrent_parameters(self):
        """Free recurrent weights: ``r (G H + H)`` when factored, ``nnz(M)`` at full rank."""
        if "U" in self.params:
            return int(np.asarray(self.mask).sum())
        return int(self.params["U1"].size + self.params["U2"].size)

    @property
    def n_parameters(self):
        """All free parameters (masked-out entries of a dense ``U`` not counted)."""
        dense = sum(int(v.size) for k, v in self.params.items() if k not in ("U", "U1", "U2"))
        return dense + self.n_recurrent_parameters

    def recurrent_matrix(self):
        """The current recurrent matrix as a :class:`LowRankSparse`, shape ``(G H, H)``."""
        mask = np.asarray(self.mask).astype(bool)
        if "U" in self.params:
            U = np.asarray(self.params["U"])
            return LowRankSparse(U, np.eye(self.n_hidden), mask)
        return LowRankSparse(np.asarray(self.params["U1"]), np.asarray(self.params["U2"]), mask)

    def gate_spectra(self):
        """Spectral radius and norm of each square gate block ``U[g H:(g+1) H]``, shape (G, 2)."""
        U = self.recurrent_matrix().matrix()
        H = self.n_hidden
        out = []
        for g in range(self.n_gates):
            block = U[g * H:(g + 1) * H]
            out.append((float(np.max(np.abs(np.linalg.eigvals(block)))),
                        float(np.linalg.norm(block, 2))))
        return np.array(out)

    def _check_obs(self, obs):
        obs = np.asarray(obs, dtype=float)
        if obs.ndim != 3 or obs.shape[2] != self.n_inputs:
            raise ValueError(f"obs must have shape (B, T, {self.n_inputs}), got {obs.shape}")
        return obs

    def logits(self, obs):
        """Action logits ``(B, T, A)`` for observation sequences ``(B, T, n_inputs)``."""
        return np.asarray(_sequence_logits(self.kind, self.params, self.mask,
                                           self._check_obs(obs)))

    def loss_and_grad(self, obs, actions, valid):
        """Masked imitation cross-entropy and its gradient (``jax.value_and_grad``).

        Parameters
        ----------
        obs : array_like, shape (B, T, n_inputs)
        actions : array_like of int, shape (B, T)
            Teacher actions.
        valid : array_like of {0, 1}, shape (B, T)
            Steps that count (e.g. before the episode ended).

        Returns
        -------
        loss : float
        grads : dict of str -> ndarray, keyed as :attr:`params`
        """
        obs, actions, valid = self._check_batch(obs, actions, valid)
        loss, grads = _value_and_grad(self.kind)(self.params, self.mask, obs, actions, valid)
        return float(loss), {k: np.asarray(g) for k, g in grads.items()}

    def _check_batch(self, obs, actions, valid):
        _, jnp = _jax()
        obs = self._check_obs(obs)
        actions = np.asarray(actions)
        valid = np.asarray(valid, dtype=float)
        if actions.shape != obs.shape[:2] or valid.shape != obs.shape[:2]:
            raise ValueError(f"actions and valid must have shape {obs.shape[:2]}, got "
                             f"{actions.shape} and {valid.shape}")
        if not np.issubdtype(actions.dtype, np.integer):
            raise TypeError(f"actions must be integers, got dtype {actions.dtype}")
        bad = (actions < 0) | (actions >= self.n_actions)
        if bad.any():
            b, t = np.argwhere(bad)[0]
            raise ValueError(f"actions[{b}, {t}] = {actions[b, t]} is outside "
                             f"0..{self.n_actions - 1}")
        if valid.sum() == 0:
            raise ValueError("valid marks no step")
        return jnp.asarray(obs), jnp.asarray(actions), jnp.asarray(valid)

    def step(self, carry, obs):
        """One closed-loop step for a batch: returns ``(carry, logits (B, A))``; ``carry=None``
        starts from zero."""
        _, jnp = _jax()
        obs = jnp.asarray(np.asarray(obs, dtype=float))
        if carry is None:
            carry = _initial_carry(self.kind, obs.shape[0], self.n_hidden)
        return _jit_step(self.kind)(self.params, self.mask, carry, obs)


_CACHE = {}


def _value_and_grad(kind):
    key = ("vg", kind)
    if key not in _CACHE:
        jax, _ = _jax()
        _CACHE[key] = jax.jit(jax.value_and_grad(
            lambda p, m, o, a, v: _imitation_loss(kind, p, m, o, a, v)))
    return _CACHE[key]


def _jit_step(kind):
    key = ("step", kind)
    if key not in _CACHE:
        jax, _ = _jax()

        def step(params, mask, carry, obs):
            carry = _cell_step(kind, params, mask, carry, obs)
            return carry, _hidden(kind, carry) @ params["W_out"].T + params["b_out"]

        _CACHE[key] = jax.jit(step)
    return _CACHE[key]


def _value_and_grad_batched(kind):
    key = ("vg_batched", kind)
    if key not in _CACHE:
        jax, _ = _jax()
        vg = jax.value_and_grad(lambda p, m, o, a, v: _imitation_loss(kind, p, m, o, a, v))
        _CACHE[key] = jax.jit(jax.vmap(vg, in_axes=(0, 0, None, None, None)))
    return _CACHE[key]


def imitation_fit(policy, obs, actions, valid, *, n_steps=300, learning_rate=1e-2):
    """Fit a policy (or several alike) to teacher actions: full-batch Adam on the masked
    cross-entropy.

    Parameters
    ----------
    policy : RecurrentPolicy or sequence of RecurrentPolicy
        Several policies of the same kind and shapes (e.g. seeds, each with its own mask) are
        trained together: their parameters are stacked and the gradient is ``jax.vmap``-ed,
        which gives each exactly the updates it would get alone (Adam is elementwise).
    obs : array_like, shape (B, T, n_inputs)
    actions : array_like of int, shape (B, T)
    valid : array_like of {0, 1}, shape (B, T)
    n_steps : int
    learning_rate : float
        Adam step size (:class:`tnmdp.adapters.optim.Adam`).

    Returns
    -------
    ndarray, shape (n_steps,) or (n_policies, n_steps)
        The loss before each step.
    """
    from .optim import Adam

    n_steps = _check_int("n_steps", n_steps, 1)
    single = isinstance(policy, RecurrentPolicy)
    policies = [policy] if single else list(policy)
    if not policies or not all(isinstance(p, RecurrentPolicy) for p in policies):
        raise TypeError("policy must be a RecurrentPolicy or a non-empty sequence of them")
    first = policies[0]
    for p in policies[1:]:
        if p.kind != first.kind or any(p.params[k].shape != v.shape
                                       for k, v in first.params.items()):
            raise ValueError(f"policies trained together must share kind and shapes; got "
                             f"{first!r} and {p!r}")
    obs, actions, valid = first._check_batch(obs, actions, valid)
    params = {k: np.stack([p.params[k] for p in policies]) for k in first.params}
    masks = np.stack([p.mask for p in policies])
    vg = _value_and_grad_batched(first.kind)
    opt = Adam(learning_rate)
    losses = np.empty((len(policies), n_steps))
    for i in range(n_steps):  # the optimiser steps numpy arrays (eager jax ops are slow)
        loss, grads = vg(params, masks, obs, actions, valid)
        losses[:, i] = np.asarray(loss)
        params = opt.step(params, {k: np.asarray(g) for k, g in grads.items()})
    for j, p in enumerate(policies):
        p.params = {k: np.array(v[j]) for k, v in params.items()}
    return losses[0] if single else losses


def closed_loop(policy, mdp, observations, n_episodes, *, obs_noise=0.0, rng=None):
    """Run ``policy`` greedily in ``mdp`` (online), seeing ``observations[s]`` plus noise.

    Parameters
    ----------
    policy : RecurrentPolicy
    mdp : FiniteMDP
        Stationary dense transitions; rewards of shape ``(S, A)`` or ``(S, A, S')``.
    observations : array_like, shape (S, n_inputs)
        Observation of each state.
    n_episodes : int
    obs_noise : float >= 0
        Standard deviation of Gaussian noise added to every observation (a shift).
    rng : numpy.random.Generator or int or None

    Returns
    -------
    ndarray, shape (n_episodes,)
        Returns ``sum_t gamma^t r_t`` (plus the terminal reward) of each episode.

    Notes
    -----
    Cost ``O(T (n_episodes S + cell))``; actions are the argmax of the logits.
    """
    n = _check_int("n_episodes", n_episodes, 1)
    if isinstance(obs_noise, bool) or not isinstance(obs_noise, numbers.Real) or obs_noise < 0:
        raise ValueError(f"obs_noise must be a real number >= 0, got {obs_noise!r}")
    O = np.asarray(observations, dtype=float)
    S, A = mdp.n_states, mdp.n_actions
    if O.shape != (S, policy.n_inputs):
        raise ValueError(f"observations must have shape {(S, policy.n_inputs)}, got {O.shape}")
    rng = as_rng(rng)
    s = rng.choice(S, size=n, p=mdp.initial)
    total = np.zeros(n)
    carry = None
    for t in range(mdp.horizon):
        P = mdp.transition_matrix(t)  # (S*A, S), dense or sparse
        P = (P.toarray() if sp.issparse(P) else np.asarray(P)).reshape(S, A, S)
        R = np.broadcast_to(mdp.reward_slice(t), (S, A, S))
        x = O[s] + obs_noise * rng.standard_normal((n, O.shape[1]))
        carry, logits = policy.step(carry, x)
        a = np.asarray(logits).argmax(axis=1)
        cdf = np.cumsum(P[s, a], axis=1)
        s2 = np.minimum((cdf < rng.random(n)[:, None] * cdf[:, -1:]).sum(axis=1), S - 1)
        total += mdp.discount ** t * R[s, a, s2]
        s = s2
    return total + mdp.discount ** mdp.horizon * mdp.terminal_rewards[s]
