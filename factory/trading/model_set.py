"""Which registered models trade, with what share of capital, and the target weights their
out-of-sample positions add up to.

The backtest and the portfolio trade a *model set*: one named model, the Production set, or
(only when asked, and every output then says so) the Staging set, for the days no model
cleared the selection's gates. A set's capital is shared by the allocation of the latest
selection (``selection_audit.weight``); a model the selection did not weight (or a set
before any selection) gets an equal share.

Honest by construction: the target weights come from the models' *walk-forward* out-of-sample
positions (the ``oos_predictions.parquet`` each factory run logs), never from the registered
version, which was refit on all history and would trade its own training data. A model's
position on one asset of its universe of ``n`` becomes a weight ``position / n``: the
factory's evaluation holds the equal-weighted mean over its assets
(``factory.training.fit``), so one model alone reproduces its evaluated returns. The set
trades only the bars where every model has an out-of-sample decision.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import polars as pl

from factory.stages import PRODUCTION, STAGING

OOS_KEYS = ("symbol", "ts")
"""Where a model's out-of-sample predictions are (``factory.training.fit``)."""


SELECTED_ON_THESE_BARS = (
    "note: the selection chose this set by these same out-of-sample returns, so its backtest "
    "is optimistic; the deflated Sharpe (`factory leaderboard`) allows for every "
    "configuration tried")
"""What every output of a staged set's backtest says (README: Trading)."""


class NoModelsError(LookupError):
    """The registry holds no model of the asked set."""


@dataclass(frozen=True)
class ModelSet:
    """The models a backtest or portfolio trades.

    Attributes
    ----------
    models : pl.DataFrame
        One row per model: ``model_name``, ``version``, ``run_id``, ``spec_id``,
        ``lake_version``, ``symbols`` (comma-joined universe), ``cost_bps``,
        ``execution_price`` and ``weight`` (its share of capital, summing to 1).
    description : str
        What the set is, in words, for every output (says "Staging" where it is).
    caveat : str
        For a staged set: why its backtest over the out-of-sample history it was selected on
        flatters it, for every output; empty for one named model.
    """

    models: pl.DataFrame
    description: str
    caveat: str = ""

    @property
    def names(self) -> list[str]:
        """The models' registered names."""
        return self.models["model_name"].to_list()

    def record(self) -> dict[str, str]:
        """What a run's record says of the set: its description, models and spec ids."""
        models = self.models
        return {"description": self.description,
                "models": ",".join(f"{n} v{v}" for n, v in zip(
                    models["model_name"], models["version"], strict=True)),
                "spec_ids": ",".join(models["spec_id"])}

    def trading_convention(self) -> tuple[float, str]:
        """``(cost_bps, execution_price)`` the set's models were evaluated with.

        Raises
        ------
        ValueError
            When the models were evaluated under different conventions: their returns would
            not be comparable with a backtest under either.
        """
        conventions = self.models.select("cost_bps", "execution_price").unique()
        if conventions.height != 1:
            raise ValueError(
                f"the {self.description} mixes evaluation conventions "
                f"{conventions.rows()}: backtest models evaluated alike (--model NAME)")
        cost, price = conventions.row(0)
        return float(cost), str(price)


def choose_models(latest: pl.DataFrame, allocation: Mapping[str, float] | None, *,
                  model: str | None = None, include_staging: bool = False) -> ModelSet:
    """The set to trade, from the registry's latest versions and the selection's allocation.

    Parameters
    ----------
    latest : pl.DataFrame
        ``Tracker.latest_versions()``: one row per managed model with its ``stage``.
    allocation : Mapping[str, float] or None
        The latest selection's weights by model name (None before any selection).
    model : str, optional
        One registered model, whatever its stage, with all the capital.
    include_staging : bool
        Trade the Staging set when no model is in Production.

    Raises
    ------
    NoModelsError
        When the asked model or set does not exist; the message says what to run.
    """
    if model is not None:
        chosen = latest.filter(pl.col("model_name") == model) if latest.height else latest
        if chosen.is_empty():
            raise NoModelsError(f"no registered model named {model!r}: `factory leaderboard` "
                                "lists them")
        return ModelSet(chosen.with_columns(pl.lit(1.0).alias("weight")),
                        f"model {model} v{chosen['version'][0]}")
    stage = PRODUCTION
    chosen = _in_stage(latest, PRODUCTION)
    if chosen.is_empty():
        if not include_staging:
            raise NoModelsError(
                "no model is in Production (none cleared the selection's gates): pass "
                "--include-staging to trade the Staging set, or --model NAME")
        stage, chosen = STAGING, _in_stage(latest, STAGING)
        if chosen.is_empty():
            raise NoModelsError("no model is in Production or Staging: run `factory select`")
    weights = _shares(chosen["model_name"].to_list(), allocation or {})
    description = (f"Production set of {chosen.height}" if stage == PRODUCTION else
                   f"Staging set of {chosen.height} (not Production: no model cleared the "
                   "selection's gates)")
    return ModelSet(chosen.with_columns(pl.Series("weight", weights)), description,
                    SELECTED_ON_THESE_BARS)


def _in_stage(latest: pl.DataFrame, stage: str) -> pl.DataFrame:
    if latest.is_empty():
        return latest
    return latest.filter(pl.col("stage") == stage).sort("model_name")


def _shares(names: list[str], allocation: Mapping[str, float]) -> list[float]:
    """Each model's allocation weight renormalised over the set; equal where none is."""
    raw = [max(float(allocation.get(name, 0.0)), 0.0) for name in names]
    total = sum(raw)
    if total <= 0.0:
        return [1.0 / len(names)] * len(names)
    return [weight / total for weight in raw]


def target_weights(model_set: ModelSet, oos: Mapping[str, pl.DataFrame]) -> pl.DataFrame:
    """Per bar and asset, the capital weight the set's out-of-sample positions add up to.

    A model's position on one asset of its ``n`` counts ``share * position / n``.

    Parameters
    ----------
    model_set : ModelSet
        The models and their shares.
    oos : Mapping[str, pl.DataFrame]
        Each model's out-of-sample predictions by model name (``symbol``, ``ts``,
        ``position``, ``score``, ...).

    Returns
    -------
    pl.DataFrame
        ``ts``, ``symbol``, ``weight``, sorted, on the bars every model decided.

    Raises
    ------
    ValueError
        When a model's predictions are missing, lack a column, or share no bar with the
        others.
    """
    return _combined(model_set, oos, "position", per_asset=True).rename({"position": "weight"})


def expected_returns(model_set: ModelSet, oos: Mapping[str, pl.DataFrame]) -> pl.DataFrame:
    """Per bar and asset, the set's forecast of the next bar's return: the models' scores
    (forecasts in return units) averaged with their shares, as ``ts, symbol, mu``.

    Same bars and errors as :func:`target_weights`.
    """
    return _combined(model_set, oos, "score", per_asset=False).rename({"score": "mu"})


def _combined(model_set: ModelSet, oos: Mapping[str, pl.DataFrame], column: str, *,
              per_asset: bool) -> pl.DataFrame:
    """``ts, symbol, <column>``: the share-weighted sum of the models' ``column``, divided by
    each model's number of assets when ``per_asset``, on the bars every model decided."""
    parts = []
    for row in model_set.models.iter_rows(named=True):
        name = row["model_name"]
        if name not in oos:
            raise ValueError(f"no out-of-sample predictions for {name}")
        frame = oos[name]
        missing = [c for c in (*OOS_KEYS, column) if c not in frame.columns]
        if missing:
            raise ValueError(f"the out-of-sample predictions of {name} lack {missing}")
        divisor = len(row["symbols"].split(",")) if per_asset else 1
        parts.append(frame.select(
            "ts", "symbol", (pl.col(column) * row["weight"] / divisor).alias(column),
            pl.lit(name).alias("model_name")))
    stacked = pl.concat(parts)
    shared = stacked.group_by("ts").agg(pl.col("model_name").n_unique().alias("n"))
    shared = shared.filter(pl.col("n") == model_set.models.height).select("ts")
    if shared.is_empty():
        raise ValueError(f"the {model_set.description} shares no out-of-sample bar: "
                         f"{', '.join(model_set.names)} were tested on different periods")
    return (stacked.join(shared, on="ts").group_by("ts", "symbol")
            .agg(pl.col(column).sum()).sort("ts", "symbol"))
