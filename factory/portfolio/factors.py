"""The Fama-French three-factor risk model, from the factors packaged with ``arch``.

``arch.data.frenchdata.load()`` gives Ken French's MONTHLY factors 1926-07 to 2018-11:
``Mkt-RF`` (market excess return), ``SMB`` (size), ``HML`` (value) and ``RF`` (risk-free
rate), in percent. Its index holds ``YYYYMM`` integers that pandas read as nanoseconds after
1970 (``1970-01-01 00:00:00.000192607`` is 1926-07); ``load_fama_french_factors`` turns them
into real months and the percentages into fractions.

Asset returns are daily bars, so the model is estimated on monthly returns (daily simple
returns compounded by calendar month), with one time-series regression per asset of its
excess return on the three factors.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import polars as pl

from factory.portfolio.risk_model import (
    FactorRiskModel,
    InsufficientHistoryError,
    ordered_symbols,
    validated_returns,
)

FAMA_FRENCH_FACTORS = ("Mkt-RF", "SMB", "HML")
RISK_FREE = "RF"
TRADING_DAYS_PER_MONTH = 21


@lru_cache(maxsize=1)
def load_fama_french_factors() -> pl.DataFrame:
    """The packaged monthly Fama-French factors, as fractions, one row per month.

    Returns
    -------
    polars.DataFrame
        ``month`` (Date, the first day of the month), ``Mkt-RF``, ``SMB``, ``HML``, ``RF``
        (Float64 fractions: 2.96 percent is 0.0296), sorted by month.

    Raises
    ------
    ValueError
        If the packaged index no longer holds ``YYYYMM`` integers read as nanoseconds (a
        changed ``arch``): better refused than misdated.
    """
    from arch.data import frenchdata

    raw = frenchdata.load()
    yyyymm = np.asarray(raw.index, dtype="datetime64[ns]").astype(np.int64)
    years, months = yyyymm // 100, yyyymm % 100
    if not ((months >= 1) & (months <= 12) & (years >= 1900) & (years <= 2100)).all():
        raise ValueError("arch.data.frenchdata's index is not YYYYMM integers read as "
                         f"nanoseconds: first values {yyyymm[:3].tolist()}")
    columns = {name: raw[name].to_numpy(dtype=float) / 100.0
               for name in (*FAMA_FRENCH_FACTORS, RISK_FREE)}
    month = [dt.date(int(y), int(m), 1) for y, m in zip(years, months, strict=True)]
    return pl.DataFrame({"month": month, **columns}).sort("month")


def monthly_returns(daily: pl.DataFrame) -> pl.DataFrame:
    """Daily simple returns compounded by calendar month, each symbol's first month left out.

    A symbol's first month is dropped because its bars may not cover it whole (the first
    bar's return, from before the data starts, is usually missing).

    Parameters
    ----------
    daily : polars.DataFrame
        ``ts``, ``symbol``, ``ret`` as returned by ``validated_returns``.

    Returns
    -------
    polars.DataFrame
        ``symbol``, ``month`` (Date, first day), ``ret`` (the month's compounded return).
    """
    monthly = (daily.with_columns(month=pl.col("ts").dt.truncate("1mo").cast(pl.Date))
               .group_by("symbol", "month")
               .agg(ret=(1.0 + pl.col("ret")).product() - 1.0))
    return (monthly.filter(pl.col("month") > pl.col("month").min().over("symbol"))
            .sort("symbol", "month"))


def last_published_month(as_of: dt.datetime | dt.date, publication_lag_months: int) -> dt.date:
    """The latest month whose factors are public at ``as_of``.

    Month ``m`` ends at the start of ``m + 1`` and its factors appear
    ``publication_lag_months`` months later, so it is usable when the first day of month
    ``m + 1 + lag`` is at or before ``as_of``.
    """
    index = as_of.year * 12 + (as_of.month - 1) - 1 - publication_lag_months
    return dt.date(index // 12, index % 12 + 1, 1)


def _months_back(month: dt.date, count: int) -> dt.date:
    index = month.year * 12 + (month.month - 1) - count
    return dt.date(index // 12, index % 12 + 1, 1)


def _checked_factors(factors: pl.DataFrame) -> pl.DataFrame:
    needed = ("month", *FAMA_FRENCH_FACTORS, RISK_FREE)
    missing = [c for c in needed if c not in factors.columns]
    if missing:
        raise ValueError(f"factors frame lacks column(s) {missing}; it needs {list(needed)}")
    if factors.schema["month"] != pl.Date:
        raise ValueError(f"factors column 'month' must be Date, not {factors.schema['month']}")
    return factors.select(needed).sort("month")


def estimate_fama_french_model(
    returns: pl.DataFrame,
    as_of: dt.datetime | dt.date,
    *,
    factors: pl.DataFrame | None = None,
    window_months: int = 60,
    min_months: int = 24,
    publication_lag_months: int = 1,
    symbols: Sequence[str] | None = None,
    horizon_days: int = 1,
) -> FactorRiskModel:
    """Fama-French three-factor risk model as of ``as_of``, from daily asset returns.

    The window is the ``window_months`` calendar months ending at the last month whose factors
    are public at ``as_of`` (``last_published_month``): every month in it has ended and been
    published, and only bars with ``ts <= as_of`` are read, so appending later data never
    changes the estimate. For each asset, OLS of its monthly excess return (its return minus
    ``RF``) on a constant and the three factors, over the window's months in which it has a
    return, gives its loadings ``B`` and its residual variance ``D`` (sum of squared residuals
    over ``T - 4``). ``Cov_f`` is the factors' sample covariance over the window. Monthly
    figures are scaled to the horizon: times ``horizon_days / 21`` (21 trading days a month).

    Parameters
    ----------
    returns : polars.DataFrame
        ``ts``, ``symbol``, ``ret``: daily simple returns, long layout.
    as_of : datetime.datetime or datetime.date
        The estimate's time.
    factors : polars.DataFrame, optional
        ``month``, ``Mkt-RF``, ``SMB``, ``HML``, ``RF`` as fractions; default the packaged
        data (``load_fama_french_factors``).
    window_months : int
        Length of the trailing window in calendar months.
    min_months : int
        Fewest months each asset (and the factors) must have in the window.
    publication_lag_months : int
        Months between a month's end and the publication of its factors.
    symbols : sequence of str, optional
        Assets and their order; default every symbol in ``returns``, sorted.
    horizon_days : int
        The model's covariance is for returns over this many trading days.

    Returns
    -------
    FactorRiskModel
        ``method="fama_french"``, factors ``Mkt-RF``, ``SMB``, ``HML``.

    Raises
    ------
    InsufficientHistoryError
        Fewer than ``min_months`` months in the window for the factors or for some assets;
        the message names the window, the factors' coverage and each short symbol's count.
    ValueError
        Bad returns or factors frames, or parameters out of range.
    """
    k = len(FAMA_FRENCH_FACTORS)
    if not k + 2 <= min_months <= window_months:
        raise ValueError(f"need {k + 2} <= min_months <= window_months; got "
                         f"min_months={min_months}, window_months={window_months}")
    if publication_lag_months < 0:
        raise ValueError(f"publication_lag_months must be >= 0, got {publication_lag_months}")
    frame = validated_returns(returns, symbols)
    names = ordered_symbols(frame, symbols)
    table = _checked_factors(load_fama_french_factors() if factors is None else factors)
    last = last_published_month(as_of, publication_lag_months)
    first = _months_back(last, window_months - 1)
    window = table.filter(pl.col("month").is_between(first, last))
    span = f"{first:%Y-%m} to {last:%Y-%m} (as of {as_of}, lag {publication_lag_months})"
    if window.height < min_months:
        coverage = f"{table['month'].min():%Y-%m} to {table['month'].max():%Y-%m}"
        raise InsufficientHistoryError(
            f"Fama-French window {span} holds {window.height} months of factors, fewer than "
            f"{min_months}; the factors cover {coverage}")
    assets = monthly_returns(frame.filter(pl.col("ts") <= as_of)).join(window, on="month")
    counts = dict(assets.group_by("symbol").len().iter_rows())
    short = {s: counts.get(s, 0) for s in names if counts.get(s, 0) < min_months}
    if short:
        raise InsufficientHistoryError(
            f"Fama-French window {span} needs {min_months} monthly returns per symbol; short: "
            + ", ".join(f"{s} ({n})" for s, n in short.items()))
    loadings, specific = np.empty((len(names), k)), np.empty(len(names))
    by_symbol = assets.partition_by("symbol", as_dict=True)
    for row, symbol in enumerate(names):
        rows = by_symbol[(symbol,)]
        design = np.column_stack([np.ones(rows.height),
                                  rows.select(FAMA_FRENCH_FACTORS).to_numpy()])
        excess = (rows["ret"] - rows[RISK_FREE]).to_numpy()
        coef, *_ = np.linalg.lstsq(design, excess, rcond=None)
        residual = excess - design @ coef
        loadings[row], specific[row] = coef[1:], residual @ residual / (rows.height - k - 1)
    scale = horizon_days / TRADING_DAYS_PER_MONTH
    return FactorRiskModel(
        symbols=tuple(names),
        factor_names=FAMA_FRENCH_FACTORS,
        loadings=loadings,
        factor_covariance=np.cov(window.select(FAMA_FRENCH_FACTORS).to_numpy(), rowvar=False)
        * scale,
        specific_variance=specific * scale,
        as_of=as_of,
        horizon_days=horizon_days,
        method="fama_french",
    )
