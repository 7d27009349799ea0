"""Factor risk models: planted structure recovered, Fama-French data read right, point-in-time."""

import datetime as dt

import numpy as np
import polars as pl
import pytest

from factory.portfolio import (
    FAMA_FRENCH_FACTORS,
    TRADING_DAYS_PER_MONTH,
    FactorRiskModel,
    InsufficientHistoryError,
    estimate_fama_french_model,
    estimate_pca_model,
    load_fama_french_factors,
)
from factory.portfolio.factors import last_published_month


def _business_days(start: dt.date, end: dt.date) -> list[dt.date]:
    days = pl.date_range(start, end, "1d", eager=True)
    return days.filter(days.dt.weekday() <= 5).to_list()


def _long_frame(days: list[dt.date], symbols: list[str], values: np.ndarray) -> pl.DataFrame:
    """Long ``ts, symbol, ret`` frame from a (days x symbols) array, ts as Datetime."""
    ts = [dt.datetime(d.year, d.month, d.day) for d in days]
    return pl.DataFrame({
        "ts": np.repeat(np.array(ts, dtype="datetime64[us]"), len(symbols)),
        "symbol": symbols * len(days),
        "ret": values.reshape(-1),
    })


def _planted_returns(seed: int, n_days: int, n_assets: int = 30, n_factors: int = 3):
    """Daily returns from known loadings, factor and specific variances; their covariance."""
    rng = np.random.default_rng(seed)
    loadings = rng.normal(0.0, 1.0, (n_assets, n_factors))
    factor_variance = np.array([1.5e-4, 0.8e-4, 0.4e-4])[:n_factors]
    specific = rng.uniform(0.5e-5, 2e-5, n_assets)
    factors = rng.normal(0.0, np.sqrt(factor_variance), (n_days, n_factors))
    noise = rng.normal(0.0, np.sqrt(specific), (n_days, n_assets))
    truth = loadings @ np.diag(factor_variance) @ loadings.T + np.diag(specific)
    days = _business_days(dt.date(2010, 1, 1), dt.date(2030, 1, 1))[:n_days]
    symbols = [f"S{i:02d}" for i in range(n_assets)]
    return _long_frame(days, symbols, factors @ loadings.T + noise), truth, specific, days


def _monthly_to_daily(months: list[dt.date], symbol: str, monthly: np.ndarray) -> pl.DataFrame:
    """Daily returns whose compounding over each calendar month is exactly ``monthly``."""
    frames = []
    for month, value in zip(months, monthly, strict=True):
        following = dt.date(month.year + month.month // 12, month.month % 12 + 1, 1)
        days = _business_days(month, following - dt.timedelta(days=1))
        daily = np.full(len(days), (1.0 + value) ** (1.0 / len(days)) - 1.0)
        frames.append(_long_frame(days, [symbol], daily))
    return pl.concat(frames)


def _fama_french_assets(seed: int, first_month: dt.date) -> pl.DataFrame:
    """Two assets with known exposures to the packaged factors, from ``first_month`` on."""
    factors = load_fama_french_factors().filter(pl.col("month") >= first_month)
    rng = np.random.default_rng(seed)
    months = factors["month"].to_list()
    mkt, smb, hml, rf = (factors[c].to_numpy() for c in (*FAMA_FRENCH_FACTORS, "RF"))
    market = rf + 1.2 * mkt + rng.normal(0.0, 0.005, len(months))
    value = rf + 0.8 * mkt - 0.5 * smb + 0.9 * hml + rng.normal(0.0, 0.005, len(months))
    return pl.concat([_monthly_to_daily(months, "BETA12", market),
                      _monthly_to_daily(months, "VALUE", value)])


def test_fama_french_factors_are_real_months_as_fractions():
    factors = load_fama_french_factors()
    assert factors.schema["month"] == pl.Date
    assert factors["month"][0] == dt.date(1926, 7, 1)
    assert factors["month"][-1] == dt.date(2018, 11, 1)
    index = factors["month"].dt.year() * 12 + factors["month"].dt.month()
    assert (index.diff().drop_nulls() == 1).all(), "months must follow one another without gaps"
    first = factors.row(0, named=True)
    assert first["Mkt-RF"] == pytest.approx(0.0296)
    assert first["SMB"] == pytest.approx(-0.0230)
    assert first["RF"] == pytest.approx(0.0022)
    assert factors.select(pl.all().exclude("month").abs().max()).row(0) < (1.0,) * 4


def test_last_published_month_respects_month_end_and_lag():
    assert last_published_month(dt.date(2018, 6, 15), 1) == dt.date(2018, 4, 1)
    assert last_published_month(dt.datetime(2018, 6, 1), 0) == dt.date(2018, 5, 1)
    assert last_published_month(dt.datetime(2018, 5, 31, 23), 0) == dt.date(2018, 4, 1)
    assert last_published_month(dt.date(2018, 1, 10), 2) == dt.date(2017, 10, 1)


def test_fama_french_recovers_planted_betas_and_factor_covariance():
    returns = _fama_french_assets(seed=3, first_month=dt.date(2005, 1, 1))
    model = estimate_fama_french_model(returns, dt.date(2018, 12, 15), horizon_days=1)
    assert model.symbols == ("BETA12", "VALUE") and model.factor_names == FAMA_FRENCH_FACTORS
    np.testing.assert_allclose(model.loadings[0], [1.2, 0.0, 0.0], atol=0.1)
    np.testing.assert_allclose(model.loadings[1], [0.8, -0.5, 0.9], atol=0.1)
    np.testing.assert_allclose(model.specific_variance * TRADING_DAYS_PER_MONTH, 2.5e-5, rtol=0.5)
    window = load_fama_french_factors().filter(
        pl.col("month").is_between(dt.date(2013, 11, 1), dt.date(2018, 10, 1)))
    assert window.height == 60
    expected = np.cov(window.select(FAMA_FRENCH_FACTORS).to_numpy(), rowvar=False)
    np.testing.assert_allclose(model.factor_covariance * TRADING_DAYS_PER_MONTH, expected,
                               rtol=1e-12)
    weekly = estimate_fama_french_model(returns, dt.date(2018, 12, 15), horizon_days=5)
    np.testing.assert_allclose(weekly.covariance(), 5 * model.covariance(), rtol=1e-12)


def test_fama_french_estimate_ignores_what_was_not_known_at_as_of():
    returns = _fama_french_assets(seed=4, first_month=dt.date(2008, 1, 1))
    as_of = dt.datetime(2016, 6, 15)
    known = returns.filter(pl.col("ts") <= as_of)
    published = load_fama_french_factors().filter(pl.col("month") <= dt.date(2016, 4, 1))
    full = estimate_fama_french_model(returns, as_of)
    truncated = estimate_fama_french_model(known, as_of, factors=published)
    for name in ("loadings", "factor_covariance", "specific_variance"):
        np.testing.assert_array_equal(getattr(full, name), getattr(truncated, name))
    no_lag = estimate_fama_french_model(returns, as_of, publication_lag_months=0)
    assert not np.array_equal(no_lag.loadings, full.loadings), "the lag must move the window"
    shocked = returns.with_columns(
        pl.when(pl.col("ts") > dt.datetime(2016, 5, 1)).then(pl.col("ret") + 0.05)
        .otherwise(pl.col("ret")).alias("ret"))
    np.testing.assert_array_equal(estimate_fama_french_model(shocked, as_of).loadings,
                                  full.loadings)


def test_fama_french_short_history_names_symbol_and_count():
    returns = _fama_french_assets(seed=5, first_month=dt.date(2015, 1, 1))
    short = r"window 2011-05 to 2016-04.*BETA12 \(15\), VALUE \(15\)"
    with pytest.raises(InsufficientHistoryError, match=short):
        estimate_fama_french_model(returns, dt.date(2016, 6, 15))
    with pytest.raises(InsufficientHistoryError, match="factors cover 1926-07 to 2018-11"):
        estimate_fama_french_model(returns, dt.date(2030, 1, 1))


def test_pca_recovers_planted_factor_covariance():
    returns, truth, specific, days = _planted_returns(seed=0, n_days=3000)
    model = estimate_pca_model(returns, days[-1], n_factors=3, window=3000)
    assert model.method == "pca" and model.factor_names == ("PC1", "PC2", "PC3")
    error = np.linalg.norm(model.covariance() - truth) / np.linalg.norm(truth)
    assert error < 0.08
    np.testing.assert_allclose(model.factor_share(), 1.0 - specific / np.diag(truth),
                               atol=0.05)
    too_few = estimate_pca_model(returns, days[-1], n_factors=1, window=3000)
    assert np.linalg.norm(too_few.covariance() - truth) / np.linalg.norm(truth) > 2 * error


def test_factor_form_gives_the_same_risk_as_the_full_covariance():
    returns, _, _, days = _planted_returns(seed=1, n_days=400)
    model = estimate_pca_model(returns, days[-1], n_factors=3, window=300)
    weights = np.random.default_rng(2).normal(0.0, 0.05, len(model.symbols))
    exposure = model.factor_form().T @ weights
    np.testing.assert_allclose(exposure @ exposure + model.specific_variance @ weights**2,
                               weights @ model.covariance() @ weights, rtol=1e-10)


def test_pca_uses_rows_up_to_and_including_as_of_only():
    returns, _, _, days = _planted_returns(seed=2, n_days=500)
    as_of = dt.datetime.combine(days[399], dt.time())
    base = estimate_pca_model(returns, as_of, n_factors=3, window=250)
    later = returns.filter(pl.col("ts") > as_of).with_columns(pl.col("ret") * 10.0)
    changed_future = pl.concat([returns.filter(pl.col("ts") <= as_of), later])
    np.testing.assert_array_equal(
        estimate_pca_model(changed_future, as_of, n_factors=3, window=250).specific_variance,
        base.specific_variance)
    bumped_at_as_of = returns.with_columns(
        pl.when(pl.col("ts") == as_of).then(pl.col("ret") + 0.03).otherwise(pl.col("ret")))
    bumped = estimate_pca_model(bumped_at_as_of, as_of, n_factors=3, window=250)
    assert not np.allclose(bumped.specific_variance, base.specific_variance)


def test_pca_short_history_names_symbols_and_counts():
    returns, _, _, days = _planted_returns(seed=3, n_days=120, n_assets=6)
    late = returns.filter((pl.col("symbol") != "S05") | (pl.col("ts") > dt.datetime(
        days[100].year, days[100].month, days[100].day)))
    with pytest.raises(InsufficientHistoryError, match=r"has 19;.*S00: 120.*S05: 19"):
        estimate_pca_model(late, days[-1], n_factors=2, window=100, min_rows=60)


def test_bad_returns_are_refused_with_the_symbol_named():
    returns, _, _, days = _planted_returns(seed=4, n_days=100, n_assets=5)
    nan_row = returns.with_columns(
        pl.when((pl.col("symbol") == "S03") & (pl.col("ts") == pl.col("ts").max()))
        .then(float("nan")).otherwise(pl.col("ret")).alias("ret"))
    with pytest.raises(ValueError, match=r"NaN or infinite values: S03 \(1 rows"):
        estimate_pca_model(nan_row, days[-1], n_factors=2)
    with pytest.raises(ValueError, match="rows repeat"):
        estimate_pca_model(pl.concat([returns, returns.tail(1)]), days[-1], n_factors=2)
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['ret'\]"):
        estimate_pca_model(returns.drop("ret"), days[-1], n_factors=2)
    with pytest.raises(ValueError, match=r"no returns for symbol\(s\) \['ZZZ'\]"):
        estimate_pca_model(returns, days[-1], n_factors=2, symbols=["S00", "ZZZ"])
    nulls = returns.with_columns(
        pl.when(pl.col("ts") == pl.col("ts").min()).then(None).otherwise(pl.col("ret"))
        .alias("ret"))
    assert estimate_pca_model(nulls, days[-1], n_factors=2).symbols == tuple(
        f"S0{i}" for i in range(5))


def test_risk_model_refuses_non_positive_variances():
    good = dict(symbols=("A", "B"), factor_names=("F",), loadings=np.ones((2, 1)),
                factor_covariance=np.eye(1), specific_variance=np.array([1e-4, 2e-4]),
                as_of=dt.date(2020, 1, 1), horizon_days=1, method="synthetic")
    FactorRiskModel(**good)
    with pytest.raises(ValueError, match=r"specific_variance must be > 0; not for \['B'\]"):
        FactorRiskModel(**{**good, "specific_variance": np.array([1e-4, -1e-6])})
    with pytest.raises(ValueError, match="not positive definite"):
        FactorRiskModel(**{**good, "factor_covariance": np.zeros((1, 1))})
    with pytest.raises(ValueError, match=r"loadings has shape \(2, 2\)"):
        FactorRiskModel(**{**good, "loadings": np.ones((2, 2))})
