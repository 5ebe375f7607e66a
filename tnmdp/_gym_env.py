"""A ``gymnasium.Env`` that samples a :class:`tnmdp.FiniteMDP` (see :func:`tnmdp.to_gymnasium`).

Imports gymnasium at module level: only :func:`tnmdp.interop.to_gymnasium` imports this module.
"""

from __future__ import annotations

import gymnasium
import numpy as np
import scipy.sparse as sp
from gymnasium import spaces

__all__ = ["FiniteMDPEnv"]


class FiniteMDPEnv(gymnasium.Env):
    """Episodes of a finite MDP: ``T`` steps, then ``truncated=True`` (a continuing MDP,
    ``horizon=None``, never ends: wrap it in ``gymnasium.wrappers.TimeLimit``).

    Parameters
    ----------
    mdp : FiniteMDP

    Notes
    -----
    A step costs ``O(S)`` for a dense and ``O(nnz of the row)`` for a sparse operator (one
    inverse-CDF draw of the next state from ``self.np_random``).
    """

    metadata = {"render_modes": []}

    def __init__(self, mdp):
        self.mdp = mdp
        self.observation_space = spaces.Discrete(mdp.n_states)
        self.action_space = spaces.Discrete(mdp.n_actions)
        self._state, self._t = None, 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self._state = self._draw(np.asarray(self.mdp.initial), np.arange(self.mdp.n_states))
        self._t = 0
        return self._state, {"t": 0}

    def step(self, action):
        if self._state is None:
            raise RuntimeError("call reset() before step()")
        if self.mdp.horizon is not None and self._t >= self.mdp.horizon:
            raise RuntimeError(f"the episode ended after horizon={self.mdp.horizon} steps: "
                               "call reset()")
        if not self.action_space.contains(action):
            raise ValueError(f"action {action!r} is not in Discrete({self.mdp.n_actions})")
        mdp, s, a, t = self.mdp, self._state, int(action), self._t
        row = s * mdp.n_actions + a
        P = mdp.transition_matrix(t)
        if sp.issparse(P):
            lo, hi = P.indptr[row], P.indptr[row + 1]
            nxt = self._draw(P.data[lo:hi], P.indices[lo:hi])
        else:
            nxt = self._draw(P[row], np.arange(mdp.n_states))
        law = mdp.reward_power_law(t)
        if law is None:
            R = mdp.reward_slice(t)
            reward = float(R[tuple(i if n > 1 else 0 for i, n in zip((s, a, nxt), R.shape))])
        else:
            dist, values = law
            reward = float(self._draw(dist[s, a, nxt], values))
        self._t, self._state = t + 1, nxt
        truncated = self._t == mdp.horizon  # never for a continuing MDP (horizon None)
        if truncated:
            reward += float(mdp.terminal_rewards[nxt])
        return nxt, reward, False, truncated, {"t": self._t}

    def _draw(self, probs, outcomes):
        cdf = np.cumsum(probs)
        k = int(np.searchsorted(cdf, self.np_random.random() * cdf[-1], side="right"))
        return outcomes[min(k, len(outcomes) - 1)].item()
