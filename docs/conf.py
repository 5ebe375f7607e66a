"""Sphinx configuration of the tnmdp documentation (numpydoc + autodoc).

Build: ``sphinx-build -W -b html docs docs/_build/html`` (``pip install -e ".[docs]"``);
``tests/test_docs.py`` builds it warning-free. The conventions and benchmark tables are read
from README.md at build time (one source of truth) by :mod:`_readme_tables`.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(__file__))

from _readme_tables import write_tables  # noqa: E402

project = "tnmdp"
author = "tnmdp developers"
copyright = "2026, tnmdp developers"

extensions = ["sphinx.ext.autodoc", "numpydoc"]
autodoc_default_options = {"members": True, "member-order": "bysource"}
autodoc_typehints = "none"
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False
exclude_patterns = ["_build", "_generated"]
templates_path = []
html_theme = "alabaster"
html_static_path = []

write_tables(os.path.join(os.path.dirname(__file__), "..", "README.md"),
             os.path.join(os.path.dirname(__file__), "_generated"))
