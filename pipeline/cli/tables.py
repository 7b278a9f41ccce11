"""Tables on the command line: rich tables on a terminal, plain aligned columns when the
output goes to a pipe or file (never wrapped or cut, so grep and scripts see whole
lines). Widths count terminal cells, so Chinese titles line up too."""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

import click
from rich.cells import cell_len

GAP = "  "
_BREAKS = re.compile(r"[\t\n\r\v\f\x1c-\x1e\x85\u2028\u2029]+")
_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def one_line(text: str) -> str:
    """Text from elsewhere (a server's reason, a title) as one line that cannot drive the
    terminal: line breaks and tabs become a space, other control characters (an escape
    sequence a server echoed) the replacement character."""
    return _CONTROLS.sub("\ufffd", _BREAKS.sub(" ", text))


@dataclass
class Section:
    """A titled table; ``wide`` columns are cut with an ellipsis on a terminal, so the
    whole status fits one screen (the full text is in the plain and JSON forms)."""

    title: str
    header: tuple[str, ...]
    rows: list[tuple[str, ...]] = field(default_factory=list)
    empty: str = "none"
    wide: tuple[str, ...] = ()
    notes: list[str] = field(default_factory=list)  # lines under the table


def aligned(rows: Sequence[Sequence[str]]) -> list[str]:
    """Each row as one line, columns padded to the widest cell (the last one unpadded),
    two spaces apart; line breaks inside a cell become spaces."""
    cells = [[one_line(str(c)) for c in row] for row in rows]
    widths: list[int] = []
    for row in cells:
        for index, cell in enumerate(row[:-1]):
            if index == len(widths):
                widths.append(0)
            widths[index] = max(widths[index], cell_len(cell))
    lines = []
    for row in cells:
        padded = [cell + " " * (widths[i] - cell_len(cell)) for i, cell in enumerate(row[:-1])]
        lines.append(GAP.join([*padded, *row[-1:]]).rstrip())
    return lines


def on_terminal() -> bool:
    return sys.stdout.isatty()


def show(sections: Sequence[Section], heading: str, *, terminal: bool | None = None) -> None:
    """Print the sections: rich tables on a terminal, else plain aligned text."""
    if terminal if terminal is not None else on_terminal():
        _rich(sections, heading)
        return
    out = [heading]
    for section in sections:
        out += ["", section.title]
        if section.rows:
            out += [GAP + line for line in aligned([section.header, *section.rows])]
        else:
            out.append(f"{GAP}{section.empty}")
        out += [GAP + one_line(note) for note in section.notes]
    click.echo("\n".join(out))


def _rich(sections: Sequence[Section], heading: str) -> None:
    from rich import box
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console(highlight=False)
    console.print(Text(heading, style="bold"))
    for section in sections:
        console.print()
        if not section.rows:
            console.print(Text(f"{section.title}: {section.empty}", style="bold"))
        else:
            table = Table(
                title=section.title,
                title_justify="left",
                title_style="bold",
                box=box.SIMPLE_HEAD,
                pad_edge=False,
            )
            for name in section.header:
                table.add_column(name, overflow="fold")
            wide = [name in section.wide for name in section.header]
            for row in section.rows:
                # Free text (a server's reason) stays on one line, cut with an ellipsis,
                # so that one long reason does not push the rest off the screen; being
                # the widest, its column is the first to give way. Other columns wrap.
                table.add_row(
                    *(
                        Text(one_line(cell), no_wrap=cut, overflow="ellipsis" if cut else "fold")
                        for cell, cut in zip(row, wide, strict=True)
                    )
                )
            console.print(table)
        for note in section.notes:
            console.print(Text(one_line(note), style="dim"))
