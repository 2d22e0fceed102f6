"""Reading the tables of a Markdown review back, for tests."""

from __future__ import annotations

__all__ = ["markdown_table"]


def markdown_table(md: str, heading: str) -> list[list[str]]:
    """The rows of the first table after ``heading``: cells stripped of spaces, Markdown
    escapes and bold marks; the header and its rule left out."""
    section = md[md.index(heading) :]
    rows: list[list[str]] = []
    for line in section.splitlines():
        if line.startswith("|"):
            cells = line[1:-1].split(" | ")
            rows.append(
                [c.strip().replace("\\_", "_").replace("\\|", "|").strip("*") for c in cells]
            )
        elif rows:
            break
    return rows[2:]
