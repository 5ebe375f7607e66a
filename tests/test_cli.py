"""The command line, run as a user runs it: subprocesses, exit codes, files, no tracebacks."""

import json
import re
import subprocess
import sys

import numpy as np
import pytest

import tnmdp
from tnmdp import cli


def run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "tnmdp", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=120)


@pytest.mark.parametrize("kind", ["excursion", "bridge", "meander"])
@pytest.mark.parametrize("soft", [False, True], ids=["penalty", "soft"])
def test_demo_summary_matches_its_samples(kind, soft):
    """The share of paths satisfying the condition, recomputed from the same samples with the
    condition written out (meanders have return 0 and used to report 0.0%)."""
    T = 12
    text = cli.demo_summary(kind, T, soft=soft)
    share = float(re.search(r"1000 sampled paths: ([\d.]+)% satisfy", text).group(1))
    mdp = getattr(tnmdp.models, kind)(T, hard=soft)
    sol = tnmdp.solve(mdp, temperature=1.0 if soft else 0.0)
    x = tnmdp.sample(mdp, sol.policy, 1000, rng=0).states - T
    ok = np.ones(len(x), dtype=bool)
    if kind in ("excursion", "meander"):
        ok &= x.min(axis=1) >= 0
    if kind in ("excursion", "bridge"):
        ok &= x[:, -1] == 0
    assert share == pytest.approx(100 * ok.mean(), abs=0.05)
    assert share == 100.0  # the optimal (or conditioned) walk always satisfies the condition


def test_convert_solve_info_round_trip(tmp_path, capsys):
    """convert and info in-process (as the console script calls ``main``), solve as a process
    (the files are the only link between the steps)."""
    model, solution = tmp_path / "fl.npz", tmp_path / "sol.npz"
    assert cli.main(["convert", "gymnasium", "FrozenLake-v1", "--horizon", "30",
                     "--out", str(model)]) == 0
    assert "n_states=17" in capsys.readouterr().out
    out = run("solve", str(model), "--out", str(solution), "--json")
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    oracle = tnmdp.solve(tnmdp.from_gymnasium("FrozenLake-v1", 30)).expected_return
    assert summary["expected_return"] == oracle  # same model, same sweep: same bits
    assert (summary["n_states"], summary["n_actions"], summary["horizon"]) == (17, 4, 30)
    assert summary["policy_nbytes"] > 0 and summary["solve_seconds"] >= 0
    assert tnmdp.Solution.load(solution).expected_return == oracle
    assert cli.main(["info", str(solution), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["kind"] == "Solution" and info["expected_return"] == oracle
    assert info["n_states"] == 17 and info["reward_kind"] == "full"
    assert cli.main(["solve", str(model), "--horizon", "10", "--discount", "0.9"]) == 0
    want = tnmdp.solve(tnmdp.from_gymnasium("FrozenLake-v1", 10, discount=0.9)).expected_return
    assert f"E[G] = {want:.12g}" in capsys.readouterr().out


def test_convert_mdptoolbox_forest(tmp_path, capsys):
    from mdptoolbox.example import forest
    from mdptoolbox.mdp import FiniteHorizon

    path = tmp_path / "forest.npz"
    assert cli.main(["convert", "mdptoolbox-forest", "--states", "4", "--horizon", "8",
                     "--discount", "0.95", "--out", str(path)]) == 0
    assert "written to" in capsys.readouterr().out
    P, R = forest(S=4)
    fh = FiniteHorizon(P, R, 0.95, 8)
    fh.run()
    np.testing.assert_allclose(tnmdp.solve(tnmdp.FiniteMDP.load(path)).values, fh.V[:, 0],
                               rtol=1e-12)


def exit_of(args, capsys):
    """``(status, message)`` of a command that fails (in-process, as the console script)."""
    with pytest.raises(SystemExit) as info:
        cli.main(args)
    code = info.value.code
    if isinstance(code, str):  # SystemExit(message): Python prints it and exits with 1
        return 1, code
    return code, capsys.readouterr().err


@pytest.mark.parametrize("args, code, message", [
    (["solve", "missing.npz"], 1, "tnmdp solve: error: no such file: missing.npz"),
    (["convert", "gymnasium", "Blackjack-v1", "--horizon", "5", "--out", "x.npz"], 1,
     "tnmdp convert: error: env.observation_space is Tuple"),
    (["convert", "gymnasium", "NoSuchEnv-v0", "--horizon", "5", "--out", "x.npz"], 1,
     "tnmdp convert: error: NameNotFound"),
    (["convert", "gymnasium", "--out", "x.npz"], 1, "gymnasium needs an env id"),
    (["convert", "mdptoolbox-forest", "--out", "x.npz"], 1, "needs --horizon"),
    (["convert", "gymnasium", "FrozenLake-v1", "--make", "=1", "--out", "x.npz"], 1,
     "--make takes KEY=VALUE"),
    (["solve"], 2, "the following arguments are required: MODEL.npz"),
    (["demo", "-T", "0"], 1, "--horizon must be >= 1, got 0"),
    (["bench", "--quick"], 1, "tnmdp bench: removed"),
])
def test_errors(tmp_path, monkeypatch, capsys, args, code, message):
    monkeypatch.chdir(tmp_path)
    status, text = exit_of(args, capsys)
    assert status == code and message in text


def test_error_as_a_process_is_one_line_without_traceback(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"PK\x03\x04 truncated")
    out = run("info", str(bad))
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert out.stderr.strip().count("\n") == 0
    assert "tnmdp info: error:" in out.stderr and "is not a readable .npz file" in out.stderr


def test_help_lists_the_commands(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for command in ("demo", "solve", "convert", "info"):
        assert command in out
    with pytest.raises(SystemExit) as info:
        cli.main(["solve", "--help"])
    assert info.value.code == 0 and "--horizon" in capsys.readouterr().out


def test_bench_never_imports_the_working_directory(tmp_path):
    """A `benchmarks` package in the working directory is never run."""
    (tmp_path / "benchmarks").mkdir()
    (tmp_path / "benchmarks" / "__init__.py").write_text("")
    (tmp_path / "benchmarks" / "__main__.py").write_text(
        "open('pwned', 'w').write('x')\ndef main(argv):\n    return 0\n")
    out = run("bench", cwd=tmp_path)
    assert out.returncode == 1
    assert not (tmp_path / "pwned").exists()


def test_info_and_solve_of_continuing_and_time_dependent_models(tmp_path, capsys):
    rng = np.random.default_rng(3)
    P, R = rng.dirichlet(np.ones(4), size=(4, 2)), rng.normal(size=(4, 2))
    continuing = tmp_path / "continuing.npz"
    tnmdp.FiniteMDP(P, R, None, 0, discount=0.9).save(continuing)
    assert cli.main(["info", str(continuing), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["horizon"] is None and info["n_states"] == 4
    # a finite horizon over a continuing model's stationary data: the T-step problem
    assert cli.main(["solve", str(continuing), "--horizon", "6", "--json"]) == 0
    want = tnmdp.solve(tnmdp.FiniteMDP(P, R, 6, 0, discount=0.9)).expected_return
    assert json.loads(capsys.readouterr().out)["expected_return"] == want
    timed = tmp_path / "timed.npz"
    tnmdp.FiniteMDP(P, rng.normal(size=(3, 4, 2, 4)), 3, 0).save(timed)
    status, text = exit_of(["solve", str(timed), "--horizon", "5"], capsys)
    assert status == 1 and "the model is time-dependent (horizon 3)" in text
