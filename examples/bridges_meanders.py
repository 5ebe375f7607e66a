"""Path densities of Doob-conditioned bridges and meanders against the exact densities.

The hard-constrained walk (reward -inf on forbidden moves) solved at temperature 1 with the
uniform reference policy is the walk conditioned on its event: uniform over admissible paths.
Its per-time marginals (tnmdp.marginals) are compared with the closed-form density
#(paths 0 -> x in t steps) * #(paths x -> end in T - t steps) / #(paths), from the reflection
principle. Also prints log(#paths / 2^T) from the tilted network against the closed forms.

Run:  python examples/bridges_meanders.py [--horizon 100]
Writes examples/results/bridges_meanders.png and bridges_meanders.json.
"""

import argparse
import json
import math
from pathlib import Path

import tnmdp
from tnmdp.plotting import WALK_CONDITIONS, density_figure

RESULTS = Path(__file__).resolve().parent / "results"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--horizon", type=int, default=100)
    args = parser.parse_args(argv)
    T = args.horizon
    RESULTS.mkdir(exist_ok=True)
    png = RESULTS / "bridges_meanders.png"
    _, errors = density_figure(T, ("bridge", "meander"), filename=png)
    closed = {"bridge": math.comb(T, T // 2) if T % 2 == 0 else 0,
              "meander": math.comb(T, T // 2)}
    record = dict(horizon=T, max_density_error=errors, log_probability={})
    for kind, count in closed.items():
        mdp = tnmdp.models.conditioned_walk(T, hard=True, **WALK_CONDITIONS[kind])
        got = tnmdp.log_partition(mdp)
        exact = math.log(count) - T * math.log(2) if count else -math.inf
        record["log_probability"][kind] = dict(tnmdp=got, closed_form=exact)
        print(f"{kind:8s} log Pr(event) = {got:.15g} (closed form {exact:.15g}); "
              f"max |density - exact| = {errors[kind]:.2e}")
    (RESULTS / "bridges_meanders.json").write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {png}")


if __name__ == "__main__":
    main()
