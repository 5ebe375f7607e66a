"""Time-dependent policies ``pi_t(a|s)``, stored compactly, and checkpointed sequences.

A :class:`Policy` is array-like: ``np.asarray(policy)`` is the dense ``(T, S, A)`` array and
``policy[t]`` the ``(S, A)`` site. It stores each site in the cheapest exact form:

* a deterministic policy as small ints ``actions[t, s]`` (``int8`` for ``A <= 127``);
* a stochastic one as dense ``(S, A)`` sites, sites that are the same object stored once (the
  uniform initial policy is one ``(S, A)`` array);
* the Boltzmann policy of a soft (KL-regularised) backward sweep from its soft values
  ``V_t``, kept at checkpoints and recomputed per block on demand (:class:`SoftPolicy`).
"""

from __future__ import annotations

import numpy as np

from .environments import MEMORY_BUDGET, Checkpoints  # noqa: F401  (old location, kept)
from .kernels import backup, log_reference, site_probabilities, small_int_dtype, soft_backup
from .stationary import StationaryPolicy

__all__ = ["Policy", "SoftPolicy", "as_policy"]


def _rows_of(sites):
    """The 2-d array whose rows, in order, are ``sites`` (views), or ``None``."""
    base = sites[0].base
    if base is None or base.ndim != 2 or base.shape[0] != len(sites):
        return None
    start, step = base.ctypes.data, base.strides[0]
    for t, site in enumerate(sites):
        if site.base is not base or site.ctypes.data != start + t * step:
            return None
    return base


class Policy:
    """A time-dependent policy ``pi_t(a|s)`` for ``t = 0..T-1``.

    Construct with :meth:`from_actions`, :meth:`from_array` or :func:`as_policy`; solvers return
    one in :class:`tnmdp.Solution`.

    Attributes
    ----------
    horizon, n_states, n_actions : int
    shape : tuple
        ``(T, S, A)``.
    stationary : bool
        ``False`` (a continuing MDP's policies are :class:`tnmdp.StationaryPolicy`).
    """

    stationary = False

    def __init__(self, sites, n_states, n_actions):
        if isinstance(sites, np.ndarray):  # (T, S) actions: handed out read-only
            sites = sites.view()
            sites.flags.writeable = False
        self._sites = sites
        self.horizon = len(sites)
        self.n_states, self.n_actions = n_states, n_actions

    # construction ------------------------------------------------------------------
    @classmethod
    def from_actions(cls, actions, n_actions):
        """A deterministic policy from ``actions[t, s]``, shape ``(T, S)``."""
        actions = np.asarray(actions)
        if actions.ndim != 2 or not np.issubdtype(actions.dtype, np.integer):
            raise TypeError(f"actions must be a 2-d integer array (T, S), got "
                            f"{actions.dtype} of shape {actions.shape}")
        if actions.size and (actions.min() < 0 or actions.max() >= n_actions):
            bad = (actions < 0) | (actions >= n_actions)
            t, s = np.argwhere(bad)[0]
            raise ValueError(f"actions[t={t}, s={s}] is {actions[t, s]}, outside 0..{n_actions - 1}")
        return cls(actions.astype(small_int_dtype(n_actions)), actions.shape[1], n_actions)

    @classmethod
    def from_array(cls, probs, *, atol=1e-9):
        """A policy from a dense ``(T, S, A)`` array of probabilities, validated and copied once
        (read-only): editing ``probs`` afterwards does not change the policy.

        Entries may be negative down to ``-atol`` (rounding, e.g. ``-1e-17``) and each row must
        sum to 1 within ``atol``; they are kept as given, never clipped or renormalised.
        """
        probs = np.asarray(probs)
        if probs.ndim != 3:
            raise ValueError(f"policy must have shape (T, S, A), got {probs.shape}")
        if not (np.issubdtype(probs.dtype, np.floating) or np.issubdtype(probs.dtype, np.integer)):
            raise TypeError(f"policy must hold real numbers, got dtype {probs.dtype}")
        probs = np.array(probs, dtype=np.float64)  # a copy: the caller keeps theirs
        probs.flags.writeable = False
        bad = ~np.isfinite(probs) | (probs < -atol)
        if bad.any():
            t, s, a = np.argwhere(bad)[0]
            raise ValueError(f"policy[t={t}, s={s}, a={a}] is {probs[t, s, a]}; probabilities "
                             f"must be finite and >= -atol (atol={atol:g})")
        sums = probs.sum(axis=2)
        off = np.abs(sums - 1.0) > atol
        if off.any():
            t, s = np.argwhere(off)[0]
            raise ValueError(f"policy[t={t}, s={s}] sums to {sums[t, s]:.12g}, not 1 (atol={atol:g})")
        return cls(list(probs), probs.shape[1], probs.shape[2])

    @classmethod
    def uniform(cls, horizon, n_states, n_actions):
        """The uniform policy, one shared ``(S, A)`` site."""
        site = np.full((n_states, n_actions), 1.0 / n_actions)
        return cls([site] * horizon, n_states, n_actions)

    @classmethod
    def _from_sites(cls, sites, n_states, n_actions):
        """Compact storage of sweep output: all-int sites become one small-int array."""
        if all(site.ndim == 1 for site in sites):
            dtype = small_int_dtype(n_actions)
            base = _rows_of(sites)
            if base is not None and base.dtype == dtype:  # the rows of one (T, S) array: no copy
                return cls(base, n_states, n_actions)
            return cls(np.stack(sites).astype(dtype, copy=False), n_states, n_actions)
        return cls(list(sites), n_states, n_actions)

    # access --------------------------------------------------------------------------
    def site(self, t):
        """Stored form of site ``t``: int actions ``(S,)`` or probabilities ``(S, A)``."""
        return self._sites[t]

    def __len__(self):
        return self.horizon

    @property
    def shape(self):
        return (self.horizon, self.n_states, self.n_actions)

    def __getitem__(self, t):
        if not isinstance(t, (int, np.integer)):
            return np.asarray(self)[t]
        if not -self.horizon <= t < self.horizon:
            raise IndexError(f"time step {t} outside 0..{self.horizon - 1}")
        return site_probabilities(self.site(int(t) % self.horizon), self.n_actions)

    def __iter__(self):
        return (self[t] for t in range(self.horizon))

    def __array__(self, dtype=None, copy=None):
        out = np.empty(self.shape, dtype=dtype or np.float64)
        for t in range(self.horizon):
            out[t] = self[t]
        return out

    @property
    def deterministic(self):
        """True when every site puts probability 1 on one action."""
        return all(self._is_deterministic_site(self.site(t)) for t in range(self.horizon))

    @staticmethod
    def _is_deterministic_site(site):
        return site.ndim == 1 or bool(((site == 0) | (site == 1)).all())

    @property
    def actions(self):
        """``(T, S)`` small-int actions of a deterministic policy."""
        if isinstance(self._sites, np.ndarray):
            return self._sites
        if not self.deterministic:
            raise ValueError("policy is not deterministic: it has no .actions")
        return self.greedy()._sites  # a deterministic policy is its own greedy policy

    def greedy(self):
        """The deterministic policy taking each site's most probable action (lowest on ties)."""
        sites = [site if site.ndim == 1 else np.argmax(site, axis=1)
                 for site in (self.site(t) for t in range(self.horizon))]
        return Policy._from_sites(sites, self.n_states, self.n_actions)

    @property
    def nbytes(self):
        """Bytes held by the stored sites (shared sites counted once)."""
        if isinstance(self._sites, np.ndarray):
            return self._sites.nbytes
        return sum({id(s): s.nbytes for s in self._sites}.values())

    # pickling and saving ----------------------------------------------------------------
    def _state(self):
        """Arrays describing the policy (``tnmdp._npz``): what it pickles and saves as."""
        from ._npz import policy_state

        return policy_state(self)

    @classmethod
    def _from_state(cls, state):
        kind, n_actions = str(state["kind"]), int(state["n_actions"])
        if kind == "actions":
            actions = np.asarray(state["actions"])
            return Policy(actions.astype(small_int_dtype(n_actions)), actions.shape[1], n_actions)
        if kind == "sites":
            sites = np.asarray(state["sites"], dtype=np.float64)
            distinct = list(sites)  # shared sites stay shared
            return Policy([distinct[k] for k in np.asarray(state["index"])], sites.shape[1],
                          n_actions)
        if kind == "soft":
            return SoftPolicy._from_soft_state(state)
        if kind == "stationary":  # a continuing model's policy, inside a saved Solution
            return StationaryPolicy._from_state(state)
        raise ValueError(f"unknown policy kind {kind!r} in a saved state")

    def __reduce_ex__(self, protocol):
        # Policy and SoftPolicy travel as their state; a subclass with state of its own (a
        # policy held on a cluster) pickles as Python does by default
        if type(self) not in (Policy, SoftPolicy):
            return super().__reduce_ex__(protocol)
        return (Policy._from_state, (self._state(),))

    def __repr__(self):
        kind = "deterministic" if isinstance(self._sites, np.ndarray) else "stochastic"
        return f"{type(self).__name__}(T={self.horizon}, S={self.n_states}, A={self.n_actions}, {kind})"


class _SoftSites:
    """Sequence of Boltzmann sites computed on demand from checkpointed soft values."""

    def __init__(self, mdp, values, temperature, reference, site):
        self.mdp, self.values = mdp, values
        self.temperature, self.reference = temperature, reference
        self._site = site if site is not None else self._numpy_site

    def __len__(self):
        return self.mdp.horizon

    def __getitem__(self, t):
        return self._site(t, self.values[t + 1])

    def _numpy_site(self, t, v_next):
        q = backup(self.mdp, t, v_next)
        log_pi0 = log_reference(self.reference, t, q.shape)
        return np.exp(soft_backup(q, log_pi0, self.temperature)[0])


class SoftPolicy(Policy):
    """The optimal KL-regularised policy ``pi_t ∝ pi0_t exp(Q_t / tau)``, from soft values.

    Only the soft values ``V_t`` are stored (all of them, or ``O(sqrt(T))`` checkpoints for long
    horizons); ``policy[t]`` recomputes ``Q_t`` from ``V_{t+1}`` in ``O(nnz(P_t))``.

    Attributes
    ----------
    values : Checkpoints
        ``values[t]`` is ``V_t`` (shape ``(S,)``), ``t = 0..T``.
    temperature : float

    Parameters
    ----------
    mdp : FiniteMDP
    values : Checkpoints or sequence of ndarray
        ``V_t``, ``t = 0..T``.
    temperature : float
    reference : Policy or None
        ``pi0`` (uniform when ``None``).
    site : callable, optional
        ``site(t, V_{t+1}) -> pi_t`` (shape ``(S, A)``), the injected site computation
        (:func:`tnmdp.sweep.soft_site` picks the backend); default the numpy kernels.
    """

    def __init__(self, mdp, values, temperature, reference, site=None):
        super().__init__(_SoftSites(mdp, values, temperature, reference, site), mdp.n_states,
                         mdp.n_actions)
        self.values, self.temperature = values, temperature

    @property
    def deterministic(self):
        return False

    @property
    def nbytes(self):
        return self.values.nbytes

    def _state(self):
        """Soft values at the stored checkpoints, the model and the reference policy."""
        values, sites = self.values, self._sites
        if isinstance(values, Checkpoints):
            times, stride = sorted(values._stored), values.stride
        else:
            times, stride = list(range(len(values))), 1
        return {"kind": "soft", "n_actions": self.n_actions, "mdp": sites.mdp,
                "temperature": self.temperature, "reference": sites.reference,
                "times": np.asarray(times), "values": np.stack([values[t] for t in times]),
                "stride": stride}

    @classmethod
    def _from_soft_state(cls, state):
        from ._npz import revive
        from .model import FiniteMDP

        mdp, reference = revive(state["mdp"], FiniteMDP), revive(state["reference"], Policy)
        temperature = float(state["temperature"])
        values = Checkpoints(_SoftValueStep(mdp, temperature, reference), mdp.horizon,
                             8 * mdp.n_states, False)
        values.stride = int(state["stride"])
        for t, v in zip(np.asarray(state["times"]).tolist(), np.asarray(state["values"])):
            values.record(t, v)
        return cls(mdp, values, temperature, reference)


class _SoftValueStep:
    """``V_{t+1} -> V_t`` of the soft backward recursion (numpy kernels; picklable)."""

    def __init__(self, mdp, temperature, reference):
        self.mdp, self.temperature, self.reference = mdp, temperature, reference

    def __call__(self, t, v_next):
        q = backup(self.mdp, t, v_next)
        return soft_backup(q, log_reference(self.reference, t, q.shape), self.temperature)[1]


def as_policy(policy, mdp, *, name="policy", atol=None):
    """Validate ``policy`` against ``mdp`` and return a :class:`Policy`.

    Parameters
    ----------
    policy : Policy or array_like
        With ``T, S, A`` the MDP's horizon, states and actions, any of

        * a :class:`Policy` of shape ``(T, S, A)``;
        * real ``(T, S, A)``: ``pi_t(a|s)``;
        * real ``(S, A)``: a stationary policy, the same site at every step (stored once);
        * **integer** ``(T, S)`` or ``(S,)``: deterministic actions ``a_t(s)`` (or ``a(s)`` at
          every step). An integer dtype means actions: an integer ``(S, A)`` array is read as
          actions, never as probabilities.
    mdp : FiniteMDP
    name : str
        Argument name for error messages.
    atol : float, optional
        Tolerance on the sums of probabilities and on negative entries (default the model's,
        ``mdp.atol``).

    Returns
    -------
    Policy
        Arrays are copied (read-only): editing ``policy`` afterwards changes nothing here.
    """
    T, S, A = mdp.horizon, mdp.n_states, mdp.n_actions
    atol = mdp.atol if atol is None else atol
    if isinstance(policy, Policy):
        if policy.shape != (T, S, A):
            raise ValueError(f"{name} has shape {policy.shape}; the MDP needs (T, S, A) = "
                             f"{(T, S, A)}")
        return policy
    arr = np.asarray(policy) if not isinstance(policy, str) else None
    if arr is None or arr.dtype == object:
        raise TypeError(f"{name} must be a Policy or a (T, S, A) array, got "
                        f"{type(policy).__name__} (also accepted: (S, A) probabilities, (T, S) "
                        "or (S,) integer actions)")
    if np.issubdtype(arr.dtype, np.integer) and arr.shape in ((T, S), (S,)):
        actions = np.broadcast_to(arr, (T, S))
        bad = (actions < 0) | (actions >= A)
        if bad.any():
            t, s = np.argwhere(bad)[0]
            where = f"s={s}" if arr.ndim == 1 else f"t={t}, s={s}"
            raise ValueError(f"{name}[{where}] is {actions[t, s]}: integer arrays are actions, "
                             f"which must lie in 0..{A - 1}")
        return Policy.from_actions(actions, A)
    if arr.shape not in ((T, S, A), (S, A)):
        raise ValueError(f"{name} has shape {arr.shape}; the MDP needs (T, S, A) = {(T, S, A)} "
                         f"(also accepted: (S, A) = {(S, A)} probabilities, integer actions "
                         f"(T, S) = {(T, S)} or (S,) = ({S},); got dtype {arr.dtype})")
    try:
        if arr.ndim == 2:  # stationary: validate once, share one site
            site = Policy.from_array(arr[None], atol=atol).site(0)
            return Policy([site] * T, S, A)
        return Policy.from_array(arr, atol=atol)
    except ValueError as err:
        message = str(err).replace("policy", name, 1)
        if arr.ndim == 2:
            message = message.replace("t=0, ", "")
        raise ValueError(message) from None
