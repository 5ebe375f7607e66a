"""Soft (KL-regularised) solve vs hard solve of the T = 2000 excursion: cost ratio.

Target (issue 3): the soft solve -- temperature 1, hard constraints, uniform reference, whose
optimum is the Doob-conditioned walk -- costs at most 2x the hard solve (temperature 0, the
paper's penalty rewards) of the same walk, one backward sweep each. Also times log_partition
(the tilted network alone). Best of ``--repeats`` wall-clock runs, in the same process.

Run:  python benchmarks/soft_vs_hard.py [--horizon 2000] [--repeats 5]
Writes benchmarks/results/soft_vs_hard.json and soft_vs_hard.png.
"""

import argparse
import json
import math
import platform
import time
from pathlib import Path

import tnmdp

RESULTS = Path(__file__).resolve().parent / "results"


def best_time(fn, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times), times


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--horizon", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    T = args.horizon
    penalty = tnmdp.models.excursion(T)
    hard = tnmdp.models.excursion(T, hard=True)
    cases = {
        "hard solve (penalty rewards, tau = 0)": lambda: tnmdp.solve(penalty),
        "hard solve (-inf rewards, tau = 0)": lambda: tnmdp.solve(hard),
        "soft solve (-inf rewards, tau = 1)": lambda: tnmdp.solve(hard, temperature=1.0),
        "soft solve (penalty rewards, tau = 1)": lambda: tnmdp.solve(penalty, temperature=1.0),
        "log_partition (-inf rewards)": lambda: tnmdp.log_partition(hard),
    }
    timings = {}
    for name, fn in cases.items():
        fn()  # warm caches (transposes, expected rewards)
        best, all_times = best_time(fn, args.repeats)
        timings[name] = dict(best_s=best, all_s=all_times)
        print(f"{name:40s} {best * 1e3:9.1f} ms")
    base = timings["hard solve (penalty rewards, tau = 0)"]["best_s"]
    ratio = timings["soft solve (-inf rewards, tau = 1)"]["best_s"] / base
    ratio_same = (timings["soft solve (-inf rewards, tau = 1)"]["best_s"]
                  / timings["hard solve (-inf rewards, tau = 0)"]["best_s"])
    n = T // 2
    exact = math.lgamma(2 * n + 1) - math.lgamma(n + 1) - math.lgamma(n + 2) - T * math.log(2)
    soft_value = tnmdp.solve(hard, temperature=1.0).soft_value
    record = dict(horizon=T, n_states=hard.n_states, repeats=args.repeats,
                  machine=platform.machine(), python=platform.python_version(),
                  timings=timings, soft_over_hard=ratio, soft_over_hard_same_model=ratio_same,
                  target_ratio=2.0, meets_target=bool(ratio <= 2.0),
                  soft_value=soft_value, closed_form=exact,
                  relative_error=abs(soft_value - exact) / abs(exact))
    print(f"soft / hard = {ratio:.2f} (same -inf model: {ratio_same:.2f}); target <= 2: "
          f"{'met' if ratio <= 2 else 'NOT met'}; soft value rel. error "
          f"{record['relative_error']:.1e}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "soft_vs_hard.json").write_text(json.dumps(record, indent=2) + "\n")
    try:
        from tnmdp.plotting import _pyplot
    except ImportError:  # pragma: no cover - matplotlib missing
        return
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 3.5))
    names = list(timings)
    ax.barh(names, [timings[k]["best_s"] * 1e3 for k in names], color="tab:blue")
    ax.axvline(2 * base * 1e3, color="tab:red", ls="--", label="2x hard solve (target)")
    ax.set_xlabel("best wall-clock time (ms)")
    ax.set_title(f"Excursion, T = {T} (S = {hard.n_states}): soft / hard = {ratio:.2f}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(RESULTS / "soft_vs_hard.png", dpi=120)


if __name__ == "__main__":
    main()
