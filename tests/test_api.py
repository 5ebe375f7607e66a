"""The public face: names, lazy quimb import, the command line."""

import ast
import importlib
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

import tnmdp
from tnmdp import cli


def test_all_names_exist_exactly_once():
    assert not [name for name, n in Counter(tnmdp.__all__).items() if n > 1]
    for name in tnmdp.__all__:
        assert hasattr(tnmdp, name), name


def _modules():
    """Every module under tnmdp (found on disk, not listed by hand)."""
    root = Path(tnmdp.__file__).parent
    names = []
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names.append((".".join(parts), path))
    return names


MODULES = _modules()


@pytest.mark.parametrize("module", [name for name, _ in MODULES if name != "tnmdp.__main__"])
def test_every_module_imports_and_its_all_names_exist(module):
    if module == "tnmdp.fast":  # the old location of the kernels: a deprecated alias
        sys.modules.pop(module, None)
        with pytest.warns(DeprecationWarning, match="tnmdp.fast is deprecated"):
            mod = importlib.import_module(module)
    else:
        mod = importlib.import_module(module)
    names = getattr(mod, "__all__", None)
    assert names is not None, f"{module} has no __all__"
    assert len(set(names)) == len(names), module
    for name in names:
        assert hasattr(mod, name), f"{module}.{name}"


def _import_graph():
    """``{module: set of tnmdp modules it imports}`` from the source (imports at any depth,
    relative ones resolved); a package's ``__init__`` re-exporting its own children is not an
    edge."""
    known = {name for name, _ in MODULES}
    graph = {}
    for name, path in MODULES:
        package = path.name == "__init__.py"
        base = name.split(".") if package else name.split(".")[:-1]
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                stem = base[:len(base) - node.level + 1] if node.level else []
                module = ".".join(stem + ([node.module] if node.module else []))
                targets = [module] + [f"{module}.{alias.name}" for alias in node.names]
            else:
                continue
            for target in targets:
                while target and target not in known:  # longest known prefix
                    target = target.rpartition(".")[0]
                if target and target != name and not (package and target.startswith(name + ".")):
                    deps.add(target)
        graph[name] = deps
    return graph


def _cycle(graph):
    """One import cycle as a list of modules, or ``None`` (iterative depth-first search)."""
    state = dict.fromkeys(graph, 0)  # 0 new, 1 on the stack, 2 done
    for start in graph:
        if state[start]:
            continue
        stack, path = [(start, iter(sorted(graph[start])))], [start]
        state[start] = 1
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                state[node] = 2
                stack.pop()
                path.pop()
            elif state[child] == 1:
                return path[path.index(child):] + [child]
            elif state[child] == 0:
                state[child] = 1
                stack.append((child, iter(sorted(graph[child]))))
                path.append(child)
    return None


def test_cycle_finder_finds_a_planted_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_import_graph_has_no_cycle_and_the_oracle_imports_nothing():
    graph = _import_graph()
    assert graph["tnmdp.solve"] >= {"tnmdp.sweep", "tnmdp.model"}  # the parser sees imports
    assert _cycle(graph) is None, " -> ".join(_cycle(graph))
    assert graph["tnmdp.reference"] == set()  # the oracle reads raw arrays only
    core = {"tnmdp.model", "tnmdp.policy", "tnmdp.kernels", "tnmdp.environments",
            "tnmdp.local", "tnmdp.sweep", "tnmdp.solve", "tnmdp.evaluate", "tnmdp._validate"}
    layers = ("tnmdp.lattice", "tnmdp.adapters", "tnmdp.models", "tnmdp.interop",
              "tnmdp.distributed", "tnmdp.plotting", "tnmdp.cli")
    for name in core:
        above = [d for d in graph[name] if d.startswith(layers)]
        assert not above, f"{name} imports the layers above it: {above}"
    # and inside the core: model -> environments -> local -> sweep -> solve (DESIGN.md)
    order = ["tnmdp.model", "tnmdp.environments", "tnmdp.local", "tnmdp.sweep", "tnmdp.solve"]
    for i, name in enumerate(order):
        upward = graph[name] & set(order[i + 1:])
        assert not upward, f"{name} imports {sorted(upward)}, above it"


#: Optional or heavy packages that ``import tnmdp`` and a small solve must not import (they load
#: lazily where a feature needs them).
LAZY = ("quimb", "dask", "distributed", "jax", "gymnasium", "matplotlib", "numba", "sparse",
        "quantecon", "mdptoolbox", "networkx", "sphinx")


def test_import_and_a_small_solve_import_no_heavy_package():
    code = ("import sys, tnmdp; tnmdp.solve(tnmdp.models.excursion(4)); "
            f"print([m for m in {LAZY!r} if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_cli_demo(capsys):
    assert cli.main(["demo", "--horizon", "12"]) == 0
    out = capsys.readouterr().out
    assert "expected return E[G] = 1 " in out and "100.0% satisfy" in out


def test_cli_soft_demo(capsys):
    assert cli.main(["demo", "bridge", "-T", "10", "--soft"]) == 0
    assert "admissible paths / 2^T = 0.246094" in capsys.readouterr().out  # 252 / 1024


def test_cli_rejects_bad_horizon():
    with pytest.raises(SystemExit, match="--horizon must be >= 1, got 0"):
        cli.main(["demo", "-T", "0"])


def test_cli_demo_plot(tmp_path, capsys):
    assert cli.main(["demo", "meander", "-T", "12", "--soft", "--plot", str(tmp_path / "m.png")]) == 0
    assert (tmp_path / "m.png").stat().st_size > 10_000
    assert "plot written to" in capsys.readouterr().out


def test_cli_bench_outside_a_checkout(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    hidden = [p for p in sys.path if os.path.isdir(os.path.join(p or ".", "benchmarks"))]
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in hidden])
    monkeypatch.delitem(sys.modules, "benchmarks", raising=False)
    monkeypatch.delitem(sys.modules, "benchmarks.__main__", raising=False)
    with pytest.raises(SystemExit, match="run it from the root of a source checkout"):
        cli.main(["bench", "--quick"])


def test_ci_runs_the_readme_test_command():
    """The README's second fresh-machine command (install and run the tests) is what .ci/run
    runs, word for word: the two cannot drift apart."""
    root = Path(__file__).resolve().parents[1]
    block = (root / "README.md").read_text().split("```bash\n", 1)[1].split("```", 1)[0]
    command = block.splitlines()[1].split("#")[0].strip()
    assert command.startswith('pip install -e ".[test]" && python -m pytest')
    ci = [line.strip() for line in (root / ".ci" / "run").read_text().splitlines()]
    assert command in ci
