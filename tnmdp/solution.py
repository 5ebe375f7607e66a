"""The result of :func:`tnmdp.solve`: :class:`Solution`, the same fields for every method."""

from __future__ import annotations

import numbers

import numpy as np

from ._npz import load_state, plain_state, revive, save_state
from .environments import right_values
from .kernels import backup
from .model import FiniteMDP
from .policy import Policy, SoftPolicy

__all__ = ["Solution"]


class Solution:
    """Result of :func:`solve` (same fields for every method); immutable (its arrays are
    read-only).

    Attributes
    ----------
    policy : Policy
        The optimised policy, array-like ``(T, S, A)``.
    expected_return : float
        ``E[G]`` of ``policy`` from the initial distribution.
    values : ndarray, shape (S,)
        ``E[G | s_0 = s]`` under ``policy``.
    soft_value : float or None
        With ``temperature > 0``: the objective ``J_tau`` of ``policy`` (the optimum after a
        backward sweep); otherwise ``None``.
    history : ndarray, shape (n_updates,)
        The objective after every site update. After a single closed-form backward sweep it is
        computed on first access (one more backward and one forward pass over the initial
        policy), so that ``solve`` itself costs what backward induction costs.
    n_sweeps : int
    success : bool
        ``status == 0``.
    status : int
        0 converged (a backward sweep with an optimal local solver is exact); 1 ``max_sweeps``
        reached without the convergence test; 2 stopped by ``callback``.
    message : str
    value_function : ndarray, shape (T + 1, S)
        Values-to-go of ``policy`` at every step (:func:`tnmdp.policy_values`), computed on
        first access (one backward pass) and kept; needs the model (``mdp``).
    mdp : FiniteMDP or None
        The model solved (``None`` when the producer did not record it).

    Methods ``q_values(t)``, ``save(path)`` and ``Solution.load(path)``; a Solution pickles and
    deep-copies (its lazy history is computed first).
    """

    __slots__ = ("policy", "expected_return", "values", "soft_value", "_history", "n_sweeps",
                 "success", "status", "message", "mdp", "_value_function")

    def __init__(self, *, policy, expected_return, values, soft_value, history, n_sweeps,
                 success, status, message, mdp=None):
        fields = dict(policy=policy, expected_return=expected_return, values=values,
                      soft_value=soft_value, _history=history, n_sweeps=n_sweeps,
                      success=success, status=status, message=message, mdp=mdp,
                      _value_function=None)
        for name, value in fields.items():
            if isinstance(value, np.ndarray):  # returned arrays are read-only views
                value = value.view()
                value.flags.writeable = False
            object.__setattr__(self, name, value)

    def __setattr__(self, name, value):
        raise AttributeError(f"Solution is immutable: cannot set {name!r}")

    @property
    def history(self):
        history = self._history
        if callable(history):
            history = np.array(history())
            history.flags.writeable = False
            object.__setattr__(self, "_history", history)
        return history

    def _need_mdp(self, what):
        if self.mdp is None:
            raise ValueError(f"{what} needs the model, which this Solution does not hold "
                             "(made without mdp=)")
        if self.mdp.continuing:
            raise ValueError(f"{what} is per time step of a finite horizon; a continuing "
                             "model's stationary values are Solution.values")
        return self.mdp

    @property
    def value_function(self):
        """``V_t(s)`` of :attr:`policy` for ``t = 0..T``, shape ``(T + 1, S)``; row 0 is
        :attr:`values`, row ``T`` the terminal reward."""
        if self._value_function is None:
            values = right_values(self._need_mdp("value_function"), self.policy)
            values.setflags(write=False)
            object.__setattr__(self, "_value_function", values)
        return self._value_function

    def q_values(self, t):
        """``Q_t(s, a) = E[r_t + gamma V_{t+1}(s_{t+1}) | s_t = s, a_t = a]`` under the
        returned policy's future, shape ``(S, A)`` (the optimal Q after an exact solve; plain,
        not soft, values). Cost ``O(nnz(P_t))`` once :attr:`value_function` is known."""
        mdp = self._need_mdp("q_values")
        if isinstance(t, bool) or not isinstance(t, numbers.Integral) or not (
                0 <= t < mdp.horizon):
            raise ValueError(f"t must be an int in 0..{mdp.horizon - 1}, got {t!r}")
        return backup(mdp, int(t), self.value_function[int(t) + 1])

    # saving and pickling ------------------------------------------------------------------
    def _state(self):
        return {"policy": self.policy, "mdp": self.mdp,
                "expected_return": self.expected_return, "values": self.values,
                "soft_value": self.soft_value, "history": self.history,
                "n_sweeps": self.n_sweeps, "success": self.success, "status": self.status,
                "message": self.message}

    @classmethod
    def _from_state(cls, state):
        mdp, policy = revive(state["mdp"], FiniteMDP), state["policy"]
        if isinstance(policy, dict) and policy.get("shared_mdp"):  # a soft policy of this model
            policy = dict(policy, mdp=mdp)
        policy = revive(policy, Policy)
        soft = state["soft_value"]
        return cls(policy=policy, expected_return=float(state["expected_return"]),
                   values=np.asarray(state["values"]),
                   soft_value=None if soft is None else float(soft),
                   history=np.asarray(state["history"]), n_sweeps=int(state["n_sweeps"]),
                   success=bool(state["success"]), status=int(state["status"]),
                   message=str(state["message"]), mdp=mdp)

    def __reduce_ex__(self, protocol):
        if type(self) is not Solution:  # a subclass pickles as Python does by default
            return super().__reduce_ex__(protocol)
        return (Solution._from_state, (self._state(),))

    def save(self, path):
        """Save to a versioned ``.npz`` file (no pickle): the policy in its compact form
        (actions, distinct sites, or a soft policy's checkpointed soft values), the model,
        values and history. Read back with :meth:`Solution.load`."""
        state = plain_state(self._state())
        policy = state["policy"]
        if isinstance(self.policy, SoftPolicy) and policy.get("mdp") is not None and \
                self.mdp is not None and self.policy._sites.mdp is self.mdp:
            state["policy"] = dict(policy, mdp=None, shared_mdp=True)  # the model once
        save_state(path, "Solution", state)

    @classmethod
    def load(cls, path):
        """Load a Solution written by :meth:`save`; ``ValueError`` for a truncated, damaged
        or foreign file, a newer version, or a saved model."""
        return cls._from_state(load_state(path, "Solution")[1])

    def __repr__(self):
        soft = "" if self.soft_value is None else f", soft_value={self.soft_value:.12g}"
        return (f"Solution(expected_return={self.expected_return:.12g}{soft}, "
                f"n_sweeps={self.n_sweeps}, success={self.success}, message={self.message!r}, "
                f"policy={self.policy!r})")
