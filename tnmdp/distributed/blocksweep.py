"""The backward sweep and policy evaluation over row blocks held by Dask workers.

Backward induction on a :class:`~tnmdp.distributed.BlockMDP` with ``B`` blocks is a chain of
``T`` steps. Step ``t`` runs one task per block, on the worker that holds the block: the task
receives the value slices of step ``t + 1`` (``V_{t+1}``, ``S`` floats in all; Dask moves each
slice once to each worker that needs it), backs up its rows with the compiled kernels of
:mod:`tnmdp.distributed.kernels` -- the site update of :func:`tnmdp.solve` on a row block -- and
returns its slice of ``V_t`` and its policy rows. The whole chain is submitted at once, so the
client is not on the critical path; only ``V_0`` (``S`` floats) comes back. The policy stays on
the workers (small ints per state and step for the argmax; the soft values ``V_{t+1}`` from
which the Boltzmann rows are recomputed for ``temperature > 0``) in a :class:`BlockPolicy`.

Communication per step (``W`` workers, ``B >= W`` blocks): a step's task reads the
``(V_{t+1}, actions_{t+1})`` results of all blocks, so each worker receives the pairs it does
not hold, ``(8 + a) S (1 - 1/W)`` bytes with ``a`` the bytes of a small-int action (1 for
``A <= 127``), and the cluster moves ``(8 + a) S (W - 1)`` bytes (``16 S (W - 1)`` for the soft
sweep: soft and plain values). The scheduler handles two tasks per block and step (the backup
and, off the critical path, the extraction of the policy rows that outlive the pair); the
critical path crosses it once per step.

Failures: a task's inputs are Dask futures with their lineage, so a worker lost mid-sweep makes
Dask rebuild its blocks (``block_fn`` is called again) and recompute the lost slices; a task
that keeps killing workers ends in ``distributed.KilledWorker``. No result is assembled from a
partial set of slices.
"""

from __future__ import annotations

import numbers
import operator
import uuid

import numpy as np

from ..kernels import small_int_dtype, weighted_sum
from ..policy import Policy, as_policy
from ..solution import Solution
from .blocks import BlockMDP

__all__ = ["solve", "evaluate", "BlockPolicy"]


# ---------------------------------------------------------------------------- worker side
def _full(pairs):
    """``V`` from the value slices ``pair[0]`` of the blocks' results of the previous step,
    with the trailing ``0`` the kernels read for padded entries."""
    from .kernels import fill

    return fill(np.empty(sum(pair[0].shape[0] for pair in pairs) + 1),
                [pair[0] for pair in pairs])


def _uniform_reference(n_actions):
    log_pi0 = np.full((1, n_actions), -np.log(n_actions))
    return log_pi0, np.exp(log_pi0)


def _argmax_step(block, t, gamma, slices):
    """The blocks' ``(V_{t+1}, ...)`` results -> this block's ``(V_t, actions_t)``."""
    from .kernels import block_argmax

    args, rbar = block.site(t)
    n, n_actions = rbar.shape
    values = np.empty(n)
    actions = np.empty(n, dtype=small_int_dtype(n_actions))
    block_argmax(*args, rbar, gamma, _full(slices), np.empty(n * n_actions), values, actions)
    return values, actions


def _soft_run(block, t, gamma, tau, v_pairs, u_pairs, with_probs):
    from .kernels import block_soft

    args, rbar = block.site(t)
    n, n_actions = rbar.shape
    values, plain = np.empty(n), np.empty(n)
    probs = np.empty((n if with_probs else 0, n_actions))
    x = _full(v_pairs)
    y = x if u_pairs is None else _full(u_pairs)
    block_soft(*args, rbar, gamma, tau, *_uniform_reference(n_actions), x, y,
               np.empty(n * n_actions), np.empty(n * n_actions), values, plain, probs,
               np.empty((5 if n_actions == 2 else 0, n)))
    return values, plain, probs


def _soft_step(block, t, gamma, tau, pairs):
    """The blocks' ``(V_{t+1}, u_{t+1})`` (soft and plain values) -> this block's
    ``(V_t, u_t)``."""
    values, plain, _ = _soft_run(block, t, gamma, tau, pairs,
                                 [(pair[1],) for pair in pairs], False)
    return values, plain


def _soft_site(block, t, gamma, tau, v_slices):
    """This block's Boltzmann policy rows ``pi_t``, shape ``(n, A)``, from ``V_{t+1}``."""
    return _soft_run(block, t, gamma, tau, [(v,) for v in v_slices], None, True)[2]


def _value_step(block, t, gamma, site, slices):
    """The blocks' ``(V_{t+1},)`` -> this block's ``(V_t,)`` under the policy rows ``site``."""
    from .kernels import block_policy_value

    args, rbar = block.site(t)
    n, n_actions = rbar.shape
    values = np.empty(n)
    probs = site if site.ndim == 2 else np.empty((0, n_actions))
    block_policy_value(*args, rbar, gamma, _full(slices), np.empty(n * n_actions), site
                       if site.ndim == 1 else np.zeros(n, dtype=np.int8), probs, values)
    return (values,)


def _forward_step(block, t, dist):
    """This block's share of ``Pr(s_{t+1} = .)`` under the uniform policy, and its gain."""
    from .kernels import block_forward

    args, rbar = block.site(t)
    share = np.empty(block.n_states + 1)
    gain = block_forward(*args, rbar, dist, share)
    return share[:-1], gain


def _left_slice(lo, hi, shares):
    """``Pr(s_t = s)`` for ``lo <= s < hi``: the sum of the blocks' shares."""
    out = shares[0][0][lo:hi].copy()
    for share in shares[1:]:
        out += share[0][lo:hi]
    return out


def _masked_dot(dist, values):
    """``sum_{dist > 0} dist * V`` over a block (``0 * -inf`` never enters)."""
    values = values[0] if isinstance(values, tuple) else values
    support = dist > 0
    return float(np.dot(dist[support], values[support]))


# ---------------------------------------------------------------------------- client side
def _get_client(client):
    from distributed import Client, get_client

    if client is None:
        try:
            return get_client()
        except ValueError:
            raise ValueError("no Dask client: pass client=distributed.Client(...) (e.g. "
                             "Client('tcp://scheduler:8786') or Client(LocalCluster()))") from None
    if not isinstance(client, Client):
        raise TypeError(f"client must be a distributed.Client, got {type(client).__name__}")
    return client


def _check_block_mdp(block_mdp):
    if not isinstance(block_mdp, BlockMDP):
        raise TypeError(f"block_mdp must be a tnmdp.distributed.BlockMDP, got "
                        f"{type(block_mdp).__name__}")


class _Submitter:
    """Submits the tasks of one sweep: each block's tasks go (loosely) to its block's worker."""

    def __init__(self, client, blocks, kind):
        self.client, self.blocks = client, blocks
        who = client.who_has(blocks)
        self.where = [list(who.get(f.key, ())) or None for f in blocks]
        self.token = f"{kind}-{uuid.uuid4().hex[:12]}"

    def __call__(self, name, t, b, func, *args):
        return self.client.submit(func, *args, key=f"tnmdp-{name}-{self.token}-t{t}-b{b}",
                                  workers=self.where[b], allow_other_workers=True, pure=False)

    def terminal(self, block_mdp):
        """Futures of ``(V_T, V_T)`` slices per block: tasks holding their data (so Dask can
        recompute them after a failure; scattered data would be lost with its worker)."""
        terminal = block_mdp.terminal_rewards
        zero = not terminal.any()
        return [self("terminal", block_mdp.horizon, b, _zero_pair, hi - lo) if zero else
                self("terminal", block_mdp.horizon, b, _as_pair, terminal[lo:hi].copy(),
                     terminal[lo:hi].copy()) for b, (lo, hi) in enumerate(block_mdp.bounds)]

    def step(self, name, t, b, keep, func, *args):
        """Submit ``func(block_b, t, *args) -> (x, y)``; return the future of the pair (the
        next step reads it: one scheduler hop per step) and of ``pair[keep]`` alone (off the
        critical path; it outlives the pair)."""
        pair = self(name, t, b, func, self.blocks[b], t, *args)
        return pair, self(f"{name}{keep}", t, b, operator.getitem, pair, keep)


def _as_pair(x, y):
    return x, y


def _zero_pair(n):
    zeros = np.zeros(n)
    return zeros, zeros


def _identity(x):
    return x


def _gather_vector(client, futures, index):
    """The concatenation of ``result[index]`` of the blocks' futures (sent back alone)."""
    return np.concatenate(client.gather([client.submit(operator.getitem, f, index, pure=False)
                                         for f in futures]))


def _history(block_mdp, client, values):
    """The objective after each site update of the backward sweep, in sweep order.

    ``values[t]`` are futures of ``V_t`` (block slices, or pairs holding them first), ``t =
    0..T-1``. The objective after updating site ``t`` is ``acc_t + gamma^t <left_t, V_t>``,
    ``left_t`` and ``acc_t`` the left environment of the uniform initial policy (as
    :func:`tnmdp.solve` records it): one forward pass over the blocks, each block summing the
    shares of ``left_{t+1}`` of all blocks (``B S`` floats moved per block and step).
    """
    blocks = block_mdp.blocks(client)
    submit = _Submitter(client, blocks, "history")
    T, bounds = block_mdp.horizon, block_mdp.bounds
    dist = [submit("left", 0, b, _identity, block_mdp.initial[lo:hi].copy())
            for b, (lo, hi) in enumerate(bounds)]
    gains, dots = [], []
    for t in range(T):
        shares = [submit("forward", t, b, _forward_step, blocks[b], t, dist[b])
                  for b in range(len(blocks))]
        gains.append([submit("gain", t, b, operator.getitem, f, 1) for b, f in enumerate(shares)])
        dots.append([submit("dot", t, b, _masked_dot, dist[b], v)
                     for b, v in enumerate(values[t])])
        if t < T - 1:
            dist = [submit("left", t + 1, b, _left_slice, lo, hi, shares)
                    for b, (lo, hi) in enumerate(bounds)]
    gains, dots = client.gather(gains), client.gather(dots)
    gamma = block_mdp.discount
    powers = gamma ** np.arange(T, dtype=np.float64) if gamma != 1.0 else np.ones(T)
    history, acc = np.empty(T), 0.0
    for t in range(T):
        history[t] = acc + powers[t] * sum(dots[t])
        acc = acc + powers[t] * sum(gains[t])
    return history[::-1].copy()


def _optimal_values(block_mdp, client, blocks, actions):
    """Futures of ``V_t`` (``t = 0..T-1``, per block) of an argmax policy, recomputed."""
    submit = _Submitter(client, blocks, "values")
    v, values = submit.terminal(block_mdp), [None] * block_mdp.horizon
    for t in range(block_mdp.horizon - 1, -1, -1):
        v = [submit("value", t, b, _value_step, blocks[b], t, block_mdp.discount,
                    actions[t][b], v) for b in range(len(blocks))]
        values[t] = v
    return values


def _check_temperature(temperature):
    if isinstance(temperature, bool) or not isinstance(temperature, numbers.Real) or not (
            np.isfinite(temperature) and temperature >= 0):
        raise ValueError(f"temperature must be a finite number >= 0, got {temperature!r}")
    return float(temperature)


def solve(block_mdp, client=None, *, temperature=0.0):
    """Exact backward induction on a row-block model, on a Dask cluster.

    Parameters
    ----------
    block_mdp : BlockMDP
    client : distributed.Client, optional
        Default: the current client (:func:`distributed.get_client`).
    temperature : float
        ``tau >= 0``; ``tau > 0`` selects the KL-regularised objective with the uniform
        reference policy, as :func:`tnmdp.solve` with ``temperature=tau``.

    Returns
    -------
    Solution
        ``policy`` is a :class:`BlockPolicy` held on the workers; ``values`` (``(S,)``),
        ``expected_return`` and ``soft_value`` are those of :func:`tnmdp.solve` on the same
        model. ``history`` (the objective after each site update, as :func:`tnmdp.solve`
        records it from the uniform initial policy) is computed on first access: one forward
        pass over the blocks (plus, for ``tau = 0``, one backward pass recomputing ``V_t``).

    Raises
    ------
    ValueError, TypeError
        From the validation of a block on its worker, naming the global ``(t, s, a)``.
    distributed.KilledWorker
        When Dask gives up on a task after repeated worker failures.

    Notes
    -----
    Cost per step: ``O(nnz / W)`` compute on each of ``W`` workers plus ``(8 + a) S (W - 1)``
    bytes moved (``a``: bytes of an action; ``16 S (W - 1)`` for ``tau > 0``) and one scheduler
    round trip; the client receives ``V_0`` only. Worker memory:
    the blocks, plus ``T S`` small ints of policy (``tau = 0``) or ``T S`` floats of soft values
    (``tau > 0``).
    """
    _check_block_mdp(block_mdp)
    temperature = _check_temperature(temperature)
    client = _get_client(client)
    blocks = block_mdp.blocks(client)
    submit = _Submitter(client, blocks, "soft" if temperature > 0 else "argmax")
    gamma, T, B = block_mdp.discount, block_mdp.horizon, block_mdp.n_blocks
    pairs = submit.terminal(block_mdp)
    if temperature == 0:
        actions = [None] * T
        for t in range(T - 1, -1, -1):
            pairs, actions[t] = (list(x) for x in zip(*[
                submit.step("argmax", t, b, 1, _argmax_step, gamma, pairs) for b in range(B)]))
        values = _gather_vector(client, pairs, 0)
        policy = BlockPolicy(block_mdp, client, sites=actions)
        soft_value = None

        def history():
            return _history(block_mdp, client,
                            _optimal_values(block_mdp, client, blocks, actions))
    else:
        soft_values = [None] * T
        soft_values[T - 1] = [submit("softT", T, b, operator.getitem, pair, 0)
                              for b, pair in enumerate(pairs)]
        for t in range(T - 1, -1, -1):
            pairs, kept = (list(x) for x in zip(*[
                submit.step("soft", t, b, 0, _soft_step, gamma, temperature, pairs)
                for b in range(B)]))
            if t > 0:
                soft_values[t - 1] = kept
        soft = _gather_vector(client, pairs, 0)
        values = _gather_vector(client, pairs, 1)
        policy = BlockPolicy(block_mdp, client, soft_values=soft_values,
                             temperature=temperature)
        soft_value = weighted_sum(block_mdp.initial, soft)
        soft_at = [pairs] + soft_values[:-1]  # V_t, t = 0..T-1

        def history():
            return _history(block_mdp, client, soft_at)
    values.flags.writeable = False
    message = "converged: a backward sweep with an optimal local solver is exact"
    return Solution(policy=policy, expected_return=weighted_sum(block_mdp.initial, values),
                    values=values, soft_value=soft_value, history=history,
                    n_sweeps=1, success=True, status=0, message=message)


class _Sites:
    """``sites[t]``: site ``t`` of a :class:`BlockPolicy`, gathered from the workers."""

    def __init__(self, policy):
        self.policy = policy

    def __len__(self):
        return self.policy.mdp.horizon

    def __getitem__(self, t):
        futures = self.policy.site_futures(t)
        return np.concatenate(self.policy.client.gather(futures))


class BlockPolicy(Policy):
    """A policy held as row blocks on a Dask cluster, gathered only on request.

    Returned by :func:`solve`; array-like as :class:`tnmdp.Policy` (``policy[t]`` gathers one
    site, ``np.asarray(policy)`` all of them); :meth:`gather` returns an ordinary local
    :class:`tnmdp.Policy`.

    Attributes
    ----------
    client : distributed.Client
    bounds : tuple of (int, int)
        The row blocks, as the model's.
    temperature : float
        ``0`` for a policy given by its sites (the argmax: small-int actions), ``tau > 0`` for
        the Boltzmann policy of a soft sweep (rows recomputed from the soft values).
    """

    def __init__(self, block_mdp, client, *, sites=None, soft_values=None, temperature=0.0):
        self.mdp, self.client, self.bounds = block_mdp, client, block_mdp.bounds
        self.temperature = temperature
        self._site_futures, self._soft_values = sites, soft_values
        super().__init__(_Sites(self), block_mdp.n_states, block_mdp.n_actions)

    @classmethod
    def from_local(cls, policy, block_mdp, client):
        """Split a local policy (Policy or ``(T, S, A)`` array) into the model's row blocks and
        send each block of sites to the worker holding the model's block (as tasks holding
        their data, which Dask can rerun after a failure)."""
        policy = as_policy(policy, block_mdp, name="policy")
        submit = _Submitter(client, block_mdp.blocks(client), "policy")
        sites = [[submit("site", t, b, _identity, np.array(policy.site(t)[lo:hi]))
                  for b, (lo, hi) in enumerate(block_mdp.bounds)]
                 for t in range(block_mdp.horizon)]
        return cls(block_mdp, client, sites=sites)

    def site_futures(self, t):
        """Futures of the block rows of site ``t`` (``(n,)`` ints or ``(n, A)`` probabilities);
        for a soft policy one task per block computes them."""
        if not -self.horizon <= t < self.horizon:
            raise IndexError(f"time step {t} outside 0..{self.horizon - 1}")
        t = int(t) % self.horizon
        if self._site_futures is not None:
            return self._site_futures[t]
        blocks = self.mdp.blocks(self.client)
        submit = _Submitter(self.client, blocks, "site")
        v_next = self._soft_values[t]
        return [submit("softsite", t, b, _soft_site, blocks[b], t, self.mdp.discount,
                       self.temperature, v_next) for b in range(len(blocks))]

    @property
    def deterministic(self):
        return self._site_futures is not None and self.gather().deterministic

    @property
    def actions(self):
        """``(T, S)`` small-int actions of a deterministic policy, gathered at once."""
        if self._site_futures is None:
            raise ValueError("policy is not deterministic: it has no .actions")
        return self.gather().actions

    def gather(self):
        """The whole policy as a local :class:`tnmdp.Policy` (compact: actions as small ints)."""
        if self._site_futures is not None:
            rows = self.client.gather(self._site_futures)
            sites = [np.concatenate(row) for row in rows]
        else:
            sites = [self.site(t) for t in range(self.horizon)]
        return Policy._from_sites(sites, self.n_states, self.n_actions)

    def __array__(self, dtype=None, copy=None):
        return np.asarray(self.gather(), dtype=dtype)

    @property
    def nbytes(self):
        """Bytes held locally (none: the sites live on the workers)."""
        return 0

    def __repr__(self):
        kind = "soft" if self._site_futures is None else "sites"
        return (f"BlockPolicy(T={self.horizon}, S={self.n_states}, A={self.n_actions}, "
                f"{kind}, blocks={len(self.bounds)})")


def evaluate(block_mdp, policy, client=None):
    """Expected return ``E[G]`` of a policy on a row-block model, on a Dask cluster.

    Parameters
    ----------
    block_mdp : BlockMDP
    policy : BlockPolicy or Policy or array_like, shape (T, S, A)
        A :class:`BlockPolicy` must have the model's blocks; a local policy is split into them
        and sent to the workers.
    client : distributed.Client, optional
        Default: the policy's client, else the current client.

    Returns
    -------
    float
        ``-inf`` when a forbidden (``-inf``) pair has positive probability.

    Notes
    -----
    The recursion ``V_t = sum_a pi_t Q_t`` of :func:`tnmdp.evaluate`, row block by row block:
    ``O(nnz / W)`` per step and worker, ``8 S (W - 1)`` bytes moved per step.
    """
    _check_block_mdp(block_mdp)
    if isinstance(policy, BlockPolicy):
        if client is not None and client is not policy.client:
            raise ValueError("policy is held by another client than the client given")
        if policy.bounds != block_mdp.bounds or policy.shape != (
                block_mdp.horizon, block_mdp.n_states, block_mdp.n_actions):
            raise ValueError(f"policy has shape {policy.shape} and blocks {policy.bounds}; the "
                             f"model needs {(block_mdp.horizon, block_mdp.n_states, block_mdp.n_actions)} "
                             f"and blocks {block_mdp.bounds} (gather it first: policy.gather())")
        client = policy.client
    else:
        client = _get_client(client)
        policy = BlockPolicy.from_local(policy, block_mdp, client)
    blocks = block_mdp.blocks(client)
    submit = _Submitter(client, blocks, "evaluate")
    v = submit.terminal(block_mdp)
    for t in range(block_mdp.horizon - 1, -1, -1):
        sites = policy.site_futures(t)
        v = [submit("value", t, b, _value_step, blocks[b], t, block_mdp.discount, sites[b], v)
             for b in range(len(blocks))]
    return weighted_sum(block_mdp.initial, _gather_vector(client, v, 0))
