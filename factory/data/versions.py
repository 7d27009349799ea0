"""Which Delta versions of the bars table change what a read returns.

Ingests (and replay releases) append rows: they change the data. Maintenance (``OPTIMIZE``,
``VACUUM``) rewrites or deletes files without changing any row, and the cold-tier migration's
``DELETE`` removes from the warm table only rows it first copied to the cold one, so reads
through the tiers return the same rows. A factory run therefore records the *data version*:
the latest version that changed the rows, so weekly maintenance never makes every config look
untrained. A read of version ``v`` uses the newest version with the same rows (the one just
before the next data change), whose files vacuum keeps while it is current and for the
retention after it is superseded.
"""

from __future__ import annotations

from deltalake import DeltaTable

SAME_ROWS = frozenset({"OPTIMIZE", "VACUUM START", "VACUUM END", "DELETE"})
"""Delta operations on the bars table that leave every read's rows unchanged."""


def _commits(uri: str, options: dict[str, str] | None) -> list[tuple[int, str]]:
    """``(version, operation)`` of every commit, oldest first."""
    # The latest table's history: deltalake 1.6 numbers a time-travelled table's wrongly.
    history = DeltaTable(uri, storage_options=options).history()
    return sorted((int(c["version"]), str(c.get("operation", ""))) for c in history)


def data_version(uri: str, options: dict[str, str] | None) -> int:
    """The latest version whose commit changed the rows (the first version at least)."""
    commits = _commits(uri, options)
    changing = [v for v, operation in commits if operation not in SAME_ROWS]
    return max(changing, default=commits[0][0])


def readable_version(uri: str, options: dict[str, str] | None, version: int) -> int:
    """The newest version whose rows equal those of ``version``."""
    commits = _commits(uri, options)
    later_changes = [v for v, operation in commits if v > version and operation not in SAME_ROWS]
    return min(later_changes) - 1 if later_changes else commits[-1][0]
