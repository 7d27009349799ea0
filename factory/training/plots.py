"""The equity and drawdown picture logged with every run."""

from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
import polars as pl  # noqa: E402

from factory.evaluation.metrics import equity_and_drawdown  # noqa: E402


def equity_drawdown_png(portfolio: pl.DataFrame, path: Path, title: str) -> Path:
    """Plot out-of-sample equity (after costs) above its drawdown; write a PNG to ``path``."""
    equity, drawdown = equity_and_drawdown(portfolio["ret"].to_numpy())
    ts = portfolio["ts"].to_numpy()
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 5), sharex=True,
                                      gridspec_kw={"height_ratios": [3, 1]})
    top.plot(ts, equity, lw=1.0)
    top.set_ylabel("equity (OOS, after costs)")
    top.set_title(textwrap.fill(title, width=110), fontsize=8)
    bottom.fill_between(ts, -drawdown, 0, color="tab:red", alpha=0.5)
    bottom.set_ylabel("drawdown")
    # Fixed margins: tight_layout measured a third of the picture's cost, once per model.
    fig.subplots_adjust(left=0.09, right=0.98, top=0.9, bottom=0.08, hspace=0.08)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path
