"""Policy-gradient learning of PARAFAC policies: TLRPG, TLRAC, TRTLRPO and PTLRPO.

The four algorithms of Rozada, Paternain & Marques (arXiv 2501.04879) share one skeleton::

    repeat n_updates times:
        roll out episodes_per_update episodes with the current policy      (sampling.rollout)
        advantages: reward-to-go minus a per-step mean (TLRPG),
                    or GAE(gamma, lam) with a PARAFAC critic (the others)  (_advantages)
          critic_updates="blockwise": for each critic factor H_d in turn, advantages from the
                    current critic, then L-BFGS on H_d alone; the last advantages are used
        update the policy factors (factor_updates="blockwise": the Adam steps once per
        factor matrix and once for log sigma, the gradient zeroed outside the block):
            TLRPG, TLRAC  -- Adam on -mean(log pi * adv), `epochs` full-batch steps
            PTLRPO        -- Adam on the PPO clipped surrogate, `epochs` steps
            TRTLRPO       -- natural gradient by conjugate gradient on Fisher-vector products,
                             step sqrt(2 max_kl / x^T F x) x, backtracking line search that keeps
                             the mean KL(old || new) <= max_kl
        critic_updates="joint": refit all critic factors by L-BFGS on the discounted
        rewards-to-go

All gradients come from the factorised scores of :class:`ParafacPolicy` (``O(K (D + A))`` per
sample). On a :class:`tnmdp.FiniteMDP` environment the exact expected return of every iterate is
recorded by tensor-network contraction (``tnmdp.evaluate``), so learning curves carry no Monte
Carlo noise and compare directly with ``tnmdp.solve``. gymnasium environments (e.g.
Pendulum-v1) are reached through a :class:`~tnmdp.adapters.parafac.Discretiser`.

Episode length. The authors' trainer (``src/train.py``) ignores gymnasium's ``truncated`` flag
and stops an episode only after ``max_steps=1000`` steps, so their Pendulum-v1 episodes are 1,000
steps long, not the registered 200, and their returns are 1,000-step sums (a good policy pays for
the swing-up and then little more, so the -200 .. -300 band is comparable with 200-step returns,
but each episode carries five times the data). :class:`GymEnvironment` makes the episode length
explicit: ``max_steps`` replaces the registered time limit.

Deviations from the authors' code: logits are not clamped; updates fire after a fixed number of
whole episodes rather than 10,000 transitions (the same thing for 1,000-step episodes and 10
episodes per update); the TRTLRPO Fisher matrix is the exact Hessian of the mean KL (closed form
for softmax and Gaussian), not the empirical score outer product; ``log sigma`` is projected onto
its bounds after every step (the authors' ``torch.clamp`` lets it leave them and then passes no
gradient, so it can stay stuck at a bound); the critic is by default refitted jointly after the
actor step (``critic_updates``, below, gives the authors' blockwise TLRAC critic); optionally
(``ParafacPolicy(action_bounds=...)``) the score is that of the clipped Gaussian the
environment actually applies (Fujita & Maeda 2018) instead of the unclipped draw's.

Block-coordinate updates (the authors' ``bcd``). Their ``Trainer(actor_opt, critic_opt)``
(``src/train.py``) applies the two flags crosswise: ``actor_opt="bcd"`` makes the *critic*
update block by block and ``critic_opt="bcd"`` the *actor*. Their Pendulum runs use
``Trainer(actor_opt="bcd", critic_opt="sgd")`` for the actor-critic (TLRAC): critic blockwise,
actor jointly; ``("bcd", "bcd")`` for PPO (both blockwise); ``("sgd", "sgd")`` for TRPO. A critic
block step (``update_critic(i)``) recomputes the values, the returns and the GAE advantages with
the current critic, then runs L-BFGS (25 iterations) with the gradient of every factor but
``H_i`` zeroed; the actor receives the advantages of the last block, i.e. from a critic already
partly fitted to the batch it scores (the joint update scores with the previous batch's critic).
An actor block step runs ``epochs`` Adam steps with the gradient outside factor ``i`` zeroed
(blocks ``G_0 .. G_{D-1}`` then ``log sigma``); torch's Adam still moves the zeroed blocks by
their momentum, and so does ours (one Adam state). ``factor_updates`` / ``critic_updates``
select ``"joint"`` (default) or ``"blockwise"``. Differences that remain: scipy's L-BFGS-B
starts afresh at every fit, torch's LBFGS keeps its curvature history across calls.
Measured learning curves (gridworld against the exact optimum, Pendulum-v1) are in
``examples/README.md``.

Plumbing shared with the other adapters: episodes are drawn by
:mod:`tnmdp.adapters.sampling`, the Adam steps are :class:`tnmdp.adapters.optim.Adam` (descent
on the negated surrogate), and the exact return and gradient come from
:mod:`tnmdp.adapters.exact`. Names: ``discount`` (``gamma=`` is a deprecated alias),
``learning_rate`` (``lr=``), ``n_parameters`` (``n_params``), ``state_shape`` (``mode_sizes``).
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np

from ..model import as_rng
from ._compat import UNSET, deprecated_property, renamed_argument
from .exact import logit_gradient
from .optim import Adam
from .parafac import Discretiser, ParafacCritic, ParafacPolicy
from .sampling import MDPEnvironment, rollout

__all__ = ["MDPEnvironment", "GymEnvironment", "LearningResult", "tlrpg", "tlrac", "trtlrpo",
           "ptlrpo", "exact_gradient", "exact_ascent", "ALGORITHMS", "UPDATE_MODES"]

ALGORITHMS = ("tlrpg", "tlrac", "trtlrpo", "ptlrpo")
UPDATE_MODES = ("joint", "blockwise")


# ---------------------------------------------------------------------------------- environments
class GymEnvironment:
    """A gymnasium environment (default Pendulum-v1) seen through a :class:`Discretiser`.

    Parameters
    ----------
    env_id : str
        gymnasium id. Needs the optional extra ``gym``.
    discretiser : Discretiser, optional
        Default for Pendulum-v1: the authors' 10 x 10 x 10 grid over
        ``(cos theta, sin theta, theta_dot)`` in ``[-1, 1]^2 x [-5, 5]``.
    max_steps : int, optional
        Episode length, passed to ``gymnasium.make`` as ``max_episode_steps`` (it replaces the
        registered time limit, e.g. Pendulum-v1's 200). Default: the registered limit. The
        authors' Pendulum experiments run 1,000-step episodes.
    discount : float, optional
        Default learning discount; sampled returns are reported undiscounted.
    **make_kwargs
        Passed to ``gymnasium.make``.

    Notes
    -----
    Continuous actions are clipped to the action space before ``env.step``; the policy's score
    uses the unclipped draw. An episode ends when gymnasium reports ``terminated`` or
    ``truncated``.
    """

    def __init__(self, env_id="Pendulum-v1", discretiser=None, *, max_steps=None, discount=0.99,
                 **make_kwargs):
        if discretiser is None:
            if env_id != "Pendulum-v1":
                raise ValueError(f"discretiser is required for env_id={env_id!r}")
            discretiser = Discretiser([-1, -1, -5], [1, 1, 5], [10, 10, 10])
        if not isinstance(discretiser, Discretiser):
            raise TypeError(f"discretiser must be a Discretiser, not {type(discretiser).__name__}")
        if "max_episode_steps" in make_kwargs:
            raise TypeError("pass the episode length as max_steps, not max_episode_steps")
        if max_steps is None:
            import gymnasium

            max_steps = gymnasium.spec(env_id).max_episode_steps
            if max_steps is None:
                raise ValueError(f"{env_id!r} registers no time limit; pass max_steps")
        if isinstance(max_steps, bool) or not isinstance(max_steps, numbers.Integral) \
                or max_steps < 1:
            raise ValueError(f"max_steps must be a positive int, got {max_steps!r}")
        self.env_id, self.discretiser = env_id, discretiser
        self.make_kwargs = dict(make_kwargs, max_episode_steps=int(max_steps))
        self.state_shape = discretiser.sizes
        self.max_steps = int(max_steps)
        self.discount = float(discount)
        self.return_discount = 1.0
        self._envs = []

    def reset(self, n, rng):
        """Reset ``n`` copies with seeds drawn from ``rng``; multi-indices (n, D)."""
        import gymnasium

        while len(self._envs) < n:
            self._envs.append(gymnasium.make(self.env_id, **self.make_kwargs))
        seeds = rng.integers(0, 2 ** 31 - 1, size=n)
        obs = [self._envs[i].reset(seed=int(seeds[i]))[0] for i in range(n)]
        self._done = np.zeros(n, dtype=bool)
        self._idx = self.discretiser(np.asarray(obs))
        return self._idx

    def step(self, actions, rng):
        """Step every running copy; returns ``(states (n, D), rewards (n,), done (n,))``."""
        n = self._idx.shape[0]
        rewards = np.zeros(n)
        running = np.flatnonzero(~self._done)
        observations = []
        for i in running:
            env = self._envs[i]
            space = env.action_space
            action = actions[i]
            if hasattr(space, "low"):
                action = np.clip(action, space.low, space.high).astype(space.dtype)
            obs, r, terminated, truncated, _ = env.step(action)
            rewards[i] = r
            observations.append(obs)
            self._done[i] = terminated or truncated
        if running.size:
            self._idx[running] = self.discretiser(np.asarray(observations))
        return self._idx.copy(), rewards, self._done.copy()

    mode_sizes = deprecated_property("mode_sizes", "state_shape")

    def exact_return(self, policy):
        """Not available for a gymnasium environment: ``None``."""
        return None


# ---------------------------------------------------------------------------------- results
@dataclass(frozen=True)
class LearningResult:
    """The outcome of a learning run.

    Attributes
    ----------
    algorithm : str
        One of :data:`ALGORITHMS`.
    policy : ParafacPolicy
        The final policy (the input policy is not modified).
    critic : ParafacCritic or None
    episodes : ndarray of int, shape (U,)
        Episodes sampled before update ``u`` (0, E, 2E, ...).
    returns : ndarray, shape (U,)
        Mean sampled return of the batch of update ``u`` (discounted with the MDP's discount on
        a finite MDP, undiscounted on gymnasium).
    exact_returns : ndarray, shape (U,) or None
        Exact expected return of the policy that sampled batch ``u`` (finite MDP, softmax).
    final_exact_return : float or None
        Exact expected return of the final policy.
    kl : ndarray, shape (U,)
        Mean ``KL(old || new)`` over the batch's states for each update.
    n_parameters : int
        Learned policy parameters (the critic's are in ``critic.n_parameters``).
    success : bool
        False when a return became non-finite.
    status : int
        0 success; 1 non-finite return.
    message : str
    """

    algorithm: str
    policy: ParafacPolicy
    critic: ParafacCritic | None
    episodes: np.ndarray
    returns: np.ndarray
    exact_returns: np.ndarray | None
    final_exact_return: float | None
    kl: np.ndarray
    n_parameters: int
    success: bool
    status: int
    message: str

    n_params = deprecated_property("n_params", "n_parameters")


# ---------------------------------------------------------------------------------- skeleton
def _discounted_sum(values, factor):
    """``out[:, t] = values[:, t] + factor * out[:, t+1]`` (backward along axis 1)."""
    out = np.zeros_like(values)
    acc = np.zeros(values.shape[0])
    for t in range(values.shape[1] - 1, -1, -1):
        acc = values[:, t] + factor * acc
        out[:, t] = acc
    return out


def _advantages(batch, critic, gamma, lam):
    """Standardised advantages and critic targets over the alive steps, flattened."""
    alive = batch.alive
    to_go = _discounted_sum(batch.rewards, gamma)
    if critic is None:  # reward-to-go minus the mean over episodes at the same step
        counts = np.maximum(alive.sum(axis=0), 1)
        adv = to_go - (to_go * alive).sum(axis=0) / counts
    else:
        n, T, D = batch.states.shape
        values = critic.values(batch.states.reshape(-1, D)).reshape(n, T) * alive
        next_values = np.concatenate([values[:, 1:], np.zeros((n, 1))], axis=1)
        deltas = (batch.rewards + gamma * next_values - values) * alive
        adv = _discounted_sum(deltas, gamma * lam)
    adv = adv[alive]
    adv = (adv - adv.mean()) / (adv.std() + 1e-8)
    return adv, to_go[alive]


def _conjugate_gradient(matvec, b, n_iter, tol=1e-10):
    x = np.zeros_like(b)
    r, p = b.copy(), b.copy()
    rr = r @ r
    for _ in range(n_iter):
        Ap = matvec(p)
        alpha = rr / (p @ Ap)
        x += alpha * p
        r -= alpha * Ap
        rr_new = r @ r
        if rr_new < tol:
            break
        p = r + rr_new / rr * p
        rr = rr_new
    return x


def _trust_region_step(policy, states, actions, adv, opts):
    """One TRTLRPO update in place; returns the mean KL of the accepted step (0 if none)."""
    old_params = policy.params
    old_logp = policy.log_prob(states, actions)
    snapshot = policy._snapshot(states)
    grad = policy.score(states, actions).weighted_sum(adv) / adv.size
    damping = opts["damping"]

    def fvp(v):
        return policy.fisher_vector_product(snapshot, states, v) + damping * v

    direction = _conjugate_gradient(fvp, grad, opts["cg_iters"])
    curvature = direction @ fvp(direction)
    if not curvature > 0:
        return 0.0
    full_step = np.sqrt(2 * opts["max_kl"] / curvature) * direction
    expected = grad @ full_step
    for j in range(opts["backtracks"]):
        frac = 0.5 ** j
        _set_params(policy, old_params + frac * full_step)
        ratio = np.exp(np.minimum(policy.log_prob(states, actions) - old_logp, 20.0))
        improvement = float(np.mean((ratio - 1.0) * adv))
        kl = policy.kl_from(snapshot, states)
        if kl <= opts["max_kl"] and improvement > opts["accept_ratio"] * frac * expected:
            return kl
    policy.params = old_params
    return 0.0


def _set_params(policy, vec):
    """Set the policy parameters, projecting ``log sigma`` onto its bounds.

    The clamp in the log-density has zero gradient outside the bounds, so an unprojected
    ``log sigma`` that overshoots a bound would stay there for good.
    """
    policy.params = vec
    if policy.log_std is not None:
        policy.log_std = np.clip(policy.log_std, *policy.log_std_bounds)


def _param_blocks(policy):
    """Slices of ``policy.params``, one per factor matrix and one for ``log sigma``."""
    sizes = [f.size for f in policy.factors]
    if policy.log_std is not None:
        sizes.append(policy.log_std.size)
    bounds = np.cumsum([0] + sizes)
    return [slice(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])]


def _adam_step(policy, optimizer, states, actions, adv, old_logp, clip, block=None):
    """One Adam step on the (clipped) surrogate; PTLRPO when ``clip`` is not None.

    ``optimizer`` is a :class:`tnmdp.adapters.optim.Adam` over one flat parameter vector
    (``"params"``); it descends, so it is given the negated surrogate gradient. With ``block``
    (a slice of the flat parameters) the gradient outside it is zeroed before the step, as the
    authors' ``bcd`` trainer does; Adam's shared moments still move the other blocks (torch's
    Adam steps every parameter whose gradient was zeroed rather than removed).
    """
    score = policy.score(states, actions)
    if clip is None:
        weights = adv
    else:
        ratio = np.exp(np.minimum(policy.log_prob(states, actions) - old_logp, 20.0))
        active = np.where(adv > 0, ratio < 1 + clip, ratio > 1 - clip)
        weights = ratio * adv * active
    grad = score.weighted_sum(weights) / adv.size
    if block is not None:
        masked = np.zeros_like(grad)
        masked[block] = grad[block]
        grad = masked
    _set_params(policy, optimizer.step({"params": policy.params}, {"params": -grad})["params"])


def _learn(algorithm, policy, env, critic, *, n_updates, episodes_per_update, discount, lam,
           learning_rate,
           epochs, critic_rank, critic_iters, clip, max_kl, cg_iters, damping, backtracks,
           accept_ratio, rng, callback, factor_updates="joint", critic_updates="joint"):
    if not isinstance(policy, ParafacPolicy):
        raise TypeError(f"policy must be a ParafacPolicy, not {type(policy).__name__}")
    if hasattr(env, "transition_matrix"):
        env = MDPEnvironment(env, policy.state_shape)
    if tuple(env.state_shape) != tuple(policy.state_shape):
        raise ValueError(f"env has state_shape {tuple(env.state_shape)}, policy has "
                         f"{policy.state_shape}")
    for name, value in (("n_updates", n_updates), ("episodes_per_update", episodes_per_update),
                        ("epochs", epochs)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    for name, value in (("factor_updates", factor_updates), ("critic_updates", critic_updates)):
        if value not in UPDATE_MODES:
            raise ValueError(f"{name} must be one of {UPDATE_MODES}, got {value!r}")
    if algorithm == "trtlrpo" and factor_updates != "joint":
        raise ValueError("trtlrpo takes one natural-gradient step on all factors; "
                         f"factor_updates must be 'joint', got {factor_updates!r}")
    gamma = env.discount if discount is None else discount
    if isinstance(gamma, bool) or not isinstance(gamma, numbers.Real) or not 0.0 <= gamma <= 1.0:
        raise ValueError(f"discount must be a number in [0, 1], got {gamma!r}")
    gamma = float(gamma)
    rng = as_rng(rng)
    policy = policy.copy()
    if algorithm == "tlrpg":
        critic = None
    elif critic is None:
        critic = ParafacCritic(policy.state_shape, critic_rank or policy.rank, rng=rng)
    else:
        import copy

        critic = copy.deepcopy(critic)
    optimizer = None if algorithm == "trtlrpo" else Adam(learning_rate)
    opts = {"max_kl": max_kl, "cg_iters": cg_iters, "damping": damping,
            "backtracks": backtracks, "accept_ratio": accept_ratio}
    return_discount = getattr(env, "return_discount", env.discount)
    returns, exact, kls = [], [], []
    status, message = 0, "completed all updates"
    for update in range(n_updates):
        exact.append(env.exact_return(policy))
        batch = rollout(env, policy, episodes_per_update, rng)
        returns.append(float(_discounted_sum(batch.rewards, return_discount)[:, 0].mean()))
        if not np.isfinite(returns[-1]):
            status, message = 1, f"non-finite sampled return at update {update}"
            break
        states = batch.states[batch.alive]
        actions = batch.actions[batch.alive]
        if critic is not None and critic_updates == "blockwise":
            # the authors' bcd critic: per factor, advantages from the current critic, then an
            # L-BFGS fit of that factor alone; the actor uses the last advantages computed
            for block in range(len(critic.factors)):
                adv, targets = _advantages(batch, critic, gamma, lam)
                critic.fit(states, targets, max_iter=critic_iters, block=block)
        else:
            adv, targets = _advantages(batch, critic, gamma, lam)
        snapshot = policy._snapshot(states)
        if algorithm == "trtlrpo":
            kls.append(_trust_region_step(policy, states, actions, adv, opts))
        else:
            old_logp = policy.log_prob(states, actions)
            blocks = [None] if factor_updates == "joint" else _param_blocks(policy)
            for block in blocks:
                for _ in range(epochs):
                    _adam_step(policy, optimizer, states, actions, adv, old_logp,
                               clip if algorithm == "ptlrpo" else None, block)
            kls.append(policy.kl_from(snapshot, states))
        if critic is not None and critic_updates == "joint":
            critic.fit(states, targets, max_iter=critic_iters)
        if callback is not None:
            callback(update, policy, returns[-1], exact[-1])
    n_done = len(returns)
    exact_arr = None if exact[0] is None else np.asarray(exact[:n_done], dtype=float)
    return LearningResult(
        algorithm=algorithm, policy=policy, critic=critic,
        episodes=np.arange(n_done) * episodes_per_update, returns=np.asarray(returns),
        exact_returns=exact_arr, final_exact_return=env.exact_return(policy),
        kl=np.asarray(kls + [np.nan] * (n_done - len(kls))), n_parameters=policy.n_parameters,
        success=status == 0, status=status, message=message)


# ---------------------------------------------------------------------------------- exact gradient
def exact_gradient(mdp, policy):
    """Exact expected return of a softmax PARAFAC policy and its gradient, by contraction.

    The policy is tiled over time. :func:`tnmdp.adapters.exact.logit_gradient` gives
    ``dJ / dlogits[s, a] = sum_t gamma^t d_t(s) pi(a|s) (Q_t(s, a) - V_t(s))`` from the state
    marginals (forward environments) and the policy's action values (backward environments,
    tnmdp's ``-inf``-safe backup); it is pulled back to the factors through the PARAFAC
    vector-Jacobian product.

    Parameters
    ----------
    mdp : FiniteMDP
        State index = C-order multi-index over ``policy.state_shape``. ``-inf`` rewards are
        allowed where the policy cannot reach them (a softmax policy takes every action).
    policy : ParafacPolicy
        ``kind="softmax"``.

    Returns
    -------
    value : float
        ``E[G]``, equal to ``tnmdp.evaluate(mdp, policy.to_policy(mdp))``.
    gradient : ndarray, shape (P,)
        ``dE[G] / dpolicy.params``.

    Raises
    ------
    ValueError
        When ``E[G] = -inf`` (the gradient is not defined).

    Notes
    -----
    ``O(T nnz(P) + T S A + S K (D + A))``: no sampling, no Monte Carlo noise.
    """
    if not isinstance(policy, ParafacPolicy) or policy.kind != "softmax":
        raise TypeError("policy must be a softmax ParafacPolicy")
    value, per_time = logit_gradient(mdp, policy.to_policy(mdp))
    states = np.stack(np.unravel_index(np.arange(mdp.n_states), policy.state_shape), axis=1)
    cp = policy._cp
    _, prod, loo = cp._forward(states)
    return value, cp._vjp(states, per_time.sum(axis=0), prod, loo)


def exact_ascent(policy, mdp, *, n_steps=200, learning_rate=UNSET, callback=None, lr=UNSET):
    """Adam ascent on the exact return (:func:`exact_gradient`): the best rank-K policy found.

    Parameters
    ----------
    policy : ParafacPolicy
        Softmax initial policy (copied).
    mdp : FiniteMDP
    n_steps : int
        Adam steps.
    learning_rate : float
        Adam step size. Default 0.05. ``lr=`` is a deprecated alias.
    callback : callable, optional
        ``callback(step, policy, value)``.

    Returns
    -------
    LearningResult
        ``algorithm="exact"``; ``episodes`` holds the step index (no episodes are sampled) and
        ``returns`` = ``exact_returns`` the exact return before each step.
    """
    learning_rate = renamed_argument("exact_ascent", "lr", "learning_rate", lr, learning_rate,
                                     0.05)
    if not isinstance(policy, ParafacPolicy) or policy.kind != "softmax":
        raise TypeError("policy must be a softmax ParafacPolicy")
    if isinstance(n_steps, bool) or not isinstance(n_steps, numbers.Integral) or n_steps < 1:
        raise ValueError(f"n_steps must be a positive int, got {n_steps!r}")
    policy = policy.copy()
    optimizer = Adam(learning_rate)
    values = []
    for step in range(n_steps):
        value, grad = exact_gradient(mdp, policy)
        values.append(value)
        policy.params = optimizer.step({"params": policy.params}, {"params": -grad})["params"]
        if callback is not None:
            callback(step, policy, value)
    final = exact_gradient(mdp, policy)[0]
    ok = bool(np.isfinite(values).all() and np.isfinite(final))
    curve = np.asarray(values)
    return LearningResult(
        algorithm="exact", policy=policy, critic=None, episodes=np.arange(n_steps),
        returns=curve, exact_returns=curve, final_exact_return=final,
        kl=np.full(n_steps, np.nan), n_parameters=policy.n_parameters, success=ok,
        status=0 if ok else 1, message="completed all steps" if ok else "non-finite return")


_DOC_TEMPLATE = """{summary}

    Parameters
    ----------
    policy : ParafacPolicy
        Initial policy (copied, not modified).
    env : FiniteMDP or MDPEnvironment or GymEnvironment
        A FiniteMDP is wrapped with ``MDPEnvironment(mdp, policy.state_shape)``.
    n_updates : int
        Number of policy updates ``U``.
    episodes_per_update : int
        Episodes ``E`` sampled per update (the budget is ``U E`` episodes).
    discount : float, optional
        Learning discount ``gamma`` in ``[0, 1]``; default the environment's. ``gamma=`` is a
        deprecated alias.
{extra}    rng : numpy.random.Generator or int or None
    callback : callable, optional
        ``callback(update, policy, sampled_return, exact_return)`` after each update.

    Returns
    -------
    LearningResult

    Notes
    -----
    Each update costs ``O(E T_ep K (D + A))`` for the policy terms (times ``epochs``; TRTLRPO:
    times ``cg_iters + backtracks``), plus the critic's L-BFGS iterations of the same order, plus,
    on a finite MDP, one ``tnmdp.evaluate``.
"""

_ADAM_DOC = """    learning_rate : float
        Adam step size (:class:`tnmdp.adapters.optim.Adam`). Default 0.05. ``lr=`` is a
        deprecated alias.
    epochs : int
        Full-batch Adam steps per update (per block with ``factor_updates="blockwise"``).
    factor_updates : {"joint", "blockwise"}
        ``"joint"``: every Adam step moves all factors. ``"blockwise"``: the authors' ``bcd``
        actor update -- ``epochs`` steps per factor matrix (then ``log sigma``) in turn, the
        gradient zeroed outside the block (one Adam state, so momentum still moves the others).
"""

_CRITIC_DOC = """    critic : ParafacCritic, optional
        Initial critic (copied); default a new one of rank ``critic_rank``.
    critic_rank : int, optional
        Rank of the default critic; default the policy's rank.
    lam : float
        GAE parameter.
    critic_iters : int
        L-BFGS iterations per critic refit (per factor with ``critic_updates="blockwise"``).
    critic_updates : {"joint", "blockwise"}
        ``"joint"``: after the actor step, one L-BFGS fit of all critic factors.
        ``"blockwise"``: the authors' ``bcd`` critic -- before the actor step, for each factor
        ``H_d`` in turn, advantages from the current critic and then an L-BFGS fit of ``H_d``
        alone; the actor uses the advantages of the last round (the critic partly fitted to the
        batch it scores).
"""


def _critic_kwargs(critic, lam, critic_rank, critic_iters):
    return {"critic": critic, "lam": lam, "critic_rank": critic_rank, "critic_iters": critic_iters}


_NO_TRUST = {"clip": None, "max_kl": None, "cg_iters": None, "damping": None, "backtracks": None,
             "accept_ratio": None}


def _names(function, discount, gamma, learning_rate=UNSET, lr=UNSET):
    """``discount`` and ``learning_rate`` from the new or the deprecated keywords."""
    return (renamed_argument(function, "gamma", "discount", gamma, discount, None),
            renamed_argument(function, "lr", "learning_rate", lr, learning_rate, 0.05))


def tlrpg(policy, env, *, n_updates=100, episodes_per_update=16, discount=UNSET,
          learning_rate=UNSET, epochs=1, factor_updates="joint", rng=None, callback=None,
          gamma=UNSET, lr=UNSET):
    discount, learning_rate = _names("tlrpg", discount, gamma, learning_rate, lr)
    return _learn("tlrpg", policy, env, n_updates=n_updates,
                  episodes_per_update=episodes_per_update, discount=discount,
                  learning_rate=learning_rate, epochs=epochs, rng=rng, callback=callback,
                  factor_updates=factor_updates, **_critic_kwargs(None, 1.0, None, 0),
                  **_NO_TRUST)


def tlrac(policy, env, critic=None, *, n_updates=100, episodes_per_update=16, discount=UNSET,
          lam=0.95, learning_rate=UNSET, epochs=1, critic_rank=None, critic_iters=20,
          factor_updates="joint", critic_updates="joint", rng=None, callback=None, gamma=UNSET,
          lr=UNSET):
    discount, learning_rate = _names("tlrac", discount, gamma, learning_rate, lr)
    return _learn("tlrac", policy, env, n_updates=n_updates,
                  episodes_per_update=episodes_per_update, discount=discount,
                  learning_rate=learning_rate, epochs=epochs, rng=rng, callback=callback,
                  factor_updates=factor_updates, critic_updates=critic_updates,
                  **_critic_kwargs(critic, lam, critic_rank, critic_iters), **_NO_TRUST)


def ptlrpo(policy, env, critic=None, *, n_updates=100, episodes_per_update=16, discount=UNSET,
           lam=0.95, learning_rate=UNSET, epochs=10, clip=0.2, critic_rank=None,
           critic_iters=20, factor_updates="joint", critic_updates="joint", rng=None,
           callback=None, gamma=UNSET, lr=UNSET):
    discount, learning_rate = _names("ptlrpo", discount, gamma, learning_rate, lr)
    if not isinstance(clip, numbers.Real) or not 0 < clip < 1:
        raise ValueError(f"clip must be in (0, 1), got {clip!r}")
    trust = dict(_NO_TRUST, clip=float(clip))
    return _learn("ptlrpo", policy, env, n_updates=n_updates,
                  episodes_per_update=episodes_per_update, discount=discount,
                  learning_rate=learning_rate, epochs=epochs, rng=rng, callback=callback,
                  factor_updates=factor_updates, critic_updates=critic_updates,
                  **_critic_kwargs(critic, lam, critic_rank, critic_iters), **trust)


def trtlrpo(policy, env, critic=None, *, n_updates=100, episodes_per_update=16, discount=UNSET,
            lam=0.95, max_kl=0.01, cg_iters=10, damping=1e-3, backtracks=10, accept_ratio=0.1,
            critic_rank=None, critic_iters=20, critic_updates="joint", rng=None, callback=None,
            gamma=UNSET):
    discount = _names("trtlrpo", discount, gamma)[0]
    if not isinstance(max_kl, numbers.Real) or not max_kl > 0:
        raise ValueError(f"max_kl must be a positive number, got {max_kl!r}")
    trust = {"clip": None, "max_kl": float(max_kl), "cg_iters": int(cg_iters),
             "damping": float(damping), "backtracks": int(backtracks),
             "accept_ratio": float(accept_ratio)}
    return _learn("trtlrpo", policy, env, n_updates=n_updates,
                  episodes_per_update=episodes_per_update, discount=discount,
                  learning_rate=None, epochs=1, rng=rng, callback=callback,
                  critic_updates=critic_updates,
                  **_critic_kwargs(critic, lam, critic_rank, critic_iters), **trust)


tlrpg.__doc__ = _DOC_TEMPLATE.format(
    summary="Tensor low-rank policy gradient: REINFORCE, reward-to-go minus its per-step mean.",
    extra=_ADAM_DOC)
tlrac.__doc__ = _DOC_TEMPLATE.format(
    summary="Tensor low-rank actor-critic: GAE(discount, lam) advantages from a PARAFAC critic.",
    extra=_ADAM_DOC + _CRITIC_DOC)
ptlrpo.__doc__ = _DOC_TEMPLATE.format(
    summary="Proximal tensor low-rank policy optimisation: the PPO clipped surrogate.",
    extra=_ADAM_DOC + _CRITIC_DOC + """    clip : float
        Ratio clipping ``eps``: the surrogate is ``min(rho A, clip(rho, 1 - eps, 1 + eps) A)``.
""")
trtlrpo.__doc__ = _DOC_TEMPLATE.format(
    summary="Trust-region tensor low-rank policy optimisation: natural gradient, KL bound.",
    extra=_CRITIC_DOC + """    max_kl : float
        Bound ``delta`` on the mean ``KL(old || new)`` over the batch's states; every accepted
        step satisfies it (see ``LearningResult.kl``).
    cg_iters, damping : int, float
        Conjugate-gradient iterations on ``(F + damping I) x = g``, ``F`` the exact Hessian of
        the mean KL.
    backtracks, accept_ratio : int, float
        Line search: halve the step ``sqrt(2 max_kl / x^T F x) x`` up to ``backtracks`` times
        until the KL bound holds and the surrogate gains at least ``accept_ratio`` of its linear
        prediction; otherwise no step is taken.
""")
