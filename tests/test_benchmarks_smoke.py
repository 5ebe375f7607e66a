"""Smoke test of the benchmark suite (``--quick``): it runs and writes its results.

No timing is asserted (speed lives in the benchmarks themselves); only that every strategy
returns the optimal policy and the files appear.
"""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

benchmarks = pytest.importorskip("benchmarks")
pytest.importorskip("matplotlib")


def test_peers_agree_with_reference():
    import tnmdp
    from benchmarks import peers

    mdp = tnmdp.models.excursion(30)
    ref = tnmdp.reference.backward_induction(mdp)
    actions, values = peers.csr_backward_induction(*peers.csr_inputs(mdp))
    np.testing.assert_array_equal(actions, ref.policy.actions)
    np.testing.assert_allclose(values, ref.values, rtol=0, atol=1e-12)
    actions, values = peers.numpy_backward_induction(*peers.dense_inputs(mdp))
    np.testing.assert_array_equal(actions, ref.policy.actions)
    pytest.importorskip("mdptoolbox")
    actions, values = peers.mdptoolbox_finite_horizon(*peers.mdptoolbox_inputs(mdp))
    np.testing.assert_array_equal(actions, ref.policy.actions)


def test_full_contraction_strategy_is_optimal():
    pytest.importorskip("quimb")
    import tnmdp
    from benchmarks.strategies import full_contraction_sweep

    mdp = tnmdp.models.excursion(4)
    out = full_contraction_sweep(mdp, "greedy")
    assert out["expected_return"] == pytest.approx(
        tnmdp.reference.backward_induction(mdp).expected_return, abs=1e-12)
    assert out["flops"] > 0 and out["largest_intermediate"] >= 1


@pytest.mark.slow
def test_quick_suite_writes_results(capsys, monkeypatch):
    from benchmarks.__main__ import main

    # pinned already: main then runs in this process instead of re-launching itself
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "1")
    monkeypatch.setenv("QUIMB_NUM_THREAD_WORKERS", "1")
    assert main(["--quick", "--repeats", "1"]) == 0
    for name in ("sweep_vs_dp_quick", "strategies_quick"):
        path = ROOT / "benchmarks" / "results" / f"{name}.json"
        data = json.loads(path.read_text())
        assert "machine" in data
        assert (ROOT / "benchmarks" / "results" / f"{name}.png").exists()
    assert "ratio" in capsys.readouterr().out


def test_sparse_bandwidth_peer_agrees_with_csr_dp():
    import tnmdp
    from benchmarks import peers
    from benchmarks.sparse_bandwidth import csr_backward_induction_maximum, streaming_bandwidth
    from benchmarks.strategies import random_sparse_mdp

    mdp = random_sparse_mdp(300, 4, 7, nnz_per_row=8)
    args = peers.csr_inputs(mdp)
    want_actions, want_values = peers.csr_backward_induction(*args)
    actions, values = csr_backward_induction_maximum(*args)
    np.testing.assert_array_equal(actions, want_actions)
    np.testing.assert_array_equal(values, want_values)
    ref = tnmdp.reference.backward_induction(mdp)
    np.testing.assert_allclose(values, ref.values, rtol=0, atol=1e-12)
    assert streaming_bandwidth(2**20, repeats=1) > 0
