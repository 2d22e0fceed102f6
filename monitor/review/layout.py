"""The review's layout: sections of paragraphs, tables and plots, the same for either format."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Plot", "Section", "Table"]


@dataclass(frozen=True, slots=True)
class Table:
    """A table: headers, rows of plain-text cells, and which rows are marked."""

    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    marked: frozenset[int] = frozenset()


@dataclass(frozen=True, slots=True)
class Plot:
    """An inline SVG plot and what it shows."""

    name: str
    title: str
    svg: str


@dataclass(frozen=True, slots=True)
class Section:
    """A heading (level 1 to 3) with its paragraphs, tables and plots, in that order."""

    title: str
    level: int
    paragraphs: tuple[str, ...] = ()
    tables: tuple[Table, ...] = ()
    plots: tuple[Plot, ...] = field(default=())
