"""Which symbols a factory run trains on."""

from __future__ import annotations

from factory.config import FactoryConfig
from factory.data.lake import Lake

DEMO_SYMBOLS = ("NASDAQ", "SP500")


class MissingSymbolsError(LookupError):
    """The run needs symbols the lake does not hold; the message says what to ingest."""


def resolve_symbols(config: FactoryConfig, lake: Lake) -> tuple[str, ...]:
    """The universe: configured symbols, the demo pair, or every symbol in the lake.

    Raises
    ------
    MissingSymbolsError
        When a wanted symbol is not in the lake (or the lake is empty).
    """
    available = set(lake.symbols())
    wanted = config.data.symbols or (DEMO_SYMBOLS if config.data.source == "demo"
                                     else tuple(sorted(available)))
    missing = sorted(set(wanted) - available)
    if missing or not wanted:
        hint = "--source demo" if config.data.source == "demo" else "--source PATH"
        raise MissingSymbolsError(
            f"symbols {missing or '(any)'} are not in the lake at {lake.root}: "
            f"run `factory ingest {hint}` first")
    return tuple(sorted(wanted))
