"""Names that come from users and later become paths: symbols, and joining them safely.

A symbol ends up in directory and file names (models, caches, reports), so it is checked
before anything else sees it (rule 11: nothing writes outside FACTORY_HOME).
"""

from __future__ import annotations

import re
from pathlib import Path

SYMBOL_RULE = "symbol is 1-64 letters, digits or ._-:^= and starts with no dot"
"""The symbol rule, as error messages quote it."""

SYMBOL_PATTERN = r"^[A-Za-z0-9_\-:^=][A-Za-z0-9._\-:^=]{0,63}$"
"""A valid symbol: ``BTC-USD``, ``ES=F``, ``^GSPC``, ``BRK.B``, ``EURUSD:FX``.

ASCII letters only, no spaces or slashes, and no leading ``.``, so that no symbol is
``.``, ``..``, a hidden file or a path.
"""

_SYMBOL = re.compile(SYMBOL_PATTERN)


def is_valid_symbol(symbol: str) -> bool:
    """Return whether ``symbol`` satisfies ``SYMBOL_PATTERN``."""
    return _SYMBOL.fullmatch(symbol) is not None


def check_symbol(symbol: str) -> str:
    """Return ``symbol`` if it is valid.

    Raises
    ------
    ValueError
        If it is not (the message quotes the value and the rule).
    """
    if not isinstance(symbol, str) or not is_valid_symbol(symbol):
        raise ValueError(f"invalid symbol {symbol!r}: {SYMBOL_RULE}")
    return symbol


def safe_child(root: Path, *parts: str) -> Path:
    """Join ``parts`` under ``root`` and refuse any result that escapes it.

    Both paths are resolved (``..`` and symbolic links followed) before comparing, so
    ``safe_child(home, "..")``, ``safe_child(home, "/etc")`` and a link pointing out of
    ``root`` are all refused.

    Parameters
    ----------
    root
        The directory every result must stay inside (it need not exist yet).
    *parts
        Path components, typically built from user-given names such as symbols.

    Returns
    -------
    Path
        The resolved joined path, inside ``root`` (or ``root`` itself).

    Raises
    ------
    ValueError
        If the joined path lies outside ``root``.
    """
    base = Path(root).resolve()
    child = base.joinpath(*parts).resolve()
    if not child.is_relative_to(base):
        raise ValueError(f"path {'/'.join(parts)!r} lies outside {base}")
    return child
