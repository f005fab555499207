"""Tables as text: Markdown for the reports, aligned columns for the terminal.

Every report (Table 1, the ablation, the claims, the rehearsal) and every printed table (preflight)
goes through these two functions, so escaping and alignment are decided once.
"""

from __future__ import annotations

from collections.abc import Sequence

_RULES = {"l": "---", "r": "--:", "c": ":-:"}


def markdown(head: Sequence[str], rows: Sequence[Sequence[object]], align: str | None = None) -> list[str]:
    """A Markdown table as lines. align: one letter per column, l (text), r (numbers) or c; default all l.

    A `|` inside a cell is escaped, so a cell never splits into two columns.
    """
    align = align or "l" * len(head)
    if len(align) != len(head):
        raise ValueError(f"align has {len(align)} letters for {len(head)} columns")
    cell = lambda value: str(value).replace("|", "\\|")  # noqa: E731
    return [
        "| " + " | ".join(map(cell, head)) + " |",
        "|" + "|".join(_RULES[a] for a in align) + "|",
        *["| " + " | ".join(map(cell, row)) + " |" for row in rows],
    ]


def aligned(head: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain-text table for the terminal: columns padded to their widest cell, a dashed rule under the head."""
    widths = [max(len(str(row[i])) for row in [head, *rows]) for i in range(len(head))]

    def line(cells) -> str:
        return "  ".join(str(c).ljust(w) for c, w in zip(cells, widths)).rstrip()

    return "\n".join([line(head), line("-" * w for w in widths), *map(line, rows)])
