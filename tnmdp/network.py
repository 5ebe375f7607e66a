"""The tensor network of Gillman, Rose & Garrahan (2020) as quimb objects.

::

    E[G] = <-r| G M |pi>

       c0 ── G_0 ──c1── G_1 ──c2── ... ── G_{T-1} ──cT── G_T ── cT+1       return MPO (bond 2)
              │r0        │r1                  │r{T-1}     │rT
      p0 ─s0─ M_0 ──s1── M_1 ──s2── ... ── M_{T-1} ──sT── E_T               dynamics MPO
              │a0  │s1   │a1                  │a{T-1}
             pi_0       pi_1                pi_{T-1}                         policy MPS (bond 1)

Index names: ``s{t}`` the state at time ``t`` (the dynamics bond), ``a{t}`` the action, ``r{t}``
the reward (a finite alphabet per site; ``rT`` the terminal reward), ``c{t}`` the return bond.
The policy site ``pi_t[s{t}, a{t}]`` and the dynamics site ``M_t[s{t}, a{t}, r{t}, s{t+1}] =
p_t(s', r | s, a)`` share the state index ``s{t}`` -- a hyperindex that plays the role of the
paper's copy tensor ``delta(b, s)``; ``copy_tensors=True`` builds that copy tensor explicitly
instead. The flat vectors ``<-r|`` are absorbed into the return MPO (its output legs summed).

These dense quimb tensors cost ``S^2 A K`` numbers per site (``K`` the size of the reward
alphabet), ``S^3`` more per copy tensor: they are for inspection, drawing and cross-checks up to
``S`` of a few hundred and ``T`` of a few hundred. The solvers contract the same network site by
site on arrays (:mod:`tnmdp.kernels`), at ``O(nnz(P_t))`` per site.
"""

from __future__ import annotations

from math import factorial

import numpy as np

from .reference import dense_model

__all__ = ["contract", "dynamics_mpo", "policy_mps", "return_mpo", "moment_mpo", "expected_return_network",
           "moment_network", "partition_network", "draw_network", "reward_alphabet"]


def _qtn():
    import quimb.tensor as qtn  # lazy: quimb's cold import takes seconds

    return qtn


def contract(tn, optimize="greedy"):
    """Fully contract a (hyper) network to a float.

    The state indices ``s{t}`` are hyperindices (three tensors each), so quimb needs the
    output indices stated: this is ``float(tn.contract(output_inds=(), optimize=optimize))``.
    """
    return float(tn.contract(output_inds=(), optimize=optimize))


def reward_alphabet(mdp, t):
    """The site's reward values and ``p_t(s', k | s, a)``, shape ``(S, A, K, S)``.

    For ``t == T`` (terminal): values and a one-hot ``(S, K)`` map.
    """
    if t == mdp.horizon:
        values, idx = np.unique(mdp.terminal_rewards, return_inverse=True)
        return values, np.eye(values.size)[idx]
    P, R = dense_model(mdp, t)
    law = mdp.reward_power_law(t)
    if law is not None:
        dist, values = law
        return values, np.einsum("ijk,ijkl->ijlk", P, dist)
    values, idx = np.unique(np.where(P > 0, R, np.nan)[P > 0], return_inverse=True)
    if values.size == 0:
        values = np.zeros(1)
    joint = np.zeros(P.shape[:2] + (values.size,) + P.shape[2:])
    s, a, s2 = np.nonzero(P > 0)
    joint[s, a, idx, s2] = P[s, a, s2]
    return values, joint


def _check_finite(mdp):
    if mdp.has_neg_inf:
        raise ValueError("the return network needs finite rewards; -inf rewards enter only the "
                         "tilted network (partition_network)")


def dynamics_mpo(mdp, *, copy_tensors=False):
    """The dynamics MPO ``M`` with the initial distribution and the terminal closure.

    Parameters
    ----------
    mdp : FiniteMDP
    copy_tensors : bool
        Build the paper's copy tensors ``delta(s{t}, b{t}, d{t})`` explicitly instead of letting
        ``s{t}`` be a hyperindex.

    Returns
    -------
    quimb.tensor.TensorNetwork
        Tensors tagged ``M0..M{T-1}``, ``P0`` (initial), ``END`` (terminal); open indices
        ``a{t}``, ``r{t}`` (``t = 0..T``) and, with hyperindices, ``s{t}`` to the policy.
    """
    qtn = _qtn()
    mdp.require_horizon()
    _check_finite(mdp)
    T = mdp.horizon
    tensors = [qtn.Tensor(mdp.initial.copy(), inds=("s0",), tags={"P0"})]
    for t in range(T):
        _, joint = reward_alphabet(mdp, t)
        left = f"b{t}" if copy_tensors else f"s{t}"
        tensors.append(qtn.Tensor(joint, inds=(left, f"a{t}", f"r{t}", f"s{t + 1}"),
                                  tags={f"M{t}", "M"}))
        if copy_tensors:
            S = mdp.n_states
            delta = np.zeros((S, S, S))
            delta[np.arange(S), np.arange(S), np.arange(S)] = 1.0
            tensors.append(qtn.Tensor(delta, inds=(f"s{t}", f"b{t}", f"d{t}"),
                                      tags={f"COPY{t}", "COPY"}))
    _, end = reward_alphabet(mdp, T)
    tensors.append(qtn.Tensor(end, inds=(f"s{T}", f"r{T}"), tags={"END"}))
    return qtn.TensorNetwork(tensors)


def policy_mps(mdp, policy, *, copy_tensors=False):
    """The product-state policy MPS: site ``t`` is ``pi_t[s{t}, a{t}]`` (bond dimension 1).

    With ``copy_tensors=True`` its state leg is ``d{t}`` (the copy tensor's third leg).
    """
    mdp.require_horizon()
    from .policy import as_policy

    qtn = _qtn()
    policy = as_policy(policy, mdp)
    leg = "d" if copy_tensors else "s"
    return qtn.TensorNetwork([qtn.Tensor(np.array(policy[t]), inds=(f"{leg}{t}", f"a{t}"),
                                         tags={f"PI{t}", "PI"}) for t in range(mdp.horizon)])


def moment_mpo(mdp, order=1):
    """Return MPO of bond ``order + 1`` whose contraction gives ``E[G^order]``.

    Site ``t`` holds ``W_t[i, k, j] = (gamma^t v_k)^(j-i) / (j-i)!`` for ``j >= i`` (zero
    below the diagonal), so the chain sums ``prod_t r_t^{k_t} / k_t!`` over all ways to split
    ``order = sum_t k_t``; the boundary vectors pick ``i = 0`` on the left and ``j = order`` on
    the right and carry ``order!``. For ``order = 1`` this is the paper's ``[[I, R], [0, I]]``.
    """
    qtn = _qtn()
    mdp.require_horizon()
    if order > 1:
        mdp.require_fixed_length("moment_mpo of order > 1")
    _check_finite(mdp)
    T, k = mdp.horizon, order
    tensors = []
    for t in range(T + 1):
        values, _ = reward_alphabet(mdp, t)
        scaled = mdp.discount ** t * values
        W = np.zeros((k + 1, values.size, k + 1))
        for i in range(k + 1):
            for j in range(i, k + 1):
                W[i, :, j] = scaled ** (j - i) / factorial(j - i)
        tensors.append(qtn.Tensor(W, inds=(f"c{t}", f"r{t}", f"c{t + 1}"), tags={f"G{t}", "G"}))
    first = np.zeros(k + 1)
    first[0] = 1.0
    last = np.zeros(k + 1)
    last[k] = float(factorial(k))
    tensors.append(qtn.Tensor(first, inds=("c0",), tags={"LEFT"}))
    tensors.append(qtn.Tensor(last, inds=(f"c{T + 1}",), tags={"RIGHT"}))
    return qtn.TensorNetwork(tensors)


def return_mpo(mdp):
    """The paper's return MPO (bond 2, ``[[I, R], [0, I]]``), closed with ``<-r|``."""
    return moment_mpo(mdp, 1)


def moment_network(mdp, policy, order, *, copy_tensors=False):
    """``<-r| G^(order) M |pi>``: contracts to ``E[G^order]``."""
    return (moment_mpo(mdp, order) | dynamics_mpo(mdp, copy_tensors=copy_tensors)
            | policy_mps(mdp, policy, copy_tensors=copy_tensors))


def expected_return_network(mdp, policy, *, copy_tensors=False):
    """``<-r| G M |pi>`` as one quimb TensorNetwork; ``.contract()`` gives ``E[G]``.

    Examples
    --------
    >>> import tnmdp
    >>> from tnmdp.network import expected_return_network
    >>> mdp = tnmdp.models.excursion(4)
    >>> sol = tnmdp.solve(mdp)
    >>> contract(expected_return_network(mdp, sol.policy))  # doctest: +ELLIPSIS
    1.0...
    """
    return moment_network(mdp, policy, 1, copy_tensors=copy_tensors)


def partition_network(mdp, *, temperature=1.0, reference_policy=None):
    """The tilted network ``<-r| W M |pi0>`` with ``W = prod_t exp(gamma^t r_t / tau)`` (bond 1).

    Contracts to ``E_pi0[exp(G / tau)]`` (deterministic rewards); ``-inf`` rewards give weight 0. Small problems only
    (no normalisation: ``exp`` may under/overflow for long horizons -- use
    :func:`tnmdp.log_partition`).
    """
    from .policy import Policy

    qtn = _qtn()
    mdp.require_horizon()
    mdp.require_fixed_length("partition_network")
    T, S, A = mdp.horizon, mdp.n_states, mdp.n_actions
    reference = Policy.uniform(T, S, A) if reference_policy is None else reference_policy
    tensors = [qtn.Tensor(mdp.initial.copy(), inds=("s0",), tags={"P0"})]
    for t in range(T):
        P, R = dense_model(mdp, t)
        with np.errstate(invalid="ignore"):
            weight = np.where(P > 0, P * np.exp(mdp.discount ** t * R / temperature), 0.0)
        tensors.append(qtn.Tensor(weight, inds=(f"s{t}", f"a{t}", f"s{t + 1}"), tags={f"M{t}"}))
        tensors.append(qtn.Tensor(np.array(reference[t]), inds=(f"s{t}", f"a{t}"),
                                  tags={f"PI{t}"}))
    end = np.exp(mdp.discount ** T * mdp.terminal_rewards / temperature)
    tensors.append(qtn.Tensor(end, inds=(f"s{T}",),
                              tags={"END"}))
    return qtn.TensorNetwork(tensors)


def draw_network(tn, filename, *, title=None, figsize=(10, 5), **kwargs):
    """Deprecated: use :func:`tnmdp.plotting.draw_network` (drawing lives with the plotting)."""
    import warnings

    warnings.warn("tnmdp.network.draw_network is deprecated; use tnmdp.plotting.draw_network",
                  DeprecationWarning, stacklevel=2)
    from .plotting import draw_network as draw

    return draw(tn, filename, title=title, figsize=figsize, **kwargs)
