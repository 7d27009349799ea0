"""Factor risk models: Sigma = B Cov_f B' + D, estimated point-in-time.

A factor model describes the covariance of ``n`` assets with ``k`` factors: loadings ``B``
(n x k), the factors' covariance ``Cov_f`` (k x k) and each asset's specific (residual)
variance ``D`` (n). It needs ``n k + k^2 + n`` numbers instead of ``n^2``, is positive
definite whenever ``D > 0``, and lets the optimiser write the risk of weights ``w`` as
``|G' w|^2 + sum(D w^2)`` with ``G = B chol(Cov_f)`` (n x k), so the ``n x n`` matrix is never
formed.

Two estimators, both point-in-time (an estimate as of ``t`` reads only returns known at ``t``):

- ``estimate_pca_model`` (here): statistical factors, the first ``k`` principal components of
  the trailing window of daily returns.
- ``estimate_fama_french_model`` (``factory.portfolio.factors``): regressions of monthly asset
  returns on the Fama-French factors.

Returns come as a polars frame in the project's long layout: ``ts`` (Date or Datetime, naive
UTC), ``symbol`` (str), ``ret`` (simple return of the bar ending at ``ts``). A null ``ret`` is
a missing bar and is dropped; NaN or infinite returns and repeated ``(symbol, ts)`` rows are
refused with a ValueError naming them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl
from sklearn.decomposition import PCA

RETURN_COLUMNS = ("ts", "symbol", "ret")


class InsufficientHistoryError(ValueError):
    """Too few returns before the as-of time to estimate the model; names symbols and counts."""


@dataclass(frozen=True, eq=False)
class FactorRiskModel:
    """A factor covariance ``Sigma = B Cov_f B' + diag(D)`` as of one time.

    Attributes
    ----------
    symbols : tuple of str
        The assets, in the order of the rows of ``loadings`` and ``specific_variance``.
    factor_names : tuple of str
        The factors, in the order of the columns of ``loadings``.
    loadings : numpy.ndarray
        ``B``, shape (n_assets, n_factors).
    factor_covariance : numpy.ndarray
        ``Cov_f``, shape (n_factors, n_factors), symmetric positive definite.
    specific_variance : numpy.ndarray
        ``D``, shape (n_assets,), strictly positive.
    as_of : datetime.datetime or datetime.date
        The time the estimate is valid at; it used only returns known then.
    horizon_days : int
        The covariance is that of returns over this many trading days.
    method : str
        ``"pca"`` or ``"fama_french"``.
    """

    symbols: tuple[str, ...]
    factor_names: tuple[str, ...]
    loadings: np.ndarray
    factor_covariance: np.ndarray
    specific_variance: np.ndarray
    as_of: dt.datetime | dt.date
    horizon_days: int
    method: str

    def __post_init__(self) -> None:
        n, k = len(self.symbols), len(self.factor_names)
        if len(set(self.symbols)) != n:
            raise ValueError(f"symbols repeat: {_repeated(self.symbols)}")
        shapes = {"loadings": (self.loadings, (n, k)),
                  "factor_covariance": (self.factor_covariance, (k, k)),
                  "specific_variance": (self.specific_variance, (n,))}
        for name, (array, shape) in shapes.items():
            if np.shape(array) != shape:
                raise ValueError(f"{name} has shape {np.shape(array)}, expected {shape} "
                                 f"for {n} symbols and {k} factors")
            if not np.isfinite(array).all():
                raise ValueError(f"{name} holds NaN or infinite values")
        bad = [s for s, d in zip(self.symbols, self.specific_variance, strict=True) if d <= 0]
        if bad:
            raise ValueError(f"specific_variance must be > 0; not for {bad}")
        if not np.allclose(self.factor_covariance, self.factor_covariance.T, rtol=0, atol=1e-12):
            raise ValueError("factor_covariance is not symmetric")
        try:
            np.linalg.cholesky(self.factor_covariance)
        except np.linalg.LinAlgError as error:
            raise ValueError(f"factor_covariance of {list(self.factor_names)} is not positive "
                             "definite (a constant or redundant factor?)") from error
        if self.horizon_days < 1:
            raise ValueError(f"horizon_days must be >= 1, got {self.horizon_days}")
        for name in ("loadings", "factor_covariance", "specific_variance"):
            frozen = np.array(getattr(self, name), dtype=float)
            frozen.flags.writeable = False
            object.__setattr__(self, name, frozen)

    def covariance(self) -> np.ndarray:
        """The full ``n x n`` covariance ``B Cov_f B' + diag(D)``, for reports and checks.

        The optimiser does not need it: use ``factor_form`` there.
        """
        return (self.loadings @ self.factor_covariance @ self.loadings.T
                + np.diag(self.specific_variance))

    def factor_form(self) -> np.ndarray:
        """``G = B L`` with ``L`` the Cholesky factor of ``Cov_f`` (``Cov_f = L L'``).

        Then ``w' Sigma w = |G' w|^2 + sum(D w^2)``: the risk of any weights in ``O(n k)``.

        Returns
        -------
        numpy.ndarray
            Shape (n_assets, n_factors).
        """
        return self.loadings @ np.linalg.cholesky(self.factor_covariance)

    def factor_share(self) -> np.ndarray:
        """Each asset's share of variance the factors explain, ``1 - D / diag(Sigma)``."""
        factor_variance = np.einsum("ij,jk,ik->i", self.loadings, self.factor_covariance,
                                    self.loadings)
        return factor_variance / (factor_variance + self.specific_variance)


def validated_returns(returns: pl.DataFrame, symbols: Sequence[str] | None) -> pl.DataFrame:
    """The returns frame checked and narrowed to ``symbols``, nulls dropped, sorted.

    Parameters
    ----------
    returns : polars.DataFrame
        ``ts``, ``symbol``, ``ret`` (other columns are ignored).
    symbols : sequence of str or None
        The assets to keep, in this order in the model; None keeps every symbol, sorted.

    Returns
    -------
    polars.DataFrame
        ``ts``, ``symbol``, ``ret`` (Float64) sorted by symbol then ts.

    Raises
    ------
    ValueError
        A missing column, a non-temporal ``ts``, a requested symbol absent from the frame,
        NaN or infinite returns, or repeated ``(symbol, ts)`` rows, each named.
    """
    missing = [c for c in RETURN_COLUMNS if c not in returns.columns]
    if missing:
        raise ValueError(f"returns frame lacks column(s) {missing}; it needs {list(RETURN_COLUMNS)}"
                         f" and has {returns.columns}")
    if not returns.schema["ts"].is_temporal():
        raise ValueError(f"column 'ts' must be Date or Datetime, not {returns.schema['ts']}")
    if not returns.schema["ret"].is_numeric():
        raise ValueError(f"column 'ret' must be numeric, not {returns.schema['ret']}")
    frame = returns.select(pl.col("ts"), pl.col("symbol").cast(pl.Utf8),
                           pl.col("ret").cast(pl.Float64)).drop_nulls()
    if symbols is not None:
        wanted = list(symbols)
        if len(set(wanted)) != len(wanted):
            raise ValueError(f"symbols repeat: {_repeated(wanted)}")
        absent = sorted(set(wanted) - set(frame["symbol"].unique().to_list()))
        if absent:
            raise ValueError(f"no returns for symbol(s) {absent}")
        frame = frame.filter(pl.col("symbol").is_in(wanted))
    bad = frame.filter(~pl.col("ret").is_finite())
    if bad.height:
        first = bad.group_by("symbol").agg(pl.col("ts").min(), pl.len()).sort("symbol")
        detail = ", ".join(f"{r['symbol']} ({r['len']} rows, first at {r['ts']})"
                           for r in first.iter_rows(named=True))
        raise ValueError(f"column 'ret' holds NaN or infinite values: {detail}")
    repeated = frame.filter(pl.struct("symbol", "ts").is_duplicated())
    if repeated.height:
        rows = repeated.unique(["symbol", "ts"]).sort("symbol", "ts").head(5).rows()
        raise ValueError(f"{repeated.height} rows repeat (symbol, ts), e.g. "
                         f"{[(s, str(t)) for t, s, _ in rows]}")
    return frame.sort("symbol", "ts")


def _repeated(names: Sequence[str]) -> list[str]:
    return sorted({s for s in names if list(names).count(s) > 1})


def ordered_symbols(frame: pl.DataFrame, symbols: Sequence[str] | None) -> list[str]:
    """``symbols`` as given, or every symbol of ``frame`` sorted."""
    return list(symbols) if symbols is not None else sorted(frame["symbol"].unique().to_list())


def estimate_pca_model(
    returns: pl.DataFrame,
    as_of: dt.datetime | dt.date,
    *,
    n_factors: int = 5,
    window: int = 252,
    min_rows: int = 60,
    symbols: Sequence[str] | None = None,
    horizon_days: int = 1,
    specific_variance_floor: float = 1e-10,
) -> FactorRiskModel:
    """Statistical factor model from the principal components of trailing daily returns.

    Only bars with ``ts <= as_of`` are read (a bar stamped ``ts`` ended then), and only the
    times at which every symbol has a return (a complete panel; a holiday of one market drops
    that row). Of those, the last ``window`` rows are used. With ``X`` the demeaned panel, the
    loadings ``B`` are the first ``n_factors`` principal axes, ``Cov_f`` is the diagonal of
    their variances and ``D`` the variance of what they leave, floored at
    ``specific_variance_floor`` so ``Sigma`` stays positive definite. Daily figures are
    multiplied by ``horizon_days`` (returns taken as independent from day to day).

    Parameters
    ----------
    returns : polars.DataFrame
        ``ts``, ``symbol``, ``ret``: daily simple returns, long layout.
    as_of : datetime.datetime or datetime.date
        The estimate's time; later rows are ignored.
    n_factors : int
        ``k``, fewer than the number of symbols and than the rows used.
    window : int
        Most rows (trading days) used.
    min_rows : int
        Fewest complete rows accepted; fewer raise ``InsufficientHistoryError``.
    symbols : sequence of str, optional
        Assets and their order; default every symbol in ``returns``, sorted.
    horizon_days : int
        The model's covariance is for returns over this many trading days.
    specific_variance_floor : float
        Lower bound of each specific variance (per day, before scaling).

    Returns
    -------
    FactorRiskModel
        ``method="pca"``, factors named ``PC1`` ... ``PCk``.

    Raises
    ------
    InsufficientHistoryError
        Fewer than ``min_rows`` complete rows up to ``as_of``; the message gives each short
        symbol's row count.
    ValueError
        Bad returns (see ``validated_returns``) or ``n_factors`` out of range.
    """
    frame = validated_returns(returns, symbols)
    names = ordered_symbols(frame, symbols)
    if not 1 <= n_factors < len(names):
        raise ValueError(f"n_factors must be between 1 and {len(names) - 1} for {len(names)} "
                         f"symbols, got {n_factors}")
    if min_rows <= n_factors + 1 or window < min_rows:
        raise ValueError(f"need n_factors + 1 < min_rows <= window; got n_factors={n_factors}, "
                         f"min_rows={min_rows}, window={window}")
    known = frame.filter(pl.col("ts") <= as_of)
    counts = known.group_by("symbol").len()
    per_symbol = dict(zip(counts["symbol"], counts["len"], strict=True))
    complete = pl.DataFrame()
    if all(s in per_symbol for s in names):
        complete = (known.pivot(on="symbol", index="ts", values="ret").sort("ts")
                    .select(names).drop_nulls().tail(window))
    if complete.height < min_rows:
        detail = ", ".join(f"{s}: {per_symbol.get(s, 0)}" for s in names)
        raise InsufficientHistoryError(
            f"PCA risk model as of {as_of} needs {min_rows} days on which all {len(names)} symbols"
            f" have returns and has {complete.height}; returns up to then per symbol: {detail}")
    x = complete.to_numpy()
    pca = PCA(n_components=n_factors, svd_solver="full").fit(x)
    residual = x - pca.inverse_transform(pca.transform(x))
    specific = np.maximum(residual.var(axis=0, ddof=1), specific_variance_floor)
    return FactorRiskModel(
        symbols=tuple(names),
        factor_names=tuple(f"PC{i + 1}" for i in range(n_factors)),
        loadings=pca.components_.T,
        factor_covariance=np.diag(pca.explained_variance_) * horizon_days,
        specific_variance=specific * horizon_days,
        as_of=as_of,
        horizon_days=horizon_days,
        method="pca",
    )
