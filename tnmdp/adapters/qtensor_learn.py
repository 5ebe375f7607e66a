"""Learning multi-task Q-tensors from samples: S-TLR-Q and its two baselines, measured exactly.

Three learners share one loop (the authors' code, ``sergiorozada12/multi-task-lrrl``):

* ``"S-TLR-Q"`` -- one CP tensor ``Q[task, s_0, ..., s_{D-1}, a]`` of rank ``K`` shared by all
  tasks; a sample from task ``m`` moves the shared state and action factors, so it teaches
  every task.
* ``"LR-Q"`` -- one rank-``K`` CP tensor ``Q_m[s_0, ..., a]`` per task, learned separately.
* ``"C-LR-Q"`` -- one rank-``K`` CP tensor ``Q[s_0, ..., a]`` for all tasks (the task is ignored).

Per transition ``(m, s, a, r, s')`` each factor ``F`` is updated in turn (block coordinate
descent), each time with a fresh target and estimate::

    y     = r + gamma max_a' Q[m, s', a']                      (held fixed: semi-gradient)
    g_F   = -(y - Q[m, s, a]) * prod_{G != F} G[i_G, :]        (row i_F of F; other rows 0)
    F    <- optimiser step on 1/2 (y - Q[m, s, a])^2 with gradient g_F

with Adamax (default), Adam or SGD, one optimiser state per factor, and an epsilon-greedy
behaviour policy whose epsilon decays geometrically per transition. Tasks take turns: every
episode index runs one full episode of task 0, then of task 1, ... Episodes end at the task's
horizon ``T``; the stationary Q bootstraps through that time limit (terminal rewards are not
seen by the learners, though :func:`tnmdp.evaluate` counts them).

Learning is measured exactly: at checkpoints every task's greedy policy (stationary, tiled over
``T`` time steps) is evaluated by contraction with :func:`tnmdp.evaluate` and compared with the
task's exact optimum from :func:`tnmdp.solve` (time-dependent, so a stationary policy may fall
short of it). Because returns may be negative, the score is the *fraction of optimum*::

    fraction = (J(pi) - J(uniform)) / (J* - J(uniform))

1 at the optimum, 0 for the uniformly random policy, negative when worse than random.

Independent runs (seeds) are simulated in lock step, batched along a leading axis: each run has
its own factors, optimiser state, trajectories and random draws.

Plumbing shared with the other adapters: transitions are drawn by
:class:`tnmdp.adapters.sampling.TransitionSampler`, the optimisers are those of
:mod:`tnmdp.adapters.optim` (one per factor bank, one state per factor, as one torch optimiser
per factor), entry and leave-one-out products are :func:`tnmdp.adapters.cp.row_products`, and
the exact optimal Q-tables come from :func:`tnmdp.adapters.exact.action_values` (tnmdp's
``-inf``-safe backup).
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np

from ..evaluate import evaluate
from ..model import FiniteMDP, as_rng
from ..solve import solve
from .cp import _check_positive_int, row_products
from .exact import action_values
from .optim import OPTIMIZERS, make_optimizer
from .qtensor import QTensor, _check_index
from .sampling import TransitionSampler

__all__ = ["learn_q", "QLearningResult", "semi_gradient", "optimal_q_table",
           "optimal_q_tensor", "task_references", "METHODS", "OPTIMIZERS"]

METHODS = ("S-TLR-Q", "LR-Q", "C-LR-Q")


# ---------------------------------------------------------------------- kernels (batched)
def _rows(factors, idx):
    """Rows ``F_i[b, idx_i[b], :]`` of batched factors ``(B, n_i, K)``, each shape (B, K)."""
    b = np.arange(factors[0].shape[0])
    return [f[b, i] for f, i in zip(factors, idx)]


def _action_values(factors, state_idx):
    """``Q[b, state, :]`` for indices of every mode but the action, shape (B, A)."""
    return np.einsum("bk,bak->ba", row_products(_rows(factors[:-1], state_idx)), factors[-1])


def _factor_gradient(factors, idx, next_idx, reward, discount, which):
    """Semi-gradient of ``1/2 (y - Q)^2`` for rows ``idx[which]`` of factor ``which``.

    ``idx`` indexes every mode (action last), ``next_idx`` every mode but the action. Returns
    the rows of the gradient, shape (B, K).
    """
    target = reward + discount * _action_values(factors, next_idx).max(axis=1)
    rows = _rows(factors, idx)
    others = row_products(rows[:which] + rows[which + 1:]) if len(rows) > 1 \
        else np.ones_like(rows[0])
    q = (others * rows[which]).sum(axis=1)
    return -(target - q)[:, None] * others


def _td_update(factors, optimizer, idx, next_idx, reward, discount):
    """One S-TLR-Q transition: each factor in turn, with a fresh target.

    ``factors`` (a list of ``(B, n_i, K)`` arrays) is updated by item assignment; ``optimizer``
    (:mod:`tnmdp.adapters.optim`) keeps one state per factor, keyed ``"F{i}"``.
    """
    b = np.arange(factors[0].shape[0])
    for which, factor in enumerate(factors):
        grad = np.zeros_like(factor)
        grad[b, idx[which]] = _factor_gradient(factors, idx, next_idx, reward, discount, which)
        key = f"F{which}"
        factors[which] = optimizer.step({key: factor}, {key: grad})[key]


def semi_gradient(qtensor, task, state, action, reward, next_state, discount):
    """Semi-gradient of the TD loss at one transition, for every factor.

    The loss is ``L = 1/2 (y - Q[task, state, action])^2`` with the target
    ``y = reward + discount * max_a' Q[task, next_state, a']`` held fixed.

    Parameters
    ----------
    qtensor : QTensor
    task, state, action, next_state : int
        Task, flat states and action of the transition.
    reward : float
    discount : float
        ``gamma`` in ``[0, 1]``.

    Returns
    -------
    list of ndarray
        ``dL/dF_i``, shapes ``(n_i, K)`` like ``qtensor.factors``; only rows ``i_F`` are nonzero.
    """
    if not isinstance(qtensor, QTensor):
        raise TypeError(f"qtensor must be a QTensor, not {type(qtensor).__name__}")
    discount = _check_discount(discount)
    if not isinstance(reward, numbers.Real) or not np.isfinite(reward):
        raise ValueError(f"reward must be a finite number, got {reward!r}")
    shape = qtensor.state_shape
    task = int(_check_index("task", task, qtensor.n_tasks))
    modes = np.unravel_index(int(_check_index("state", state, qtensor.n_states)), shape)
    next_modes = np.unravel_index(int(_check_index("next_state", next_state, qtensor.n_states)),
                                  shape)
    action = int(_check_index("action", action, qtensor.n_actions))
    factors = [f[None] for f in qtensor.factors]
    idx = [np.array([i]) for i in (task, *modes, action)]
    next_idx = [np.array([i]) for i in (task, *next_modes)]
    out = []
    for which, f in enumerate(qtensor.factors):
        grad = np.zeros_like(f)
        grad[idx[which][0]] = _factor_gradient(factors, idx, next_idx, float(reward), discount,
                                               which)[0]
        out.append(grad)
    return out


# ---------------------------------------------------------------------- exact references
def _check_discount(discount, *, below_one=False):
    if isinstance(discount, bool) or not isinstance(discount, numbers.Real) or not (
            0.0 <= discount < 1.0 if below_one else 0.0 <= discount <= 1.0):
        raise ValueError(f"discount must be a number in [0, {'1)' if below_one else '1]'}, "
                         f"got {discount!r}")
    return float(discount)


def _check_tasks(tasks):
    if isinstance(tasks, FiniteMDP) or not hasattr(tasks, "__len__") or len(tasks) == 0:
        raise TypeError(f"tasks must be a non-empty sequence of FiniteMDP, got {tasks!r}")
    tasks = list(tasks)
    for m, mdp in enumerate(tasks):
        if not isinstance(mdp, FiniteMDP):
            raise TypeError(f"tasks[{m}] must be a FiniteMDP, not {type(mdp).__name__}")
        ref = tasks[0]
        if (mdp.n_states, mdp.n_actions, mdp.horizon) != (ref.n_states, ref.n_actions,
                                                         ref.horizon):
            got = (mdp.n_states, mdp.n_actions, mdp.horizon)
            raise ValueError(f"tasks[{m}] has (S, A, T) = {got}; tasks[0] has "
                             f"{(ref.n_states, ref.n_actions, ref.horizon)}")
    return tasks


def _check_state_shape(state_shape, n_states):
    if state_shape is None:
        return (n_states,)
    shape = tuple(_check_positive_int(f"state_shape[{i}]", n) for i, n in enumerate(state_shape))
    if int(np.prod(shape)) != n_states:
        raise ValueError(f"state_shape {shape} has {int(np.prod(shape))} cells; the tasks have "
                         f"S = {n_states} states")
    return shape


def optimal_q_table(mdp, time=0):
    """Exact optimal ``Q_t(s, a) = rbar_t(s, a) + gamma sum_s' P_t(s'|s, a) V*_{t+1}(s')``.

    Parameters
    ----------
    mdp : FiniteMDP
    time : int, optional
        Time step ``t`` in ``0..T-1``. Default 0.

    Returns
    -------
    ndarray, shape (S, A)

    Notes
    -----
    Backward induction from ``V_T = terminal`` with tnmdp's backup
    (:func:`tnmdp.adapters.exact.action_values`); cost ``O(sum_{t' >= t} nnz(P_t'))``.
    ``max_a Q_0(s, a)`` is ``tnmdp.solve(mdp).values``. ``-inf`` rewards give ``-inf`` entries
    (actions that lead to a forbidden move with positive probability), never ``nan``.
    """
    if not isinstance(mdp, FiniteMDP):
        raise TypeError(f"mdp must be a FiniteMDP, not {type(mdp).__name__}")
    return action_values(mdp, time=time)


def optimal_q_tensor(tasks, state_shape=None, time=0):
    """The exact optimal Q-tensor of a task family, shape ``(M, n_0, ..., n_{D-1}, A)``.

    Parameters
    ----------
    tasks : sequence of FiniteMDP
        Same ``S``, ``A`` and horizon.
    state_shape : sequence of int, optional
        ``(n_0, ..., n_{D-1})`` with product ``S`` (C-order flat states). Default ``(S,)``.
    time : int, optional
        Time step of ``Q_t``. Default 0.
    """
    tasks = _check_tasks(tasks)
    shape = _check_state_shape(state_shape, tasks[0].n_states)
    return np.stack([optimal_q_table(mdp, time).reshape(shape + (mdp.n_actions,))
                     for mdp in tasks])


def task_references(tasks):
    """Exact optimal and uniform-policy returns of each task.

    Returns
    -------
    optimal : ndarray, shape (M,)
        ``tnmdp.solve(mdp).expected_return`` (time-dependent optimum).
    uniform : ndarray, shape (M,)
        ``tnmdp.evaluate`` of the uniformly random policy.
    """
    tasks = _check_tasks(tasks)
    optimal = np.array([solve(mdp).expected_return for mdp in tasks], dtype=float)
    uniform = np.array([
        evaluate(mdp, np.full((mdp.horizon, mdp.n_states, mdp.n_actions), 1.0 / mdp.n_actions))
        for mdp in tasks])
    return optimal, uniform


# ---------------------------------------------------------------------- result
@dataclass(frozen=True)
class QLearningResult:
    """Learning curves of one learner on a task family, exact at every checkpoint.

    Attributes
    ----------
    method : str
        One of :data:`METHODS`.
    samples : ndarray of int, shape (C,)
        Transitions seen *per task* at each checkpoint (all tasks see as many); the total over
        tasks is ``M * samples``.
    returns : ndarray, shape (R, C, M)
        Exact expected return of each run's greedy policy for each task (:func:`tnmdp.evaluate`).
    fractions : ndarray, shape (R, C, M)
        ``(returns - uniform) / (optimal - uniform)``.
    optimal_returns, uniform_returns : ndarray, shape (M,)
        Exact optimum (:func:`tnmdp.solve`) and uniform-policy return of each task.
    qtensors : list of QTensor or None
        Final Q-tensor of each run over ``(M, n_0, ..., A)`` (LR-Q: the per-task tensors joined
        block-diagonally, rank ``M K``; C-LR-Q: the shared tensor with a constant task factor);
        ``None`` for a diverged run.
    n_parameters : int
        Learned parameters per run.
    diverged : ndarray of bool, shape (R,)
        Runs whose factors overflowed (their returns are ``nan`` from then on).
    """

    method: str
    samples: np.ndarray
    returns: np.ndarray
    fractions: np.ndarray
    optimal_returns: np.ndarray
    uniform_returns: np.ndarray
    qtensors: list
    n_parameters: int
    diverged: np.ndarray

    def samples_to(self, fraction=0.9):
        """Per-task samples at the first checkpoint where a task's fraction reaches ``fraction``.

        Returns
        -------
        ndarray, shape (R, M)
            ``inf`` where the run never reached it.
        """
        with np.errstate(invalid="ignore"):
            hit = self.fractions >= fraction
        first = np.argmax(hit, axis=1)
        return np.where(hit.any(axis=1), self.samples[first], np.inf)


# ---------------------------------------------------------------------- learner
def _check_epsilon(epsilon):
    try:
        start, end, decay = (float(x) for x in epsilon)
    except (TypeError, ValueError):
        raise TypeError(f"epsilon must be a tuple (start, end, decay), got {epsilon!r}") from None
    if not (0.0 <= end <= start <= 1.0 and 0.0 < decay <= 1.0):
        raise ValueError(f"epsilon = {epsilon!r} needs 0 <= end <= start <= 1 and 0 < decay <= 1")
    return start, end, decay


def _models(method, n_tasks, sizes, rank, n_runs, gen, scale, optimizer, learning_rate):
    """Factor banks (R, n_i, K) with optimisers, and each task's (bank, task prefix)."""
    def bank(mode_sizes):
        factors = [scale * gen.standard_normal((n_runs, n, rank)) for n in mode_sizes]
        # divergence (overflow in some runs) is detected and reported at the checkpoints
        return factors, make_optimizer(optimizer, learning_rate, check_finite=False)

    if method == "S-TLR-Q":
        return [bank((n_tasks,) + sizes)], [(0, (m,)) for m in range(n_tasks)]
    if method == "LR-Q":
        return [bank(sizes) for _ in range(n_tasks)], [(m, ()) for m in range(n_tasks)]
    return [bank(sizes)], [(0, ()) for _ in range(n_tasks)]


def _as_qtensors(method, banks, n_tasks, n_runs):
    """Each run's learned model as a QTensor over (task, states..., action)."""
    out = []
    for r in range(n_runs):
        if method == "S-TLR-Q":
            factors = [f[r] for f in banks[0][0]]
        elif method == "C-LR-Q":
            factors = [np.ones((n_tasks, banks[0][0][0].shape[2]))] + [f[r] for f in banks[0][0]]
        else:  # block-diagonal join of the per-task tensors
            rank = banks[0][0][0].shape[2]
            task = np.kron(np.eye(n_tasks), np.ones((1, rank)))
            factors = [task] + [np.concatenate([b[0][i][r] for b in banks], axis=1)
                                for i in range(len(banks[0][0]))]
        finite = all(np.isfinite(f).all() for f in factors)
        out.append(QTensor.from_factors(factors) if finite else None)
    return out


def _run_episode(sim, factors, optimizer, prefix, modes, gamma, schedule, n_steps, gen):
    """One episode of one task in every run; returns the updated transition count."""
    eps_start, eps_end, eps_decay, lr, lr_decay = schedule
    n_runs, n_actions = factors[0].shape[0], factors[-1].shape[1]
    pre = [np.full(n_runs, i) for i in prefix]
    s = sim.initial_states(gen.random(n_runs))
    for t in range(sim.mdp.horizon):
        state_idx = pre + list(modes[:, s])
        optimizer.learning_rate = lr * lr_decay ** n_steps
        a = np.argmax(_action_values(factors, state_idx), axis=1)
        explore = gen.random(n_runs) < max(eps_end, eps_start * eps_decay ** n_steps)
        a = np.where(explore, gen.integers(n_actions, size=n_runs), a)
        law = sim.mdp.reward_power_law(t) is not None
        s2, r = sim._draw(t, s, a, gen.random(n_runs), gen.random(n_runs) if law else None)
        _td_update(factors, optimizer, state_idx + [a], pre + list(modes[:, s2]),
                   np.asarray(r, dtype=float), gamma)
        s = s2
        n_steps += 1
    return n_steps


def learn_q(tasks, method="S-TLR-Q", *, rank=8, state_shape=None, n_episodes=100, n_runs=1,
            optimizer="adamax", learning_rate=0.01, learning_rate_decay=1.0,
            epsilon=(1.0, 0.1, 0.99999), discount=None,
            init_scale=0.1, eval_every=10, references=None, rng=None):
    """Learn the Q-functions of a task family with S-TLR-Q, LR-Q or C-LR-Q.

    Parameters
    ----------
    tasks : sequence of FiniteMDP, length M
        Related tasks with the same ``S``, ``A`` and horizon ``T`` (the episode length) and
        finite rewards.
    method : {"S-TLR-Q", "LR-Q", "C-LR-Q"}
        Shared CP tensor with a task mode; one CP tensor per task; one CP tensor ignoring the task.
    rank : int, optional
        CP rank ``K`` of each tensor. Default 8.
    state_shape : sequence of int, optional
        State modes ``(n_0, ..., n_{D-1})`` with product ``S``; default ``(S,)``.
    n_episodes : int, optional
        Episodes per task; each of ``T`` transitions. Default 100.
    n_runs : int, optional
        Independent runs, simulated together. Default 1.
    optimizer : {"adamax", "adam", "sgd"}, optional
        Default "adamax" (as the authors).
    learning_rate : float, optional
        Initial step size. Default 0.01.
    learning_rate_decay : float, optional
        Step size ``learning_rate * learning_rate_decay**n`` after ``n`` transitions (all tasks),
        in ``(0, 1]``. Default 1 (constant, as the authors).
    epsilon : tuple (start, end, decay), optional
        Behaviour policy epsilon ``max(end, start * decay**n)`` after ``n`` transitions (all
        tasks). Default ``(1.0, 0.1, 0.99999)``.
    discount : float, optional
        TD discount in ``[0, 1)``; default each task's ``mdp.discount`` (which must then be
        below 1: a stationary Q with ``gamma = 1`` does not rank policies by when they collect).
    init_scale : float, optional
        Initial factors ``init_scale * N(0, 1)``. Default 0.1.
    eval_every : int, optional
        Episodes per task between checkpoints (also one before learning and one at the end).
    references : tuple of ndarray (optimal, uniform), optional
        Output of :func:`task_references`, to share between learners.
    rng : numpy.random.Generator or int or None, optional

    Returns
    -------
    QLearningResult

    Notes
    -----
    A transition costs ``O(N (N + A) K)`` per run for ``N = D + 2`` modes plus a dense optimiser
    step over each factor (``O(K (M + sum_d n_d + A))``); a checkpoint costs ``M`` exact
    evaluations, ``O(M T nnz(P))`` per run.
    """
    tasks = _check_tasks(tasks)
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {sorted(OPTIMIZERS)}, got {optimizer!r}")
    n_tasks, mdp0 = len(tasks), tasks[0]
    shape = _check_state_shape(state_shape, mdp0.n_states)
    rank = _check_positive_int("rank", rank)
    n_episodes = _check_positive_int("n_episodes", n_episodes)
    n_runs = _check_positive_int("n_runs", n_runs)
    eval_every = _check_positive_int("eval_every", eval_every)
    if not isinstance(learning_rate, numbers.Real) or not learning_rate > 0:
        raise ValueError(f"learning_rate must be a positive number, got {learning_rate!r}")
    if not isinstance(init_scale, numbers.Real) or not init_scale > 0:
        raise ValueError(f"init_scale must be a positive number, got {init_scale!r}")
    if not isinstance(learning_rate_decay, numbers.Real) or not 0 < learning_rate_decay <= 1:
        raise ValueError(f"learning_rate_decay must be a number in (0, 1], "
                         f"got {learning_rate_decay!r}")
    eps_start, eps_end, eps_decay = _check_epsilon(epsilon)
    if discount is None:
        for m, mdp in enumerate(tasks):
            if mdp.discount >= 1.0:
                raise ValueError(f"tasks[{m}].discount is {mdp.discount}; pass a discount < 1 "
                                 "for the stationary Q")
        gammas = [mdp.discount for mdp in tasks]
    else:
        gammas = [_check_discount(discount, below_one=True)] * n_tasks
    for m, mdp in enumerate(tasks):
        if np.isneginf(mdp.rewards).any():
            raise ValueError(f"tasks[{m}] has -inf rewards; the learners need finite rewards")
    if references is None:
        references = task_references(tasks)
    optimal, uniform = (np.asarray(x, dtype=float) for x in references)
    if optimal.shape != (n_tasks,) or uniform.shape != (n_tasks,):
        raise ValueError(f"references must be two arrays of shape (M,) = ({n_tasks},)")
    flat = np.flatnonzero(~(optimal - uniform > 1e-12 * (1 + np.abs(optimal))))
    if flat.size:
        m = int(flat[0])
        raise ValueError(f"tasks[{m}]: the optimal return {optimal[m]} does not exceed the "
                         f"uniform policy's {uniform[m]}; the fraction of optimum is undefined")
    gen = as_rng(rng)
    sizes = shape + (mdp0.n_actions,)
    banks, task_model = _models(method, n_tasks, sizes, rank, n_runs, gen, float(init_scale),
                                optimizer, float(learning_rate))
    sims = [TransitionSampler(mdp) for mdp in tasks]
    modes = np.array(np.unravel_index(np.arange(mdp0.n_states), shape))  # (D, S)
    horizon = mdp0.horizon

    def checkpoint():
        out = np.empty((n_runs, n_tasks))
        for r, qt in enumerate(_as_qtensors(method, banks, n_tasks, n_runs)):
            for m, mdp in enumerate(tasks):
                out[r, m] = np.nan if qt is None else evaluate(mdp, qt.to_policy(m, horizon))
        return out

    samples, returns, n_steps = [0], [checkpoint()], 0
    schedule = (eps_start, eps_end, eps_decay, float(learning_rate), float(learning_rate_decay))
    for episode in range(1, n_episodes + 1):
        for m, sim in enumerate(sims):
            (factors, optimizer), prefix = banks[task_model[m][0]], task_model[m][1]
            with np.errstate(over="ignore", invalid="ignore"):  # divergence is reported below
                n_steps = _run_episode(sim, factors, optimizer, prefix, modes, gammas[m],
                                       schedule, n_steps, gen)
        if episode % eval_every == 0 or episode == n_episodes:
            samples.append(episode * horizon)
            returns.append(checkpoint())
    returns = np.stack(returns, axis=1)
    qtensors = _as_qtensors(method, banks, n_tasks, n_runs)
    fractions = (returns - uniform) / (optimal - uniform)
    n_parameters = sum(f[0].size for b in banks for f in b[0])
    return QLearningResult(method=method, samples=np.array(samples), returns=returns,
                           fractions=fractions, optimal_returns=optimal, uniform_returns=uniform,
                           qtensors=qtensors, n_parameters=n_parameters,
                           diverged=np.array([q is None for q in qtensors]))
