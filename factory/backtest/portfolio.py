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

With one symbol the portfolio keeps its per-symbol state in Python floats and does the same
arithmetic on them (``factory.backtest.scalar``): the numbers are the array path's, bit for
bit, at a fraction of the cost per bar.
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence

import numpy as np
import polars as pl

from factory.backtest.data import check_universe
from factory.backtest.events import FillEvent, MarketEvent
from factory.backtest.result import column_matrix, per_symbol_column
from factory.backtest.scalar import minimum, sign, single

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
    single : bool
        Whether the universe is one symbol: the per-symbol state (``_shares``,
        ``_average_price``, ``_last_price``, ``_marks``) is then floats, not arrays, and the
        risk manager and the broker read it as such.
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
        self.single = width == 1
        if self.single:
            self._shares, self._average_price = 0.0, 0.0
            self._last_price, self._marks = np.nan, 0.0
        else:
            self._shares = np.zeros(width)
            self._average_price = np.zeros(width)
            self._last_price = np.full(width, np.nan)
            self._marks = np.zeros(width)  # last_price with 0 where never seen (no shares there)
        self.realised_pnl = self.commission_paid = self.slippage_paid = 0.0
        self._bar_commission = self._bar_slippage = self._bar_traded = 0.0
        self._stamps = array("q")
        self._rows = array("d")  # HISTORY_COLUMNS of each bar, packed
        self._weights = per_symbol_column(self.single)
        self._execution_equity = array("d")

    @property
    def shares(self) -> np.ndarray:
        """Signed shares held per symbol."""
        return np.array([self._shares]) if self.single else self._shares

    @property
    def average_price(self) -> np.ndarray:
        """Average entry price of each open position (0 when flat)."""
        return np.array([self._average_price]) if self.single else self._average_price

    @property
    def last_price(self) -> np.ndarray:
        """Latest price seen per symbol (NaN before its first bar)."""
        return np.array([self._last_price]) if self.single else self._last_price

    def _observe(self, prices: np.ndarray) -> None:
        known = np.isfinite(prices)
        np.copyto(self._last_price, prices, where=known)
        np.copyto(self._marks, prices, where=known)

    def equity_at(self, prices: np.ndarray) -> float:
        """Equity with positions valued at ``prices`` (the last price where NaN)."""
        marks = np.where(np.isfinite(prices), prices, self._marks)
        return float(self.cash + self.shares @ marks)

    def mark_execution(self, prices: np.ndarray | float) -> float:
        """Mark at this bar's execution prices, before its fills; returns and records it."""
        if not self.single:
            self._observe(prices)
            self.equity_at_execution = float(self.cash + self._shares @ self._marks)
        else:
            price = prices if prices.__class__ is float else single(prices)
            if price - price == 0.0:  # finite
                self._last_price = self._marks = price
            self.equity_at_execution = self.cash + (self._shares * self._marks + 0.0)
        self._execution_equity.append(self.equity_at_execution)
        return self.equity_at_execution

    def on_fill(self, fill: FillEvent) -> None:
        """Apply a fill: shares, cash, commissions, average prices and realised PnL."""
        if not self.single:
            self._apply(fill)
            return
        # One symbol: the same arithmetic on floats (a sum or dot product of one entry is
        # the entry + 0.0, factory.backtest.scalar).
        quantity = fill._quantities
        commission = fill._commissions + 0.0
        self.cash -= commission
        self.commission_paid += commission
        self._bar_commission += commission
        if quantity == 0.0:
            return
        price = fill._prices
        old, average = self._shares, self._average_price
        new = old + quantity
        reducing = old * quantity < 0.0
        closed = sign(old) * minimum(abs(quantity), abs(old)) if reducing else 0.0
        self.realised_pnl += closed * (price - average) + 0.0
        if new == 0.0:
            self._average_price = 0.0
        elif not reducing:
            self._average_price = (old * average + quantity * price) / new
        elif old * new < 0.0:  # crossed through zero
            self._average_price = price
        self._shares = new
        self.cash -= quantity * price + 0.0
        slippage = fill._slippage + 0.0
        self.slippage_paid += slippage
        self._bar_slippage += slippage
        self._bar_traded += abs(quantity) * price + 0.0

    def _apply(self, fill: FillEvent) -> None:
        """`on_fill` on arrays."""
        quantities = fill._quantities
        commission = float(fill._commissions.sum())
        self.cash -= commission
        self.commission_paid += commission
        self._bar_commission += commission
        traded = quantities != 0
        if not traded.any():
            return
        prices = fill._prices if traded.all() else np.where(traded, fill._prices, 0.0)
        old, average = self._shares, self._average_price
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
        self._average_price = average
        self._shares = new
        notional = np.abs(quantities) @ prices
        self.cash -= float(quantities @ prices)
        slippage = float(fill._slippage.sum())
        self.slippage_paid += slippage
        self._bar_slippage += slippage
        self._bar_traded += float(notional)

    def on_market(self, market: MarketEvent) -> None:
        """Mark to the close and record the bar."""
        if not self.single:
            self._close_mark(market)
            return
        # One symbol: on floats (sums and dot products of one entry as in on_fill).
        close = market._close
        if close.__class__ is not float:
            close = single(close)
        if close - close == 0.0:  # finite
            self._last_price = self._marks = close
        shares, marks = self._shares, self._marks
        value = shares * marks
        self.equity = equity = self.cash + (value + 0.0)
        self._stamps.append(market.stamp)
        self._rows.extend((equity, self.equity_at_execution, self.cash, abs(value) / equity,
                           (value + 0.0) / equity, self._bar_commission, self._bar_slippage,
                           self._bar_traded / self.equity_at_execution, self.realised_pnl,
                           shares * (marks - self._average_price) + 0.0))
        self._weights.append(value / equity)
        self._bar_commission = self._bar_slippage = self._bar_traded = 0.0

    def _close_mark(self, market: MarketEvent) -> None:
        """`on_market` on arrays."""
        self._observe(market._close)
        values = self._shares * self._marks
        net = float(values.sum())
        self.equity = equity = self.cash + net
        unrealised = float(self._shares @ (self._marks - self._average_price))
        turnover = self._bar_traded / self.equity_at_execution
        self._stamps.append(market.stamp)
        self._rows.extend((equity, self.equity_at_execution, self.cash,
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
        rows = np.array(self._rows, dtype=np.float64).reshape(-1, len(HISTORY_COLUMNS))
        frame = {"ts": self._timeline()}
        frame |= {name: rows[:, k] for k, name in enumerate(HISTORY_COLUMNS)}
        return pl.DataFrame(frame)

    def _timeline(self) -> np.ndarray:
        """The bars marked so far, ``datetime64[us]``."""
        return np.array(self._stamps, dtype=np.int64).view("datetime64[us]")

    def weight_matrix(self) -> np.ndarray:
        """Weights at each close, shape ``(bars, symbols)``."""
        return column_matrix(self._weights, len(self.symbols))

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
        equity = np.array(self._execution_equity, dtype=np.float64)
        ts = self._timeline()
        if len(equity) < 3:
            return pl.DataFrame({"ts": ts[:0], "ret": equity[:0]})
        return pl.DataFrame({"ts": ts[:-2], "ret": equity[2:] / equity[1:-1] - 1.0})
