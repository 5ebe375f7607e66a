"""Command line: ``tnmdp demo | solve | convert | info`` (also ``python -m tnmdp``).

``tnmdp demo KIND`` solves a conditioned random walk and summarises it; ``tnmdp convert`` writes
a model from gymnasium or pymdptoolbox to a tnmdp ``.npz`` file; ``tnmdp solve MODEL.npz``
solves it exactly (one backward sweep) and saves the :class:`tnmdp.Solution`; ``tnmdp info``
describes a saved model or solution. Exit status: 0 success, 1 an error (bad file, bad model;
one line on stderr, no traceback), 2 bad command-line usage.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

__all__ = ["main", "demo_summary"]

#: The condition of each walk of ``tnmdp demo`` (:func:`tnmdp.models.walks.admissible`).
WALKS = {"excursion": {"floor": 0, "end": 0}, "bridge": {"end": 0}, "meander": {"floor": 0}}


class CommandError(Exception):
    """An error reported as one line (``tnmdp CMD: error: ...``), exit status 1."""


def demo_summary(kind="excursion", horizon=40, *, soft=False):
    """Solve a conditioned walk and return a short text summary.

    Parameters
    ----------
    kind : {"excursion", "bridge", "meander"}
    horizon : int
    soft : bool
        Solve the hard-constrained walk at ``temperature = 1`` (the Doob-conditioned walk)
        instead of the paper's penalty rewards at ``temperature = 0``.

    Notes
    -----
    The share of sampled paths that satisfy the condition is read from the sampled states
    (:func:`tnmdp.models.walks.admissible`), not from their returns.
    """
    import numpy as np

    from . import evaluate, models, sample, solve
    from .models.walks import admissible
    from .reference import backward_induction

    factory = getattr(models, kind)
    mdp = factory(horizon, hard=soft)
    start = time.perf_counter()
    sol = solve(mdp, temperature=1.0 if soft else 0.0)
    elapsed = time.perf_counter() - start
    lines = [f"tnmdp demo: {kind} of T = {horizon} steps ({mdp})",
             f"  solve (one backward sweep): {elapsed * 1e3:.1f} ms, {sol.message}"]
    if soft:
        lines += [f"  soft value J* = log Pr(event) = {sol.soft_value:.12g}",
                  f"  admissible paths / 2^T = {np.exp(sol.soft_value):.6g}"]
    else:
        oracle = backward_induction(mdp).expected_return
        lines += [f"  expected return E[G] = {sol.expected_return:.12g} "
                  f"(backward induction: {oracle:.12g}; uniform walk: "
                  f"{evaluate(mdp, np.full(sol.policy.shape, 0.5)):.6g})"]
    paths = sample(mdp, sol.policy, 1000, rng=0)
    ok = admissible(paths.states, horizon, **WALKS[kind])
    lines.append(f"  1000 sampled paths: {ok.mean():.1%} satisfy the condition; "
                 f"policy stored in {sol.policy.nbytes / 1e3:.1f} kB")
    return "\n".join(lines)


# --------------------------------------------------------------------------- parser
def _parser():
    parser = argparse.ArgumentParser(prog="tnmdp", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = sub.add_parser("demo", help="solve a conditioned random walk and summarise it")
    demo.add_argument("kind", nargs="?", default="excursion", choices=tuple(WALKS))
    demo.add_argument("--horizon", "-T", type=int, default=40, help="number of steps (default 40)")
    demo.add_argument("--soft", action="store_true",
                      help="hard constraints at temperature 1: the Doob-conditioned walk")
    demo.add_argument("--plot", metavar="FILE", help="save sampled trajectories to a PNG")

    solve = sub.add_parser("solve", help="solve a saved model exactly and save the solution",
                           description="Solve MODEL.npz (written by FiniteMDP.save or 'tnmdp "
                           "convert') by one backward sweep: the exact finite-horizon optimum.")
    solve.add_argument("model", metavar="MODEL.npz")
    solve.add_argument("--horizon", "-T", type=int,
                       help="solve over T steps instead of the saved horizon (stationary models)")
    solve.add_argument("--discount", type=float, help="replace the saved discount")
    solve.add_argument("--temperature", type=float, default=0.0,
                       help="KL-regularised objective at this temperature (default 0: plain)")
    solve.add_argument("--out", "-o", metavar="SOLUTION.npz", help="save the Solution here")
    solve.add_argument("--json", action="store_true", help="print the summary as JSON")

    convert = sub.add_parser("convert", help="write a gymnasium or pymdptoolbox model to .npz",
                             description="Convert a model to a tnmdp .npz file.")
    convert.add_argument("source", choices=("gymnasium", "mdptoolbox-forest"),
                         help="gymnasium: an env id with a model (toy-text); "
                              "mdptoolbox-forest: mdptoolbox.example.forest")
    convert.add_argument("env_id", nargs="?", metavar="ENV_ID",
                         help="gymnasium env id, e.g. FrozenLake-v1")
    convert.add_argument("--horizon", "-T", type=int,
                         help="number of decisions (gymnasium: default its TimeLimit)")
    convert.add_argument("--discount", type=float, default=1.0, help="default 1")
    convert.add_argument("--make", action="append", default=[], metavar="KEY=VALUE",
                         help="gymnasium.make keyword (JSON value), e.g. map_name='\"8x8\"' "
                              "or is_slippery=false; repeatable")
    convert.add_argument("--states", type=int, default=3,
                         help="mdptoolbox-forest: number of states S (default 3)")
    convert.add_argument("--out", "-o", required=True, metavar="MODEL.npz")

    info = sub.add_parser("info", help="describe a saved model or solution")
    info.add_argument("file", metavar="FILE.npz")
    info.add_argument("--json", action="store_true", help="print as JSON")

    sub.add_parser("bench", add_help=False,
                   help="removed: run 'python -m benchmarks' in a source checkout")
    return parser


def main(argv=None):
    """Entry point of the ``tnmdp`` console script; returns the exit status."""
    try:
        return _main(argv)
    except BrokenPipeError:  # e.g. `tnmdp demo | head`: stop quietly
        sys.stderr.close()
        return 0


def _main(argv):
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["bench"]:
        # The benchmarks are not part of the installed package; the old subcommand imported
        # whatever `benchmarks` package the working directory held.
        raise SystemExit("tnmdp bench: removed; run it from the root of a source checkout: "
                         "python -m benchmarks")
    args = _parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except (CommandError, ValueError, TypeError, OSError, ImportError) as err:
        message = str(err) if not isinstance(err, FileNotFoundError) else \
            f"no such file: {err.filename}"
        raise SystemExit(f"tnmdp {args.command}: error: {message}") from None


def _demo(args):
    if args.horizon < 1:
        raise SystemExit(f"tnmdp demo: --horizon must be >= 1, got {args.horizon}")
    print(demo_summary(args.kind, args.horizon, soft=args.soft))
    if args.plot:
        from .plotting import plot_walk_demo

        plot_walk_demo(args.kind, args.horizon, soft=args.soft, filename=args.plot)
        print(f"  plot written to {args.plot}")
    return 0


def _with_horizon_and_discount(mdp, horizon, discount):
    """The same model over another horizon and/or with another discount."""
    import numpy as np

    from ._npz import mdp_state
    from .model import FiniteMDP

    if horizon is None and discount is None:
        return mdp
    state = mdp_state(mdp)
    if horizon is not None and horizon != mdp.horizon:
        if horizon < 1:
            raise CommandError(f"--horizon must be >= 1, got {horizon}")
        law = state.get("law")
        if not mdp.stationary_transitions or mdp.rewards.shape[0] != 1 or (
                law is not None and not bool(law["stationary"])):
            raise CommandError(f"the model is time-dependent (horizon {mdp.horizon}); "
                               "--horizon can only change the horizon of a stationary model")
        state["horizon"], state["op_index"] = horizon, np.zeros(horizon, dtype=np.int64)
    if discount is not None:
        state["discount"] = discount
    return FiniteMDP._from_state(state)


def _solve(args):
    from . import solve
    from .model import FiniteMDP

    mdp = _with_horizon_and_discount(FiniteMDP.load(args.model), args.horizon, args.discount)
    start = time.perf_counter()
    sol = solve(mdp, temperature=args.temperature)
    elapsed = time.perf_counter() - start
    if args.out:
        sol.save(args.out)
    summary = {"model": args.model, "n_states": mdp.n_states, "n_actions": mdp.n_actions,
               "horizon": mdp.horizon, "discount": mdp.discount,
               "temperature": args.temperature, "expected_return": sol.expected_return,
               "soft_value": sol.soft_value, "solve_seconds": elapsed,
               "policy_nbytes": sol.policy.nbytes,
               "policy": "deterministic" if sol.policy.deterministic else "stochastic",
               "success": sol.success, "message": sol.message, "out": args.out}
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"tnmdp solve: {args.model}: {mdp}")
        print(f"  E[G] = {sol.expected_return:.12g}"
              + ("" if sol.soft_value is None else f", soft value J = {sol.soft_value:.12g}"))
        print(f"  {mdp.n_states} states, {mdp.n_actions} actions, T = {mdp.horizon}; solved in "
              f"{elapsed * 1e3:.1f} ms; {summary['policy']} policy stored in "
              f"{sol.policy.nbytes / 1e3:.1f} kB")
        print(f"  {sol.message}")
        if args.out:
            print(f"  solution written to {args.out}")
    return 0


def _make_kwargs(items):
    kwargs = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.isidentifier():
            raise CommandError(f"--make takes KEY=VALUE, got {item!r}")
        try:
            kwargs[key] = json.loads(value)
        except json.JSONDecodeError:
            kwargs[key] = value  # a bare string: map_name=8x8
    return kwargs


def _convert(args):
    from .interop import from_gymnasium, from_mdptoolbox

    if args.source == "gymnasium":
        if not args.env_id:
            raise CommandError("gymnasium needs an env id, e.g. tnmdp convert gymnasium "
                               "FrozenLake-v1 --horizon 100 --out fl.npz")
        try:
            mdp = from_gymnasium(args.env_id, args.horizon, discount=args.discount,
                                 **_make_kwargs(args.make))
        except Exception as err:  # gymnasium's own errors (unknown id, bad kwargs)
            if isinstance(err, (ValueError, TypeError, ImportError, CommandError)):
                raise
            raise CommandError(f"{type(err).__name__}: {err}") from None
    else:
        if args.env_id or args.make:
            raise CommandError("mdptoolbox-forest takes no env id and no --make")
        if args.horizon is None:
            raise CommandError("mdptoolbox-forest needs --horizon")
        try:
            from mdptoolbox.example import forest
        except ImportError:
            raise CommandError("mdptoolbox-forest needs pymdptoolbox: pip install "
                               "pymdptoolbox") from None
        P, R = forest(S=args.states)
        mdp = from_mdptoolbox(P, R, args.horizon, discount=args.discount)
    mdp.save(args.out)
    print(f"tnmdp convert: {mdp} written to {args.out}")
    return 0


def _describe(path):
    import scipy.sparse as sp

    from ._npz import load_state
    from .model import FiniteMDP
    from .solution import Solution

    kind, _ = load_state(path)
    if kind == "FiniteMDP":
        mdp, sol = FiniteMDP.load(path), None
    elif kind == "Solution":
        sol = Solution.load(path)
        mdp = sol.mdp
    else:
        raise CommandError(f"{path} holds a {kind!r}, which this tnmdp does not know")
    out = {"file": str(path), "kind": kind}
    if mdp is not None:
        ops = {id(mdp.transition_matrix(t)): mdp.transition_matrix(t)
               for t in range(mdp.horizon or 1)}
        out.update(n_states=mdp.n_states, n_actions=mdp.n_actions, horizon=mdp.horizon,
                   discount=mdp.discount, sparse=mdp.is_sparse,
                   stationary=mdp.stationary_transitions, n_operators=len(ops),
                   nnz=int(sum(op.nnz if sp.issparse(op) else (op != 0).sum()
                               for op in ops.values())),
                   rewards_shape=list(mdp.rewards.shape), reward_kind=mdp.reward_kind(),
                   stochastic_rewards=mdp.reward_power_law(0) is not None)
    if sol is not None:
        out.update(expected_return=sol.expected_return, soft_value=sol.soft_value,
                   policy=type(sol.policy).__name__, policy_nbytes=sol.policy.nbytes,
                   success=sol.success, message=sol.message)
    return out


def _info(args):
    out = _describe(args.file)
    if args.json:
        print(json.dumps(out))
    else:
        for key, value in out.items():
            print(f"{key:>18}: {value}")
    return 0


COMMANDS = {"demo": _demo, "solve": _solve, "convert": _convert, "info": _info}


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
