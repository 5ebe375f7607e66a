"""The documentation: built warning-free by Sphinx, and its code examples run."""

import pathlib
import re
import subprocess
import sys

import pytest

DOCS = pathlib.Path(__file__).resolve().parents[1] / "docs"
sys.path.insert(0, str(DOCS))

from _readme_tables import markdown_table_to_rst  # noqa: E402


@pytest.mark.slow  # ~7 s: a whole Sphinx build with autodoc of every module (CI runs it)
def test_sphinx_builds_without_warnings(tmp_path):
    pytest.importorskip("sphinx")
    pytest.importorskip("numpydoc")
    out = subprocess.run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-b", "html",
                          "-q", str(DOCS), str(tmp_path / "html")],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    api = (tmp_path / "html" / "api.html").read_text()
    for name in ("from_gymnasium", "FiniteMDP", "value_function", "policy_values", "solve"):
        assert name in api, name
    bench = (tmp_path / "html" / "benchmarks.html").read_text()
    assert bench.count("<tr") >= 5  # the README's benchmark tables came through


def _code_blocks(page):
    text = (DOCS / page).read_text()
    blocks = re.findall(r"\.\. code-block:: python\n\n((?:   .*\n|\n)+)", text)
    return ["\n".join(line[3:] for line in block.splitlines()) for block in blocks]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("page", ["getting_started_physics.rst", "getting_started_rl.rst",
                                  "files_and_cli.rst"])
def test_examples_run(page):
    """Each page's Python blocks run in order in one namespace (their asserts are checks)."""
    blocks = _code_blocks(page)
    assert blocks
    namespace = {}
    for block in blocks:
        exec(compile(block, page, "exec"), namespace)


def test_markdown_table_conversion():
    table = ["| a | `b*c` |", "|---|---|", "| **1** | x \\| y_ |"]
    rst = markdown_table_to_rst(table)
    assert "   * - a\n     - ``b*c``" in rst
    assert "   * - **1**\n     - x \\| y\\_" in rst
