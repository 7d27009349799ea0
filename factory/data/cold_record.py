"""Where a lake's cold tier is, recorded in the lake itself.

Once bars have moved to a cold tier, reading the lake without it would silently miss them. So
the first migration writes the cold root to ``<lake>/cold_tier.json``, and every later
`Lake` on that root reads through it whatever the environment says; a ``FACTORY_COLD_URI``
that names another place is refused rather than obeyed. (Object-store lake roots keep no
record: they rely on the environment.)
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

RECORD = "cold_tier.json"


class ColdTierMismatchError(ValueError):
    """The environment names a cold tier other than the one the lake's bars moved to."""


def _record_path(root: str) -> Path | None:
    return None if "://" in root else Path(root) / RECORD


def recorded_cold_root(root: str) -> str | None:
    """The cold root recorded for the lake at ``root``, if any (a relative record is read
    against the lake root, so a copied home finds its own copy of the archive)."""
    path = _record_path(root)
    if path is None or not path.exists():
        return None
    recorded = str(json.loads(path.read_text())["cold_root"])
    if "://" in recorded or Path(recorded).is_absolute():
        return recorded
    return str((Path(root) / recorded).resolve())


def copy_cold_tier(root: str, copy_root: str) -> str | None:
    """Give the lake copied to ``copy_root`` its own copy of a local cold tier.

    The archive goes beside the copied lake (``<copy_root>/../cold``) and the copy records it
    relative to itself. A cold tier on an object store is shared: the copy keeps its record.

    Returns
    -------
    str or None
        Where the copy's cold tier is, or ``None`` when the lake has none.
    """
    cold = recorded_cold_root(root)
    if cold is None or "://" in cold:
        return cold
    target = Path(copy_root).parent / "cold"
    shutil.copytree(cold, target)
    path = Path(copy_root) / RECORD
    path.write_text(json.dumps({"cold_root": "../cold"}))
    return str(target)


def resolve_cold_root(root: str, configured: str | None) -> str | None:
    """The cold root to read: the recorded one, else ``configured``.

    Raises
    ------
    ColdTierMismatchError
        When both are given and differ.
    """
    recorded = recorded_cold_root(root)
    if recorded and configured and configured.rstrip("/") != recorded:
        raise ColdTierMismatchError(
            f"the lake at {root} archived bars to {recorded}, but the cold tier is set to "
            f"{configured}: unset FACTORY_COLD_URI or set it to {recorded}")
    return recorded or configured


def record_cold_root(root: str, cold_root: str) -> None:
    """Record ``cold_root`` as the lake's cold tier (before the first bar moves there)."""
    path = _record_path(root)
    if path is None or recorded_cold_root(root) == cold_root:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps({"cold_root": cold_root}))
    partial.replace(path)
