"""Compiled sampling of episodes: the per-time-step loop of :func:`tnmdp.sample` in one kernel.

The numpy sampler is vectorised over episodes but pays ~15 numpy calls per time step, which
dominates for few, long episodes (10 episodes of ``T = 10^6``). Here a run of time steps that
share one transition operator, one reward slice and one policy form is sampled in one compiled
loop: per episode and step, an action by inverse CDF (or read from deterministic actions), a
next state by inverse CDF on the operator's row (binary search in the row's cumulative keys,
as the numpy sampler does), and the reward read from the compact reward slice.
"""

from __future__ import annotations

from numba import njit

__all__ = ["sample_steps"]


@njit(cache=True, nogil=True)
def sample_steps(s, t0, acts, cdf, keys, cols, indptr, reward, u, states, actions, rewards):
    """Advance episodes ``s`` (shape ``(n,)``, updated in place) over ``K = u.shape[0]`` steps
    from time ``t0``.

    Parameters
    ----------
    acts : int array, shape (K, S), (1, S) or (0, S)
        Deterministic actions per step (one row shared when it has one row); no rows: draw
        from ``cdf``.
    cdf : ndarray, shape (S, A)
        Cumulative action probabilities per state (used when ``acts`` has no rows).
    keys, cols, indptr : ndarray
        Inverse-CDF table of the ``(S*A, S)`` operator: ``keys[k] = row + cumulative
        probability`` within the row, ``cols`` the successors, ``indptr`` the row starts.
    reward : ndarray, shape (S|1, A|1, S|1)
    u : ndarray, shape (K, 2, n)
        Uniform draws: ``u[k, 0]`` for actions, ``u[k, 1]`` for next states.
    states, actions, rewards : ndarray
        Outputs ``(n, T+1)``, ``(n, T)``, ``(n, T)``; columns ``t0 + 1 .. t0 + K`` (states) and
        ``t0 .. t0 + K - 1`` are written.
    """
    n_actions = cdf.shape[1]
    shared = acts.shape[0] == 1
    drawn = acts.shape[0] == 0
    r_s, r_a, r_n = reward.shape[0] > 1, reward.shape[1] > 1, reward.shape[2] > 1
    for k in range(u.shape[0]):
        t = t0 + k
        for i in range(s.shape[0]):
            st = s[i]
            if drawn:
                x = u[k, 0, i] * cdf[st, n_actions - 1]
                a = 0
                while a < n_actions - 1 and cdf[st, a] < x:  # numpy: (cdf < x).sum()
                    a += 1
            else:
                a = acts[0 if shared else k, st]
            row = st * n_actions + a
            lo, hi = indptr[row], indptr[row + 1] - 1
            target = row + u[k, 1, i] * (keys[hi] - row)
            while lo < hi:  # first key > target (searchsorted right), at most hi
                mid = (lo + hi) // 2
                if keys[mid] <= target:
                    lo = mid + 1
                else:
                    hi = mid
            nxt = cols[lo]
            rewards[i, t] = reward[st if r_s else 0, a if r_a else 0, nxt if r_n else 0]
            actions[i, t] = a
            states[i, t + 1] = nxt
            s[i] = nxt
