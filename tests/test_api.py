"""The public face: names, lazy quimb import, the command line."""

import os
import subprocess
import sys
from collections import Counter

import pytest

import tnmdp
from tnmdp import cli


def test_all_names_exist_exactly_once():
    assert not [name for name, n in Counter(tnmdp.__all__).items() if n > 1]
    for name in tnmdp.__all__:
        assert hasattr(tnmdp, name), name


@pytest.mark.parametrize("module", ["model", "kernels", "local", "policy", "sweep", "solve",
                                    "evaluate", "reference", "network", "tilted", "cli",
                                    "plotting", "models", "models.walks", "models.pendulum",
                                    "models.gridworld", "models.multitask", "adapters.cp",
                                    "adapters.parafac", "adapters.parafac_learn",
                                    "adapters.qtensor", "adapters.qtensor_learn",
                                    "adapters.optim", "adapters.sampling", "adapters.exact"])
def test_module_all_names_exist(module):
    mod = __import__(f"tnmdp.{module}", fromlist=["__all__"])
    assert len(set(mod.__all__)) == len(mod.__all__)
    for name in mod.__all__:
        assert hasattr(mod, name), f"tnmdp.{module}.{name}"


def test_import_does_not_import_quimb():
    code = "import sys, tnmdp; tnmdp.solve(tnmdp.models.excursion(4)); print('quimb' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


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
