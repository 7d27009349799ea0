"""Where each bar came from, so that errors quote rows as the user sees them.

``read_bar_file`` adds two columns, ``file`` (the path as given) and ``line`` (the 1-based
line of a CSV, counting the header as line 1; the 1-based row of a Parquet file). Errors then
say "line 57" instead of a 0-based position in a sorted frame, and "a.csv line 5" when a
frame concatenates several files. Frames without these columns fall back to 0-based
positions.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import groupby
from pathlib import PurePath

import polars as pl

from factory.data.errors import MAX_EXAMPLES, QualityFailure, rows_fail

PROVENANCE_COLUMNS: tuple[str, ...] = ("file", "line")
CSV_SUFFIXES: tuple[str, ...] = (".csv", ".txt")
ROW_NUMBER_NOTE = "row numbers are 0-based positions in the frame as given"
FRAME = "frame"
"""What rows without provenance are quoted as, in a frame that mixes both ("frame row 3")."""


def row_word(file: str) -> str:
    """Say how a file's rows are numbered: ``"line"`` for CSV, ``"row"`` otherwise."""
    return "line" if PurePath(file).suffix.lower() in CSV_SUFFIXES else "row"


def _phrase(word: str, numbers: Sequence[int]) -> str:
    """``"line 3"`` or ``"lines 3, 5"``."""
    return f"{word}{'s' if len(numbers) > 1 else ''} {', '.join(map(str, numbers))}"


class Locator:
    """Names rows of one frame the way the user sees them.

    Parameters
    ----------
    frame
        The frame whose 0-based positions will be named; its ``file``/``line`` columns are
        used when present (``line`` alone means lines of ``source``).
    source
        The file or label errors are about.
    """

    def __init__(self, frame: pl.DataFrame, source: str) -> None:
        self.source = source
        self._lines = frame["line"] if "line" in frame.columns else None
        self._files = frame["file"] if "file" in frame.columns else None

    @property
    def has_provenance(self) -> bool:
        """Whether rows are named by file and line rather than by position."""
        return self._lines is not None

    def where(self, positions: Sequence[int]) -> str:
        """Phrase up to ``MAX_EXAMPLES`` of ``positions`` (0-based) for a message.

        Returns ``"rows 3, 5"`` without provenance, ``"lines 3, 5"`` when every example
        comes from ``source`` itself, else ``"a.csv line 5; b.parquet rows 1, 2"``.
        """
        if not len(positions):
            return ""
        if self._lines is None:
            return _phrase("row", sorted(positions)[:MAX_EXAMPLES])
        index = pl.Series(list(positions), dtype=pl.Int64)
        files = self._files.gather(index) if self._files is not None else pl.lit(self.source)
        known = pl.col("file").is_not_null() & pl.col("line").is_not_null()
        located = (
            pl.DataFrame({"line": self._lines.gather(index), "position": index})
            .with_columns(file=files)
            .select(  # rows without provenance are named by frame position
                pl.when(known).then("file").otherwise(pl.lit(FRAME)).alias("file"),
                pl.when(known).then("line").otherwise("position").alias("number"),
            )
            .sort("file", "number")
            .head(MAX_EXAMPLES)
            .rows()
        )
        groups = [(f, [n for _, n in g]) for f, g in groupby(located, key=lambda item: item[0])]
        parts = [_phrase(row_word(file), numbers) for file, numbers in groups]
        if len(groups) == 1 and groups[0][0] == self.source:
            return parts[0]
        return "; ".join(f"{file} {part}" for (file, _), part in zip(groups, parts, strict=True))

    def failure(
        self, column: str, positions: Sequence[int], rule: str, detail: str = ""
    ) -> QualityFailure:
        """Describe ``positions`` failing ``rule`` in ``column``, with an optional detail."""
        problem = rows_fail(len(positions), rule, where=self.where(positions))
        return QualityFailure(self.source, column, len(positions), problem + detail)

    def note(self) -> str:
        """Say how row numbers in messages count (for a preamble)."""
        if self._lines is None:
            return ROW_NUMBER_NOTE
        files = self._files.drop_nulls().unique().to_list() if self._files is not None else []
        words = {row_word(f) for f in files or [self.source]}
        notes = {"line": "line numbers count the header as line 1", "row": "rows count from 1"}
        return "; ".join(notes[w] for w in sorted(words))
