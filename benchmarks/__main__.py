"""``python -m benchmarks [--quick] [--only NAME ...]`` (also ``tnmdp bench``).

Runs the suites in one process with ``OPENBLAS_NUM_THREADS=1`` and
``QUIMB_NUM_THREAD_WORKERS=1`` (re-launching itself when numpy or quimb was already loaded), prints the ratios and slopes, and writes JSON and PNG
results under ``benchmarks/results/``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

SUITES = ("sweep_vs_dp", "strategies", "sparse_bandwidth")


def _parser():
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, one repeat (CI smoke)")
    parser.add_argument("--only", nargs="+", choices=SUITES, default=list(SUITES),
                        help="run only these suites")
    parser.add_argument("--repeats", type=int, default=None, help="timing repeats (min is kept)")
    return parser


def main(argv=None):
    """Run the suites; return an exit status."""
    args = _parser().parse_args(argv)
    # One BLAS thread; and quimb (imported by the full-contraction strategy) must not swap
    # scipy's CSR matrix-vector product for its threaded numba one (it does so on import, for
    # nnz > 50,000, unless QUIMB_NUM_THREAD_WORKERS=1): that would time peers and tnmdp's numpy
    # path on several threads (and it has crashed here).
    pinned = {"OPENBLAS_NUM_THREADS": "1", "QUIMB_NUM_THREAD_WORKERS": "1"}
    if any(os.environ.get(k) != v for k, v in pinned.items()):
        if "numpy" in sys.modules or "quimb" in sys.modules:  # too late to pin: start afresh
            env = {**os.environ, **pinned}
            root = Path(__file__).resolve().parent.parent
            argv = sys.argv[1:] if argv is None else list(argv)
            return subprocess.call([sys.executable, "-m", "benchmarks", *argv], env=env, cwd=root)
        os.environ.update(pinned)
    from . import RESULTS, sparse_bandwidth, strategies, sweep_vs_dp

    modules = {"sweep_vs_dp": sweep_vs_dp, "strategies": strategies,
               "sparse_bandwidth": sparse_bandwidth}
    for name in args.only:
        print(f"== {name}{' (quick)' if args.quick else ''}", flush=True)
        result = modules[name].run(quick=args.quick, repeats=args.repeats)
        print("\n".join(modules[name].summary(result)), flush=True)
    print(f"results in {RESULTS}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
