"""Batches of independent solves: :func:`solve_many` on local processes or a Dask cluster.

Each item is a :class:`tnmdp.FiniteMDP` or a factory (a callable without arguments returning
one, called where the solve runs, so that large models are built there and never shipped). Each
result is the :class:`tnmdp.Solution` that ``tnmdp.solve(mdp, **solve_kwargs)`` returns in the
calling process, made transferable: the policy as a plain :class:`tnmdp.Policy` (actions as
small ints; a soft policy as its ``(S, A)`` sites) and the history computed; the model is
not sent back.
"""

from __future__ import annotations

import inspect
import os

import numpy as np

from ..model import FiniteMDP
from ..policy import Policy, SoftPolicy
from ..solution import Solution
from ..solve import solve as _solve

__all__ = ["solve_many"]

_FIELDS = ("expected_return", "values", "soft_value", "n_sweeps", "success", "status", "message")


def _check_items(items):
    if isinstance(items, (FiniteMDP, str)) or not hasattr(items, "__iter__"):
        raise TypeError(f"mdps_or_factories must be a sequence of FiniteMDP or callables, got "
                        f"{type(items).__name__}")
    items = list(items)
    for i, item in enumerate(items):
        if not (isinstance(item, FiniteMDP) or callable(item)):
            raise TypeError(f"mdps_or_factories[{i}] must be a FiniteMDP or a callable returning "
                            f"one, got {type(item).__name__}")
    return items


def _pack(solution):
    """The fields of a Solution, transferable between processes."""
    policy = solution.policy
    if isinstance(policy, SoftPolicy):  # its sites need the model: send them computed
        policy = Policy([np.asarray(policy[t]) for t in range(policy.horizon)],
                        policy.n_states, policy.n_actions)
    fields = {name: getattr(solution, name) for name in _FIELDS}
    return dict(fields, policy=policy, history=np.asarray(solution.history))


def _unpack(fields, item):
    """The Solution, with the caller's model attached when the item was one (a factory's model
    is not sent back)."""
    return Solution(**fields, mdp=item if isinstance(item, FiniteMDP) else None)


def solve_one(index, item, solve_kwargs):
    """Build (when ``item`` is a factory) and solve one model; the packed Solution."""
    mdp = item() if not isinstance(item, FiniteMDP) else item
    if not isinstance(mdp, FiniteMDP):
        raise TypeError(f"mdps_or_factories[{index}]() returned {type(mdp).__name__}, not a "
                        f"FiniteMDP")
    return _pack(_solve(mdp, **solve_kwargs))


def _solve_pickled(payload):
    import cloudpickle

    return solve_one(*cloudpickle.loads(payload))


def solve_many(mdps_or_factories, *, client=None, **solve_kwargs):
    """Solve many models in parallel: each result equals ``tnmdp.solve(mdp, **solve_kwargs)``.

    Parameters
    ----------
    mdps_or_factories : sequence of FiniteMDP or callable
        Models, or callables without arguments that build one where it is solved (lambdas and
        closures are fine: they travel with cloudpickle).
    client : distributed.Client, optional
        Run on this Dask cluster (one task per model). Without it: a pool of local processes,
        one per CPU (``spawn``-started; about a second to start).
    **solve_kwargs
        Passed to :func:`tnmdp.solve` (checked here against its signature).

    Returns
    -------
    list of Solution
        In the order of ``mdps_or_factories``. Policies are plain :class:`tnmdp.Policy`
        objects: argmax policies as ``(T, S)`` small ints, soft ones as dense ``(S, A)`` sites
        (``T S A`` floats), and ``history`` is computed. ``Solution.mdp`` is the item when it
        was a model, ``None`` for a factory (its model is not sent back).

    Raises
    ------
    TypeError
        For an item that is neither a model nor a callable, a factory that does not return a
        model, or an unknown keyword; errors of a solve are raised with their type.

    Notes
    -----
    No client and one item (or one CPU): solved in this process. Solves are independent:
    ``n`` models on ``W`` workers take about ``ceil(n / W)`` solve times plus the transfer of
    each model (or factory) and result.
    """
    items = _check_items(mdps_or_factories)
    inspect.signature(_solve).bind(None, **solve_kwargs)  # TypeError for an unknown keyword
    if client is not None:
        from .blocksweep import _get_client

        client = _get_client(client)
        # each model travels inside its task, which Dask can rerun after a worker failure
        futures = [client.submit(solve_one, i, item, solve_kwargs, pure=False)
                   for i, item in enumerate(items)]
        return [_unpack(fields, item) for fields, item in zip(client.gather(futures), items)]
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    n_workers = min(len(items), cpus or 1)
    if n_workers <= 1:
        return [_unpack(solve_one(i, item, solve_kwargs), item) for i, item in enumerate(items)]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    import cloudpickle

    payloads = [cloudpickle.dumps((i, item, solve_kwargs)) for i, item in enumerate(items)]
    with ProcessPoolExecutor(n_workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        return [_unpack(fields, item) for fields, item in zip(pool.map(_solve_pickled, payloads),
                                                              items)]
