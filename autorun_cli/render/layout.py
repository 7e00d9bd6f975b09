"""A table that fits the width it is drawn at without cutting a word.

Rich's ``Table`` shares out the width and then folds or crops whatever does not fit:
at 80 columns (a piped CI log) that split run IDs, event names and URLs mid-word.
:class:`FitTable` decides per width instead, in this order:

1. every column inline; ``fold`` columns wrap at spaces, never inside a word;
2. ``optional`` columns are dropped (least important first);
3. ``detach`` columns move to their own line under each row, full width, labelled;
4. ``keep`` columns beyond the first move there too (a table of long IDs at 40 columns).

``keep`` cells (IDs, statuses, times, event names) are never wrapped. A word longer
than the whole width is printed whole and runs past the edge rather than being cut:
the terminal wraps it on screen, and a piped log keeps it on one line for grep.

To add a column, say what it may give up: ``keep`` (never wrapped), ``fold`` (wraps at
spaces; ``min_width`` is the narrowest it is useful at), ``optional`` (dropped when
there is no room; ``priority``: higher is dropped later), ``detach`` (its own line).
"""

from __future__ import annotations

import re
from typing import Literal

from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, RenderResult
from rich.measure import Measurement
from rich.segment import Segment
from rich.text import Text

Kind = Literal["keep", "fold"]
Justify = Literal["left", "right"]

GAP = 2
_WORD = re.compile(r"\S+")


class Col:
    __slots__ = ("header", "kind", "justify", "style", "min_width", "optional", "priority", "label", "ratio", "comfort")

    def __init__(
        self,
        header: str,
        kind: Kind = "keep",
        *,
        justify: Justify = "left",
        style: str = "",
        min_width: int = 12,
        optional: bool = False,
        priority: int = 0,
        label: str | None = None,
        ratio: int = 1,
        comfort: int | None = None,
    ):
        self.header = header
        self.kind = kind
        self.justify = justify
        self.style = style
        self.min_width = min_width
        self.optional = optional  # dropped, not detached, when there is no room
        self.priority = priority  # the lowest gives way first
        # The label of a detached value; "" for none (a value that explains itself).
        self.label = header.lower() if label is None else label
        self.ratio = ratio  # share of the spare width among fold columns
        # A fold column that should read on one line up to this width before any
        # optional column is shown (a run's name before its trigger).
        self.comfort = comfort


def _lines(text: Text) -> list[Text]:
    return list(text.split("\n", allow_blank=True)) if "\n" in text.plain else [text]


def longest_word(text: Text) -> int:
    return max((cell_len(m.group()) for m in _WORD.finditer(text.plain)), default=0)


def natural_width(text: Text) -> int:
    return max((line.cell_len for line in _lines(text)), default=0)


def wrap_words(text: Text, width: int) -> list[Text]:
    """``text`` in lines of at most ``width`` cells, broken at spaces only.

    A word longer than ``width`` gets a line of its own, whole. Explicit newlines
    are kept.
    """
    out: list[Text] = []
    for line in _lines(text):
        if line.cell_len <= width:
            out.append(line.copy())
            continue
        plain = line.plain
        cuts: list[int] = []
        used = 0  # cells from the current line's start to the end of its last word
        end = 0
        for m in _WORD.finditer(plain):
            add = cell_len(plain[end:m.end()])
            if cuts or end:  # the line already holds a word
                if used + add > width:
                    cuts.append(m.start())
                    used = cell_len(m.group())
                else:
                    used += add
            else:
                used = add
            end = m.end()
        out.extend(line.divide(cuts) if cuts else [line.copy()])
    for piece in out:
        piece.rstrip()
    return out or [Text("")]


class FitTable:
    """Rows of cells laid out for the width at render time (see the module doc)."""

    def __init__(self, *columns: Col, title: str | None = None, show_header: bool = True, header_style: str = "bold"):
        self.columns = list(columns)
        self.title = title
        self.show_header = show_header
        self.header_style = header_style
        self.rows: list[list[Text]] = []

    def add_row(self, *cells: Text | str | None) -> None:
        row = [c if isinstance(c, Text) else Text(c or "") for c in cells]
        row += [Text("")] * (len(self.columns) - len(row))
        for col, cell in zip(self.columns, row, strict=False):
            if col.style:
                cell.stylize(col.style, 0, len(cell))
        self.rows.append(row)

    # -- layout ---------------------------------------------------------------
    def _need(self, i: int) -> tuple[int, int]:
        """(narrowest, natural) width of column ``i`` inline."""
        col = self.columns[i]
        head = cell_len(col.header) if self.show_header else 0
        natural = max([head] + [natural_width(r[i]) for r in self.rows])
        if col.kind == "keep":
            return natural, natural
        words = max([head] + [longest_word(r[i]) for r in self.rows])
        return min(natural, max(words, col.min_width)), natural

    def layout(self, width: int) -> tuple[list[int], list[int], dict[int, int]]:
        """(inline columns, detached columns, width of each inline column)."""
        needs = {i: self._need(i) for i in range(len(self.columns))}
        inline = list(range(len(self.columns)))
        detached: list[int] = []

        def narrowest() -> int:
            return sum(needs[i][0] for i in inline) + GAP * (len(inline) - 1)

        def comfortable() -> int:
            total = 0
            for i in inline:
                low, high = needs[i]
                wish = self.columns[i].comfort
                total += min(high, max(low, wish)) if wish else low
            return total + GAP * (len(inline) - 1)

        # Optional columns give way first to fold columns that want room to read well.
        for i in sorted((i for i in inline if i and self.columns[i].optional), key=lambda i: (self.columns[i].priority, -i)):
            if comfortable() <= width:
                break
            inline.remove(i)
        # Least important first: optional columns, then by priority; at equal priority
        # fold columns before keep columns, the rightmost first. Never the first column.
        order = sorted(
            (i for i in inline if i),
            key=lambda i: (not self.columns[i].optional, self.columns[i].priority, self.columns[i].kind == "keep", -i),
        )
        for i in order:
            if narrowest() <= width:
                break
            inline.remove(i)
            if not self.columns[i].optional:
                detached.append(i)
        widths = {i: needs[i][0] for i in inline}
        spare = width - narrowest()
        growable = [i for i in inline if needs[i][1] > widths[i]]
        while spare > 0 and growable:
            total_ratio = sum(self.columns[i].ratio for i in growable)
            for i in list(growable):
                share = max(1, spare * self.columns[i].ratio // total_ratio)
                add = min(share, needs[i][1] - widths[i], spare)
                widths[i] += add
                spare -= add
                if widths[i] >= needs[i][1]:
                    growable.remove(i)
                if spare <= 0:
                    break
        return inline, sorted(detached), widths

    # -- rendering ------------------------------------------------------------
    def _cell_lines(self, i: int, cell: Text, width: int) -> list[Text]:
        col = self.columns[i]
        lines = _lines(cell) if col.kind == "keep" else wrap_words(cell, width)
        out = []
        for line in lines:
            line = line.copy()
            pad = width - line.cell_len
            if pad > 0:
                if col.justify == "right":
                    line = Text(" " * pad) + line
                else:
                    line.append(" " * pad)
            out.append(line)
        return out

    def render_lines(self, console: Console, width: int) -> list[Text]:
        inline, detached, widths = self.layout(width)
        total = sum(widths[i] for i in inline) + GAP * (len(inline) - 1)
        first = widths[inline[0]] if inline else 0
        indent = first + GAP if first + GAP <= 8 else 2
        out: list[Text] = []
        if self.title:
            out.append(Text(self.title, style="bold"))
        if self.show_header:
            head = Text(style=self.header_style)
            for n, i in enumerate(inline):
                if n:
                    head.append(" " * GAP)
                h = self.columns[i].header
                pad = " " * (widths[i] - cell_len(h))
                head.append(pad + h if self.columns[i].justify == "right" else h + pad)
            out.append(_trim(head))
            out.append(Text("─" * max(total, 1)))
        for row in self.rows:
            cells = [self._cell_lines(i, row[i], widths[i]) for i in inline]
            height = max((len(c) for c in cells), default=1)
            for y in range(height):
                line = Text()
                for n, (i, c) in enumerate(zip(inline, cells, strict=True)):
                    if n:
                        line.append(" " * GAP)
                    line.append_text(c[y] if y < len(c) else Text(" " * widths[i]))
                out.append(_trim(line))
            values = []
            for i in detached:
                value = row[i]
                if value.plain.strip():
                    col = self.columns[i]
                    values.append(Text(col.label + " ", style="dim") + value if col.label else value)
            room = max(width - indent, 1)
            one = Text("  ").join(values)
            if "\n" not in one.plain and one.cell_len <= room:
                values = [one] if values else []  # short values share one line
            for value in values:
                # A word too long for the indented line may still fit unindented.
                lead = indent if longest_word(value) <= room else 0
                for piece in wrap_words(value, max(width - lead, 1)):
                    out.append(Text(" " * lead) + piece)
        return out

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        for line in self.render_lines(console, options.max_width):
            yield from line.render(console)
            yield Segment.line()

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        widths = [self._need(i) for i in range(len(self.columns))]
        gaps = GAP * max(len(widths) - 1, 0)
        return Measurement(min(widths[0][0] if widths else 1, options.max_width), min(sum(w[1] for w in widths) + gaps, options.max_width))


def _trim(line: Text) -> Text:
    line.rstrip()
    return line

