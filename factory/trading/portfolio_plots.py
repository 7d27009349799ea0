"""The portfolio's picture: each asset's target weight through time."""

from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 - after the headless backend is chosen
import polars as pl  # noqa: E402


def weights_png(weights: pl.DataFrame, path: Path, title: str) -> Path:
    """Plot ``ts, symbol, weight`` as one line per asset; write a PNG to ``path``."""
    wide = weights.pivot(on="symbol", index="ts", values="weight").sort("ts")
    fig, axis = plt.subplots(figsize=(9, 4))
    for symbol in wide.columns[1:]:
        axis.plot(wide["ts"].to_numpy(), wide[symbol].to_numpy(), lw=0.8, label=symbol)
    axis.axhline(0.0, color="grey", lw=0.5)
    axis.set_ylabel("target weight")
    axis.set_title(textwrap.fill(title, width=110), fontsize=8)
    axis.legend(fontsize=7, ncol=min(len(wide.columns) - 1, 6))
    fig.subplots_adjust(left=0.09, right=0.98, top=0.9, bottom=0.1)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path
