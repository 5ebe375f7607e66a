"""Command line: ``tnmdp demo ...`` and ``tnmdp bench ...`` (also ``python -m tnmdp``)."""

from __future__ import annotations

import argparse
import os
import sys
import time

__all__ = ["main", "demo_summary"]

WALKS = ("excursion", "bridge", "meander")


def demo_summary(kind="excursion", horizon=40, *, soft=False):
    """Solve a conditioned walk and return a short text summary.

    Parameters
    ----------
    kind : {"excursion", "bridge", "meander"}
    horizon : int
    soft : bool
        Solve the hard-constrained walk at ``temperature = 1`` (the Doob-conditioned walk)
        instead of the paper's penalty rewards at ``temperature = 0``.
    """
    import numpy as np

    from . import evaluate, models, sample, solve
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
    ok = np.isfinite(paths.returns) & (paths.returns >= (0 if soft else 1) - 1e-9)
    lines.append(f"  1000 sampled paths: {ok.mean():.1%} satisfy the condition; "
                 f"policy stored in {sol.policy.nbytes / 1e3:.1f} kB")
    return "\n".join(lines)


def _parser():
    parser = argparse.ArgumentParser(prog="tnmdp", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="solve a conditioned random walk and summarise it")
    demo.add_argument("kind", nargs="?", default="excursion", choices=WALKS)
    demo.add_argument("--horizon", "-T", type=int, default=40, help="number of steps (default 40)")
    demo.add_argument("--soft", action="store_true",
                      help="hard constraints at temperature 1: the Doob-conditioned walk")
    demo.add_argument("--plot", metavar="FILE", help="save sampled trajectories to a PNG")
    bench = sub.add_parser("bench", add_help=False,
                           help="run the benchmark suite (from a source checkout; "
                                "'tnmdp bench --help' lists its options)")
    bench.add_argument("args", nargs=argparse.REMAINDER)
    return parser


def main(argv=None):
    """Entry point of the ``tnmdp`` console script."""
    try:
        return _main(argv)
    except BrokenPipeError:  # e.g. `tnmdp demo | head`: stop quietly
        sys.stderr.close()
        return 0


def _main(argv):
    args = _parser().parse_known_args(argv)[0] if _is_bench(argv) else _parser().parse_args(argv)
    if args.command == "demo":
        if args.horizon < 1:
            raise SystemExit(f"tnmdp demo: --horizon must be >= 1, got {args.horizon}")
        print(demo_summary(args.kind, args.horizon, soft=args.soft))
        if args.plot:
            from .plotting import plot_walk_demo

            plot_walk_demo(args.kind, args.horizon, soft=args.soft, filename=args.plot)
            print(f"  plot written to {args.plot}")
        return 0
    sys.path.insert(0, os.getcwd())  # the benchmarks live in the source checkout
    try:
        from benchmarks.__main__ import main as bench_main
    except ImportError:
        raise SystemExit("tnmdp bench: run it from the root of a source checkout "
                         "(or: python -m benchmarks)")
    argv = sys.argv[1:] if argv is None else list(argv)
    return bench_main(argv[argv.index("bench") + 1:])


def _is_bench(argv):
    argv = sys.argv[1:] if argv is None else argv
    return bool(argv) and argv[0] == "bench"


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
