"""Figures and tables as text, one way each: Markdown for the report's files, aligned columns for the console."""


def figure(value, spec=".4f"):
    """A figure as text; '-' where it does not apply. A value that rounds to zero reads as zero, never '-0.0000'."""
    if value is None:
        return "-"
    text = format(value, spec)
    return format(0.0, spec) if text.startswith("-") and not text.strip("-+0.") else text


def targets_named(ids):
    """'target 3', or 'targets 1, 3' for several."""
    return f"target{'s' if len(ids) > 1 else ''} {', '.join(map(str, ids))}"


def markdown_table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def aligned_table(header, rows):
    """Columns two spaces apart, each cell starting under its header."""
    lines = [[str(cell) for cell in row] for row in (header, *rows)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip() for line in lines)
