"""How the research commands show their work: a progress bar while it runs, tables of the results, the error
of a strategy that failed. rich is imported only when something is shown (``--json`` prints without it)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from rich.table import Table

T = TypeVar("T")
#: What a long run calls as it goes: (done, total).
Progress = Callable[[int, int], None]


@contextlib.contextmanager
def progress_bar(
    label: str, total: int | None, *, unit: str | None = None, completed: int = 0, note: bool = False
) -> Iterator[Callable[..., None]]:
    """A progress bar that is gone when the work is done; yields ``update(done, total=None, note="")``.
    With ``unit``, the counts in that unit and the time left; else done/total and the time taken. With
    ``note``, a text after the bar (``update``'s ``note``)."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        ProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.progress import Progress as Bar

    columns: list[ProgressColumn] = [TextColumn(label), BarColumn()]
    if unit is not None:
        columns += [TextColumn(f"{{task.completed:,}}/{{task.total:,}} {unit}"), TimeRemainingColumn()]
    else:
        columns += [MofNCompleteColumn(), TimeElapsedColumn()]
    if note:
        columns.append(TextColumn("{task.fields[note]}"))
    with Bar(*columns, transient=True) as bar:
        task = bar.add_task(label, total=total, completed=completed, note="")

        def update(done: int, total: int | None = None, note: str = "") -> None:
            bar.update(task, completed=done, total=total, note=note)

        yield update


def with_progress(
    go: Callable[[Progress | None], T], label: str, total: int | None, *, shown: bool, unit: str | None = None
) -> T:
    """``go(progress)`` under a progress bar (``progress_bar``) when ``shown``, else ``go(None)``."""
    if not shown:
        return go(None)
    with progress_bar(label, total, unit=unit) as update:
        return go(lambda done, total: update(done, total))


def facts(title: str, rows: Iterable[tuple[str, str]]) -> Table:
    """A table of label and value, without a header."""
    from rich.table import Table

    t = Table(title=title, show_header=False, min_width=len(title))  # (a title wider than the rows: one line)
    for label, value in rows:
        t.add_row(label, value)
    return t


def listing(title: str, columns: Sequence[str]) -> Table:
    """A table without edges, two spaces between its right-aligned columns (six of them fit in 80)."""
    from rich import box
    from rich.table import Table

    t = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False, collapse_padding=True)
    for col in columns:
        t.add_column(col, justify="right", no_wrap=True)
    return t


def table(title: str, columns: Sequence[str]) -> Table:
    """A table with a header, its columns right-aligned (numbers, mostly)."""
    from rich.table import Table

    t = Table(title=title)
    for col in columns:
        t.add_column(col, justify="right")
    return t


def metric_cells(metrics: dict[str, Any]) -> list[str]:
    """Return %, max drawdown % and Sharpe ratio of a run, as the tables of sweeps and studies show them."""
    return [
        f"{metrics.get('return_pct', 0):+.2f}",
        f"{metrics.get('max_drawdown_pct', 0):.2f}",
        f"{metrics.get('sharpe', 0):.2f}",
    ]


def equity_rows(s: dict[str, Any]) -> list[tuple[str, str]]:
    """Final equity, return and max drawdown of a backtest's summary, as its table shows them."""
    return [
        ("final equity", f"{s['final_equity']:,.2f}"),
        ("return", f"{s['return_pct']:+.2f} %"),
        ("max drawdown", f"{s['max_drawdown_pct']:.2f} %"),
    ]


def failed(error: str) -> None:
    """A strategy's failure, alone on stderr: no metrics of a run that did not finish."""
    from rich.console import Console

    Console(stderr=True).print(f"[bold red]The strategy failed:[/] {error}", highlight=False, soft_wrap=True)
