"""Turn README.md's Markdown tables into reStructuredText list-tables for the docs.

``write_tables(readme, outdir)`` writes ``conventions.rst`` (the table under ``## Conventions``)
and ``benchmarks.rst`` (every table under ``## Benchmarks and cost model``, each with its
``###`` heading), so the docs never drift from the README.
"""

import os
import re

__all__ = ["write_tables", "markdown_table_to_rst"]

_CODE = re.compile(r"(`[^`]+`)")


def _inline(text):
    """Markdown inline text (code spans, **bold**) as reStructuredText."""
    out = []
    for part in _CODE.split(text.replace("\\|", "|")):
        if part.startswith("`") and part.endswith("`") and len(part) > 1:
            out.append("``" + part[1:-1] + "``")
            continue
        pieces = re.split(r"(\*\*[^*]+\*\*)", part)
        for piece in pieces:
            if piece.startswith("**") and piece.endswith("**") and len(piece) > 4:
                out.append(piece)
            else:
                piece = piece.replace("\\", "\\\\").replace("*", "\\*").replace("|", "\\|")
                piece = re.sub(r"_(?=\s|$|[),.;:])", r"\\_", piece)
                out.append(piece)
    return "".join(out)


def _cells(line):
    line = line.strip().strip("|")
    return [c.strip() for c in re.split(r"(?<!\\)\|", line)]


def markdown_table_to_rst(lines):
    """A Markdown table (list of ``| a | b |`` lines, header and rule first) as a list-table."""
    header, rows = _cells(lines[0]), [_cells(line) for line in lines[2:]]
    out = [".. list-table::", "   :header-rows: 1", ""]
    for row in [header] + rows:
        row = row + [""] * (len(header) - len(row))
        for k, cell in enumerate(row):
            out.append(("   * - " if k == 0 else "     - ") + (_inline(cell) or ".."))
    return "\n".join(out).replace("- ..", "-") + "\n"


def _section(text, title):
    start = text.index("\n" + title + "\n")
    end = text.find("\n## ", start + len(title) + 2)
    return text[start:] if end < 0 else text[start:end]


def _tables(section):
    """``[(heading, table_lines)]`` of a Markdown section."""
    found, heading, current = [], None, []
    for line in section.splitlines() + [""]:
        if line.startswith("### "):
            heading = line[4:].strip()
        if line.startswith("|"):
            current.append(line)
        elif current:
            found.append((heading, current))
            current = []
    return found


def write_tables(readme, outdir):
    """Write ``conventions.rst`` and ``benchmarks.rst`` under ``outdir``."""
    with open(readme, encoding="utf-8") as fh:
        text = fh.read()
    os.makedirs(outdir, exist_ok=True)
    conventions = _tables(_section(text, "## Conventions"))
    with open(os.path.join(outdir, "conventions.rst"), "w", encoding="utf-8") as fh:
        fh.write(markdown_table_to_rst(conventions[0][1]) if conventions else "")
    parts = []
    for heading, table in _tables(_section(text, "## Benchmarks and cost model")):
        if heading:
            parts.append(_inline(heading) + "\n" + "-" * len(_inline(heading)) + "\n")
        parts.append(markdown_table_to_rst(table))
    with open(os.path.join(outdir, "benchmarks.rst"), "w", encoding="utf-8") as fh:
        fh.write("\n".join(parts))
