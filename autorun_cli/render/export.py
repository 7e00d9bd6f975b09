"""The human view of runs saved as SVG or HTML with Rich's own export (CI artifacts)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from autorun_cli.model import Run

WIDTH = 120


def export_runs(runs: list[Run], *, svg: Path | None = None, html: Path | None = None, title: str = "autorun") -> list[Path]:
    """Render ``runs`` as ``show`` does (ISO times: an artifact outlives "3m ago")
    on a recording console, then write each file asked for. Returns the paths."""
    from rich.console import Console
    from rich.rule import Rule

    from autorun_cli.errors import UsageError
    from autorun_cli.render import run_view

    # force_terminal: record the styles, so the export has colour even from CI.
    console = Console(record=True, file=io.StringIO(), width=WIDTH, force_terminal=True, color_system="truecolor", highlight=False, emoji=False, markup=False)
    for i, run in enumerate(runs):
        if i:
            console.print(Rule(style="dim"))
        console.print(run_view(run, "iso"))
    written: list[Path] = []
    for path, save in ((svg, "svg"), (html, "html")):
        if path is None:
            continue
        try:
            if save == "svg":
                console.save_svg(str(path), title=title, clear=False)
            else:
                console.save_html(str(path), clear=False)
        except OSError as exc:
            raise UsageError(
                f"cannot write {path}: {exc.strerror or exc}",
                hint="check that the folder exists and is writable",
            ) from None
        written.append(path)
    return written
