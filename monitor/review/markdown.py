"""The review as Markdown: the same sections and tables as the HTML, without the plots.

Cells are escaped for Markdown tables (``|``, newlines, backslashes,
and HTML-significant ``<``, ``>`` and ``&``, so a renderer shows a history
string as text, never as markup). Marked rows (a breach, a privileged or
new tool, a firing alert) are in bold.
"""

from __future__ import annotations

from monitor.review.document import sections
from monitor.review.layout import Section, Table
from monitor.review.model import Review

__all__ = ["render_markdown"]

_ESCAPES = str.maketrans(
    {
        "\\": "\\\\",
        "|": "\\|",
        "\n": " ",
        "\r": " ",
        "<": "&lt;",
        ">": "&gt;",
        "&": "&amp;",
        "*": "\\*",
        "_": "\\_",
        "`": "\\`",
        "[": "\\[",
        "]": "\\]",
    }
)


def _cell(text: str) -> str:
    return text.translate(_ESCAPES)


def _table(table: Table) -> str:
    lines = [
        "| " + " | ".join(_cell(h) for h in table.headers) + " |",
        "|" + "---|" * len(table.headers),
    ]
    for i, row in enumerate(table.rows):
        cells = [_cell(c) for c in row]
        if i in table.marked:
            cells = [f"**{c}**" if c else c for c in cells]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _section(section: Section) -> str:
    parts = ["#" * min(max(section.level, 1), 3) + " " + _cell(section.title)]
    parts += [_cell(p) for p in section.paragraphs]
    parts += [_table(t) for t in section.tables]
    if section.plots:
        names = ", ".join(p.title for p in section.plots)
        parts.append(f"Plots ({_cell(names)}): see the HTML report.")
    return "\n\n".join(parts)


def render_markdown(review: Review) -> str:
    """The review as a Markdown document."""
    return "\n\n".join(_section(s) for s in sections(review, with_plots=False)) + "\n"
