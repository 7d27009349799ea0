"""The portfolio: shares, cash, equity and profit and loss, marked to market every bar.

Accounting is on average cost: buying into a position moves its average entry price,
reducing it realises ``closed shares * (fill price - average price)``, and crossing through
zero realises the whole old position and opens the rest at the fill price. At every bar

    equity = cash + sum(shares * last price)
           = initial cash + realised PnL + unrealised PnL - commissions paid

(slippage is inside the fill prices, hence inside the PnL). A symbol without a bar keeps its
last known price.

Each bar the portfolio is marked twice:

- at the execution price, before that bar's fills (`mark_execution`): the equity from which
  the house's per-bar returns are measured (see `Portfolio.returns`);
- at the close, after the fills (`on_market`): the equity curve, exposures and weights the
  risk manager and the history use.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl

from factory.backtest.data import check_universe
from factory.backtest.events import FillEvent, MarketEvent

HISTORY_COLUMNS = ("equity", "equity_at_execution", "cash", "gross_exposure", "net_exposure",
                   "commission", "slippage", "turnover", "realised_pnl", "unrealised_pnl")


class Portfolio:
    """Positions, cash and the per-bar record of a trading account.

    Parameters
    ----------
    symbols : sequence of str
        The universe, in column order (the data handler's ``symbols``).
    initial_cash : float, default 1,000,000
        Starting equity, all cash, positive.

    Attributes
    ----------
    shares : numpy.ndarray
        Signed shares held per symbol.
    cash, equity : float
        Cash, and equity at the last close mark.
    last_price : numpy.ndarray
        Latest price seen per symbol (NaN before its first bar).
    average_price : numpy.ndarray
        Average entry price of each open position (0 when flat).
    realised_pnl, commission_paid, slippage_paid : float
        Totals since the start.
    """

    def __init__(self, symbols: Sequence[str], initial_cash: float = 1_000_000.0) -> None:
        if not (np.isfinite(initial_cash) and initial_cash > 0):
            raise ValueError(f"initial_cash must be positive and finite, got {initial_cash}")
        self.symbols = check_universe(symbols)
        width = len(self.symbols)
        self.initial_cash = float(initial_cash)
        self.cash = self.initial_cash
        self.equity = self.initial_cash
        self.equity_at_execution = self.initial_cash
        self.shares = np.zeros(width)
        self.average_price = np.zeros(width)
        self.last_price = np.full(width, np.nan)
        self._marks = np.zeros(width)  # last_price with 0 where never seen (no shares there)
        self.realised_pnl = self.commission_paid = self.slippage_paid = 0.0
        self._bar_commission = self._bar_slippage = self._bar_traded = 0.0
        self._ts: list[np.datetime64] = []
        self._rows: list[tuple[float, ...]] = []
        self._weights: list[np.ndarray] = []
        self._execution_equity: list[float] = []

    def _observe(self, prices: np.ndarray) -> None:
        known = np.isfinite(prices)
        np.copyto(self.last_price, prices, where=known)
        np.copyto(self._marks, prices, where=known)

    def equity_at(self, prices: np.ndarray) -> float:
        """Equity with positions valued at ``prices`` (the last price where NaN)."""
        marks = np.where(np.isfinite(prices), prices, self._marks)
        return float(self.cash + self.shares @ marks)

    def mark_execution(self, prices: np.ndarray) -> float:
        """Mark at this bar's execution prices, before its fills; returns and records it."""
        self._observe(prices)
        self.equity_at_execution = float(self.cash + self.shares @ self._marks)
        self._execution_equity.append(self.equity_at_execution)
        return self.equity_at_execution

    def on_fill(self, fill: FillEvent) -> None:
        """Apply a fill: shares, cash, commissions, average prices and realised PnL."""
        quantities = fill.quantities
        commission = float(fill.commissions.sum())
        self.cash -= commission
        self.commission_paid += commission
        self._bar_commission += commission
        traded = quantities != 0
        if not traded.any():
            return
        prices = np.where(traded, fill.prices, 0.0)
        old, average = self.shares, self.average_price
        new = old + quantities
        reducing = old * quantities < 0
        closed = np.where(reducing, np.sign(old) * np.minimum(np.abs(quantities), np.abs(old)),
                          0.0)
        self.realised_pnl += float(closed @ (prices - average))
        adding = traded & ~reducing  # the new position is nonzero there
        average = np.divide(old * average + quantities * prices, new, out=average.copy(),
                            where=adding)
        np.copyto(average, prices, where=reducing & (old * new < 0))  # crossed through zero
        average[new == 0] = 0.0
        self.average_price = average
        self.shares = new
        notional = np.abs(quantities) @ prices
        self.cash -= float(quantities @ prices)
        slippage = float(fill.slippage.sum())
        self.slippage_paid += slippage
        self._bar_slippage += slippage
        self._bar_traded += float(notional)

    def on_market(self, market: MarketEvent) -> None:
        """Mark to the close and record the bar."""
        self._observe(market.close)
        values = self.shares * self._marks
        net = float(values.sum())
        self.equity = equity = self.cash + net
        unrealised = float(self.shares @ (self._marks - self.average_price))
        turnover = self._bar_traded / self.equity_at_execution
        self._ts.append(market.ts)
        self._rows.append((equity, self.equity_at_execution, self.cash,
                           float(np.abs(values).sum()) / equity, net / equity,
                           self._bar_commission, self._bar_slippage, turnover,
                           self.realised_pnl, unrealised))
        self._weights.append(values / equity)
        self._bar_commission = self._bar_slippage = self._bar_traded = 0.0

    def weights(self) -> np.ndarray:
        """Weights held at the last close mark: ``shares * price / equity``."""
        return self.shares * self._marks / self.equity

    def history(self) -> pl.DataFrame:
        """One row per bar: ``ts`` and `HISTORY_COLUMNS`.

        ``equity`` is at the close after the bar's fills; ``equity_at_execution`` at the
        execution price before them; exposures are sums of ``|value|`` and of value over
        equity; ``commission``, ``slippage`` are the bar's, in money; ``turnover`` is the
        bar's traded notional over ``equity_at_execution``; the PnL columns are cumulative.
        """
        rows = np.array(self._rows, dtype=np.float64).reshape(len(self._rows),
                                                               len(HISTORY_COLUMNS))
        frame = {"ts": np.array(self._ts, dtype="datetime64[us]")}
        frame |= {name: rows[:, k] for k, name in enumerate(HISTORY_COLUMNS)}
        return pl.DataFrame(frame)

    def weight_matrix(self) -> np.ndarray:
        """Weights at each bar's close, shape ``(bars, symbols)``."""
        if not self._weights:
            return np.zeros((0, len(self.symbols)))
        return np.stack(self._weights)

    def returns(self) -> pl.DataFrame:
        """The return of each decision bar, on the house's timing convention.

        The position decided at bar ``t``'s close is traded at bar ``t + 1``'s execution
        price and held until bar ``t + 2``'s, so its return is ``E[t + 2] / E[t + 1] - 1``
        where ``E[k]`` is the equity marked at bar ``k``'s execution price before bar ``k``'s
        fills (`mark_execution`). The commission and slippage of the trade at ``t + 1`` fall
        inside it, as ``strategy_returns`` charges the cost of ``|position_t -
        position_{t-1}|`` in ``r_t``. The last two bars have no return yet.

        Returns
        -------
        polars.DataFrame
            ``ts`` (the decision bar) and ``ret``, one row per bar but the last two.
        """
        equity = np.asarray(self._execution_equity)
        ts = np.array(self._ts, dtype="datetime64[us]")
        if len(equity) < 3:
            return pl.DataFrame({"ts": ts[:0], "ret": equity[:0]})
        return pl.DataFrame({"ts": ts[:-2], "ret": equity[2:] / equity[1:-1] - 1.0})
