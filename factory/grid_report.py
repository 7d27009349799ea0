"""``factory run --dry-run``: every configuration of a profile, and what the rules dropped.

The grid's own count (the configuration alone, for an unknown universe) comes first: the
default grid's 486. Where the lake holds the run's universe, the configurations its data
can feed follow, with the inputs it lacks counted under the ``inputs-missing`` rule.
"""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from factory.config import FactoryConfig
from factory.grid import GridExpansion, expand


def _counts_table(title: str, column: str, expansion: GridExpansion, field: str) -> Table:
    """Kept and dropped configurations per value of ``field``."""
    kept = expansion.kept_by(field)
    dropped: dict[object, int] = {}
    for cell in expansion.excluded:
        key = getattr(cell, field)
        dropped[key] = dropped.get(key, 0) + cell.configs
    table = Table(title=title)
    for name in (column, "configs", "dropped"):
        table.add_column(name, justify="left" if name == column else "right")
    for key in sorted(set(kept) | set(dropped), key=lambda k: (str(type(k)), k)):
        table.add_row(str(key), str(kept.get(key, 0)), str(dropped.get(key, 0)))
    return table


def _rules_table(expansion: GridExpansion, config: FactoryConfig) -> Table:
    table = Table(title="exclusion rules (a configuration counts under the first that drops it)")
    for name in ("rule", "ground", "dropped", "reason"):
        table.add_column(name, justify="right" if name == "dropped" else "left")
    for rule, (kind, reason, count) in expansion.dropped_by_rule(config).items():
        table.add_row(rule, kind, str(count), reason)
    return table


def print_grid(console: Console, config: FactoryConfig,
               universe: tuple[tuple[str, ...], dict[str, str]] | None = None) -> None:
    """Print every configuration, the counts per architecture, feature set, lookback and
    rule, and the total.

    ``universe`` is the lake's ``(symbols, missing inputs)`` where it holds the run's
    symbols; without it the grid is expanded for an unknown universe.
    """
    symbols, missing = universe or ((), None)
    expansion = expand(config, symbols, missing)
    table = Table(title=f"profile {config.profile}: {len(expansion.specs)} configs")
    for column in ("#", "id", "arch", "lookback", "feature set", "hyperparameters"):
        table.add_column(column)
    for i, spec in enumerate(expansion.specs, 1):
        hp = ", ".join(f"{k}={v}" for k, v in sorted(spec.hparams.items()))
        table.add_row(str(i), spec.short_id, spec.arch, str(spec.lookback), spec.feature_set, hp)
    wide = Console(width=max(console.width, 160), file=console.file, highlight=False,
                   soft_wrap=True)
    wide.print(table)
    for title, column, field in (("per architecture", "architecture", "arch"),
                                 ("per feature set", "feature set", "feature_set"),
                                 ("per lookback", "lookback", "lookback")):
        wide.print(_counts_table(title, column, expansion, field))
    wide.print(_rules_table(expansion, config))
    for reason in dict.fromkeys(c.reason for c in expansion.excluded if c.kind == "inputs"):
        console.print(f"[yellow]not fed by this lake:[/] {reason}")
    grid_count = len(expand(config).specs) if universe else len(expansion.specs)
    console.print(f"the {config.profile} grid: {grid_count} configurations")
    if universe:
        console.print(f"on the lake's universe ({', '.join(symbols)}): "
                      f"{len(expansion.specs)} configs its data can feed")
    else:
        console.print(f"{len(expansion.specs)} configs")
