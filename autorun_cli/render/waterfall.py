"""The waterfall column of ``show``'s step timeline: each step's start and duration as
a bar on the run's shared time axis.

A long wait would flatten everything else to nothing on a linear axis, so a stretch
of time much longer than the run's typical stretch (more than :data:`COMPRESS_OVER`
times the median) is compressed: it gets a fixed share of the axis, and a step that
spans it is drawn as a broken bar (``╱╱``) with its real duration written on it.
Pure: the run and a width in, Text out.
"""

from __future__ import annotations

import bisect
from datetime import UTC, datetime, timedelta

from rich.text import Text

from autorun_cli.model import Run, Step
from autorun_cli.timeutil import human_duration, parse_ts

# A stretch of the axis longer than this many times the median stretch is compressed.
COMPRESS_OVER = 8
# Colour of a step's bar, by status.
BAR_STYLE = {
    "completed": "green", "failed": "red", "timed_out": "red", "cancelled": "magenta",
    "running": "cyan", "waiting": "yellow", "pending": "dim", "skipped": "dim",
}
OPEN = frozenset({"running", "waiting", "pending"})


class Waterfall:
    """The time axis of one run and each step's span on it (seconds from the start)."""

    def __init__(self, run: Run, now: datetime | None = None):
        starts = [parse_ts(s.started_at) for s in run.steps]
        known = [t for t in starts if t is not None]
        t0 = parse_ts(run.started_at) or (min(known) if known else None)
        self.spans: list[tuple[float, float, bool] | None] = []  # (start, end, still open)
        if t0 is None or not known:
            self.total = 0.0
            self.cuts: list[float] = []
            self.weights: list[float] = []
            self.compressed: list[bool] = []
            return
        t0 = min([t0, *known])
        now_dt = now or datetime.now(UTC)
        run_end = parse_ts(run.finished_at)
        for step, start in zip(run.steps, starts, strict=True):
            if start is None:
                self.spans.append(None)
                continue
            end = parse_ts(step.finished_at)
            if end is None and step.duration_ms is not None:
                end = start + timedelta(milliseconds=step.duration_ms)
            is_open = end is None and step.status in OPEN
            if end is None:
                end = (run_end or now_dt) if is_open else start
            self.spans.append(((start - t0).total_seconds(), max((end - t0).total_seconds(), (start - t0).total_seconds()), is_open))
        ends = [s[1] for s in self.spans if s is not None]
        self.total = max([*ends, (run_end - t0).total_seconds() if run_end else 0.0, 0.0])
        # The axis in stretches between consecutive step boundaries.
        points = sorted({0.0, self.total, *(p for s in self.spans if s is not None for p in s[:2])})
        lengths = [b - a for a, b in zip(points, points[1:], strict=False)]
        self.cuts = points
        nonzero = sorted(x for x in lengths if x > 0)
        cap = COMPRESS_OVER * nonzero[len(nonzero) // 2] if len(nonzero) > 1 else float("inf")
        self.compressed = [x > cap for x in lengths]
        self.weights = [min(x, cap) for x in lengths]

    @property
    def drawable(self) -> bool:
        return any(s is not None for s in self.spans)

    def _pos(self, t: float, width: int) -> float:
        """Where second ``t`` falls on an axis ``width`` cells wide (0..width)."""
        whole = sum(self.weights)
        if whole <= 0:
            return 0.0
        i = bisect.bisect_right(self.cuts, t) - 1
        i = max(0, min(i, len(self.weights) - 1))
        done = sum(self.weights[:i])
        length = self.cuts[i + 1] - self.cuts[i] if i + 1 < len(self.cuts) else 0.0
        part = self.weights[i] * ((t - self.cuts[i]) / length) if length > 0 else 0.0
        return width * (done + part) / whole

    def header(self, width: int) -> str:
        """``0`` at the left edge, the run's total time at the right, as wide as the bars."""
        right = human_duration(int(round(self.total * 1000))) if self.total else ""
        return "0" + " " * max(width - 1 - len(right), 1) + right

    def bar(self, index: int, step: Step, width: int) -> Text:
        span = self.spans[index] if index < len(self.spans) else None
        out = Text()
        if span is None or width < 2:
            return out
        start, end, is_open = span
        style = BAR_STYLE.get(step.status, "")
        a = min(int(self._pos(start, width)), width - 1)
        b = min(max(int(round(self._pos(end, width))), a + 1), width) if end > start else a + 1
        if end <= start and not is_open:
            # An instant: a tick where it happened.
            return Text(" " * a + "▏", style=style)
        cells = ["█"] * (b - a)
        # The compressed stretches inside this span: break marks, and the real duration.
        broken = [i for i, c in enumerate(self.compressed) if c and self.cuts[i] >= start and self.cuts[i + 1] <= end]
        if broken:
            mid = int((self._pos(self.cuts[broken[0]], width) + self._pos(self.cuts[broken[-1] + 1], width)) / 2) - a
            took = human_duration(int(round((end - start) * 1000)))
            for label in (f"╱ {took} ╱", f"╱{took}╱", "╱╱", "╱"):
                if len(label) + 2 <= len(cells) or label == "╱":
                    break
            if len(label) + 2 <= len(cells) or len(cells) >= 3:
                left = max(1, min(mid - len(label) // 2, len(cells) - len(label) - 1))
                cells[left:left + len(label)] = list(label)
        if is_open:
            cells[-1] = "▶"
        out.append(" " * a)
        out.append("".join(cells), style=style)
        return out
