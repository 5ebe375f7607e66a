"""Stationary policies of continuing MDPs and the one repeated site they act on.

A continuing MDP (``FiniteMDP(..., horizon=None)``) is the finite chain of DESIGN.md with one
site repeated for ever: a uniform MPS / transfer-matrix picture. A stationary policy ``pi(a|s)``
contracts the site's dynamics tensor into the Markov matrix

    P_pi[s, s'] = sum_a pi(a|s) P(s'|s, a)        and the reward   r_pi[s] = sum_a pi(a|s) rbar(s, a),

the objects every continuing algorithm (:mod:`tnmdp.continuing`, :mod:`tnmdp.average`,
:mod:`tnmdp.transfer`) works with. Building them costs ``O(nnz(P))``.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from .kernels import site_probabilities, small_int_dtype

__all__ = ["StationaryPolicy", "as_stationary_policy", "policy_matrix", "check_continuing"]


class StationaryPolicy:
    """A stationary policy ``pi(a|s)`` of a continuing MDP, array-like ``(S, A)``.

    Construct with :meth:`from_actions` or :meth:`from_array`. A deterministic policy is stored
    as small-int actions ``(S,)``. ``policy.site(t)`` returns the stored form for every ``t``, so
    finite-horizon code can read it as the same policy repeated at every step.

    Attributes
    ----------
    n_states, n_actions : int
    shape : tuple
        ``(S, A)``.
    stationary : bool
        Always ``True`` (``Policy`` of a finite horizon: ``False``).
    horizon : None
    """

    stationary = True
    horizon = None

    def __init__(self, stored, n_actions):
        self._stored = stored
        self.n_states, self.n_actions = int(stored.shape[0]), int(n_actions)

    @classmethod
    def from_actions(cls, actions, n_actions):
        """A deterministic policy from ``actions[s]``, shape ``(S,)``."""
        actions = np.asarray(actions)
        if actions.ndim != 1 or not np.issubdtype(actions.dtype, np.integer):
            raise TypeError(f"actions must be a 1-d integer array (S,), got {actions.dtype} of "
                            f"shape {actions.shape}")
        bad = (actions < 0) | (actions >= n_actions)
        if bad.any():
            s = int(np.argmax(bad))
            raise ValueError(f"actions[s={s}] is {actions[s]}, outside 0..{n_actions - 1}")
        return cls(actions.astype(small_int_dtype(n_actions)), n_actions)

    @classmethod
    def from_array(cls, probs, *, atol=1e-9, name="policy"):
        """A policy from probabilities ``probs[s, a]``, shape ``(S, A)`` (validated, copied)."""
        probs = np.asarray(probs)
        if probs.ndim != 2:
            raise ValueError(f"{name} must have shape (S, A), got {probs.shape}")
        if not (np.issubdtype(probs.dtype, np.floating) or np.issubdtype(probs.dtype, np.integer)):
            raise TypeError(f"{name} must hold real numbers, got dtype {probs.dtype}")
        probs = np.array(probs, dtype=np.float64)
        bad = ~np.isfinite(probs) | (probs < 0)
        if bad.any():
            s, a = np.argwhere(bad)[0]
            raise ValueError(f"{name}[s={s}, a={a}] is {probs[s, a]}; probabilities must be "
                             "finite and >= 0")
        sums = probs.sum(axis=1)
        off = np.abs(sums - 1.0) > atol
        if off.any():
            s = int(np.argmax(off))
            raise ValueError(f"{name}[s={s}] sums to {sums[s]:.12g}, not 1 (atol={atol:g})")
        return cls(probs, probs.shape[1])

    @property
    def shape(self):
        return (self.n_states, self.n_actions)

    # pickling and saving (tnmdp._npz reduces objects through __reduce_ex__) ---------------
    def _state(self):
        return {"kind": "stationary", "n_actions": self.n_actions, "stored": self._stored}

    @classmethod
    def _from_state(cls, state):
        stored = np.array(state["stored"])
        if stored.ndim == 1:
            return cls.from_actions(stored, int(state["n_actions"]))
        return cls.from_array(stored)

    def __reduce_ex__(self, protocol):
        return (StationaryPolicy._from_state, (self._state(),))

    def site(self, t=0):
        """Stored form (the same for every ``t``): int actions ``(S,)`` or probabilities ``(S, A)``."""
        return self._stored

    def __array__(self, dtype=None, copy=None):
        out = site_probabilities(self._stored, self.n_actions)
        return out.astype(dtype or np.float64, copy=out is self._stored)

    def __getitem__(self, index):
        return np.asarray(self)[index]

    def __len__(self):
        return self.n_states

    @property
    def deterministic(self):
        """True when every state puts probability 1 on one action."""
        return self._stored.ndim == 1 or bool(((self._stored == 0) | (self._stored == 1)).all())

    @property
    def actions(self):
        """``(S,)`` small-int actions of a deterministic policy."""
        if self._stored.ndim == 1:
            return self._stored
        if not self.deterministic:
            raise ValueError("policy is not deterministic: it has no .actions")
        return np.argmax(self._stored, axis=1).astype(small_int_dtype(self.n_actions))

    def __eq__(self, other):
        if not isinstance(other, StationaryPolicy):
            return NotImplemented
        return self.shape == other.shape and bool(np.array_equal(np.asarray(self),
                                                                 np.asarray(other)))

    __hash__ = None

    def __repr__(self):
        kind = "deterministic" if self._stored.ndim == 1 else "stochastic"
        return f"StationaryPolicy(S={self.n_states}, A={self.n_actions}, {kind})"


def check_continuing(mdp, what):
    """Raise unless ``mdp`` is a continuing :class:`tnmdp.FiniteMDP`."""
    from .model import FiniteMDP

    if not isinstance(mdp, FiniteMDP):
        raise TypeError(f"mdp must be a tnmdp.FiniteMDP, got {type(mdp).__name__}")
    if not mdp.continuing:
        raise ValueError(f"{what} needs a continuing MDP (horizon=None); mdp has "
                         f"horizon={mdp.horizon}")


def as_stationary_policy(policy, mdp, *, name="policy"):
    """Validate ``policy`` against a continuing ``mdp``: a :class:`StationaryPolicy`, an
    ``(S, A)`` probability array or an ``(S,)`` integer action array."""
    want = (mdp.n_states, mdp.n_actions)
    if isinstance(policy, StationaryPolicy):
        if policy.shape != want:
            raise ValueError(f"{name} has shape {policy.shape}; the MDP needs (S, A) = {want}")
        return policy
    arr = None if isinstance(policy, str) else np.asarray(policy)
    if arr is None or arr.dtype == object:
        raise TypeError(f"{name} must be a StationaryPolicy, an (S, A) array or (S,) actions, "
                        f"got {type(policy).__name__}")
    if arr.ndim == 1 and np.issubdtype(arr.dtype, np.integer):
        if arr.shape != want[:1]:
            raise ValueError(f"{name} has {arr.shape[0]} actions; the MDP has S={want[0]} states")
        try:
            return StationaryPolicy.from_actions(arr, mdp.n_actions)
        except ValueError as err:
            raise ValueError(str(err).replace("actions", name, 1)) from None
    if arr.shape != want:
        raise ValueError(f"{name} has shape {arr.shape}; the MDP needs (S, A) = {want} (or (S,) "
                         "int actions)")
    return StationaryPolicy.from_array(arr, atol=mdp.atol, name=name)


def _csr_rows(P, rows, block=1 << 15):
    """``P[rows]`` for a canonical CSR ``P``, gathered in blocks of rows: the only full-size
    arrays are the result's (scipy's fancy row indexing also holds index arrays of the full
    size, which set the peak memory of a policy iteration on ~10^6-row models), with 32-bit
    indices whenever they suffice."""
    starts = P.indptr[rows]
    lengths = P.indptr[rows + 1] - starts
    small = max(P.shape[1], int(lengths.sum())) < 2**31  # 32-bit indices suffice
    indptr = np.zeros(rows.size + 1, dtype=np.int32 if small else P.indptr.dtype)
    np.cumsum(lengths, out=indptr[1:])
    data = np.empty(int(indptr[-1]), dtype=P.data.dtype)
    indices = np.empty(int(indptr[-1]), dtype=np.int32 if small else P.indices.dtype)
    for lo in range(0, rows.size, block):
        hi = min(rows.size, lo + block)
        a, b = int(indptr[lo]), int(indptr[hi])
        take = np.repeat(starts[lo:hi].astype(np.intp) - indptr[lo:hi], lengths[lo:hi])
        take += np.arange(a, b, dtype=np.intp)
        data[a:b] = P.data[take]
        indices[a:b] = P.indices[take]
    out = sp.csr_array((data, indices, indptr), shape=(rows.size, P.shape[1]))
    out.has_sorted_indices = True
    out.has_canonical_format = True
    return out


def policy_matrix(mdp, policy, *, rewards=True):
    """The Markov matrix ``P_pi`` (S, S) and reward ``r_pi`` (S,) of a stationary policy.

    Parameters
    ----------
    mdp : FiniteMDP
        Continuing (its site 0 is the repeated site).
    policy : StationaryPolicy
    rewards : bool
        Also return ``r_pi`` (``-inf`` where the policy takes a forbidden action with positive
        probability; a forbidden action of probability zero contributes nothing).

    Returns
    -------
    P_pi : ndarray or CSR, shape (S, S)
        Dense when the MDP is dense. Shares no array with the MDP.
    r_pi : ndarray, shape (S,)
        Only with ``rewards=True``.

    Notes
    -----
    Cost ``O(nnz(P))``: a row selection for a deterministic policy, otherwise the product of
    the ``(S, S*A)`` policy matrix with ``P``.
    """
    S, A = mdp.n_states, mdp.n_actions
    P = mdp.transition_matrix(0)
    stored = policy.site(0)
    if stored.ndim == 1:
        rows = np.arange(S) * A + stored
        P_pi = _csr_rows(P, rows) if sp.issparse(P) else P[rows]  # new arrays
    else:
        # a copy: eliminate_zeros compacts the data buffer in place, which would corrupt the
        # policy's own stored probabilities
        weights = sp.csr_array((np.array(stored, dtype=np.float64).ravel(), np.arange(S * A),
                                np.arange(0, S * A + 1, A)), shape=(S, S * A))
        weights.eliminate_zeros()
        P_pi = sp.csr_array(weights @ P) if sp.issparse(P) else weights @ P
    if not rewards:
        return P_pi
    rbar = mdp.expected_reward(0)
    if stored.ndim == 1:
        r_pi = rbar[np.arange(S), stored].astype(np.float64)
    else:
        with np.errstate(invalid="ignore"):
            r_pi = np.where(stored > 0, stored * rbar, 0.0).sum(axis=1)
    return P_pi, r_pi
