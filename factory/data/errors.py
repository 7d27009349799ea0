"""The error raised for bad input data, and how its messages are phrased.

``schema`` re-exports everything here; import from there.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

MAX_EXAMPLES = 5
"""How many offending row numbers an error message quotes."""

WHOLE_FILE = "*"
"""The column of a failure about the whole file (empty, unreadable); not printed."""


@dataclass(frozen=True)
class QualityFailure:
    """One failed check: which file, which column(s), how many rows and what went wrong.

    Parameters
    ----------
    source
        The file or label the data came from.
    column
        The column (or comma-separated columns) the check is about.
    rows
        Number of offending rows.
    problem
        What is wrong, e.g. ``"3 rows fail 'high >= low' (e.g. lines 10, 11, 57)"``.
    """

    source: str
    column: str
    rows: int
    problem: str

    def describe(self) -> str:
        """Return the one-line, human-readable description of this failure."""
        if self.column == WHOLE_FILE:
            return f"{self.source}: {self.problem}"
        return f"{self.source}: column '{self.column}': {self.problem}"


def rows_fail(rows: int, rule: str, examples: Sequence[int] = (), *, where: str = "") -> str:
    """Phrase "N rows fail 'rule' (e.g. rows a, b, c)".

    Parameters
    ----------
    rows
        Number of offending rows.
    rule
        The rule they break.
    examples
        0-based positions; at most ``MAX_EXAMPLES`` are quoted. Ignored when ``where`` is given.
    where
        Rows already phrased as the user sees them (``"lines 3, 5"``), see ``provenance``.
    """
    noun = "row fails" if rows == 1 else "rows fail"
    text = f"{rows} {noun} '{rule}'"
    if not where:
        shown = [str(i) for i in list(examples)[:MAX_EXAMPLES]]
        where = f"{'row' if len(shown) == 1 else 'rows'} {', '.join(shown)}" if shown else ""
    return f"{text} (e.g. {where})" if where else text


class DataQualityError(ValueError):
    """Bad input data, named down to the file, the column and the offending rows.

    Parameters
    ----------
    failures
        Every failed check, in the order they were checked; at least one.
    preamble
        Optional first line put before the per-failure lines.

    Attributes
    ----------
    source, column, rows
        File/label, column(s) and offending-row count of the first failure.
    failures
        All failures.
    preamble
        The preamble given, if any.
    """

    def __init__(self, failures: Sequence[QualityFailure], preamble: str = "") -> None:
        if not failures:
            raise ValueError("DataQualityError needs at least one failure")
        self.failures = tuple(failures)
        first = self.failures[0]
        self.source = first.source
        self.column = first.column
        self.rows = first.rows
        self.preamble = preamble
        lines = [f.describe() for f in self.failures]
        if len(lines) > 1 and not preamble:
            preamble = f"{first.source}: {len(lines)} problems:"
        if preamble:
            lines = [preamble, *(f"  - {line}" for line in lines)]
        super().__init__("\n".join(lines))

    def __reduce__(self) -> tuple[type[DataQualityError], tuple[tuple[QualityFailure, ...], str]]:
        """Pickle by failures, so the error survives process pools and task runners."""
        return DataQualityError, (self.failures, self.preamble)


def refuse(source: str, column: str, rows: int, problem: str) -> DataQualityError:
    """Build the error for one failure (``raise refuse(...)``)."""
    return DataQualityError([QualityFailure(source, column, rows, problem)])
