"""The leaderboard: every candidate's figures with the selection's outcome, for people.

Every figure is out-of-sample and after costs (walk-forward, joined by the live record once
snapshots have scored new bars), with its config, spec id and lake version. ``model`` is the
registered name: ``models:/<model>@production`` loads a Production model. Rendered as
markdown (Prefect artifact), HTML and PNG (the MLflow selection run) and a terminal table.
"""

from __future__ import annotations

import html
import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
import polars as pl  # noqa: E402

from factory.selection import SelectionResult  # noqa: E402
from factory.stages import ARCHIVED, NONE, PRODUCTION, STAGING  # noqa: E402

COLUMNS = ("rank", "model_name", "stage_to", "stage_from", "sharpe", "deflated_sharpe",
           "n_trials", "gates_failed", "score", "weight", "walk_forward_sharpe", "live_sharpe",
           "live_n_obs", "buy_and_hold_sharpe", "max_drawdown", "win_rate", "n_obs", "psr",
           "config", "version", "spec_id", "lake_version", "symbols", "reason", "metric_ranks")
SHOWN = ("rank", "model_name", "stage_to", "sharpe", "deflated_sharpe", "gates_failed",
         "weight", "live_sharpe", "max_drawdown", "lake_version")
"""What the terminal and the markdown artifact show; HTML and CSV carry every column."""
HEADERS = {"model_name": "model", "stage_to": "stage", "stage_from": "was",
           "deflated_sharpe": "deflated sharpe", "gates_failed": "gate failed",
           "n_trials": "trials", "walk_forward_sharpe": "walk-forward sharpe",
           "live_sharpe": "live sharpe", "live_n_obs": "live bars",
           "buy_and_hold_sharpe": "buy&hold sharpe", "lake_version": "lake v"}
_COLOURS = {PRODUCTION: "#2a9d8f", STAGING: "#e9c46a", ARCHIVED: "#b0b0b0", NONE: "#d0d0d0"}


def leaderboard_table(candidates: pl.DataFrame, result: SelectionResult) -> pl.DataFrame:
    """Join the selection's outcome onto the candidates' figures, in stage then rank order."""
    outcome = result.table.select("model_name", "stage_from", "stage_to", "gates_failed",
                                  "score", "rank", "weight", "reason", "metric_ranks")
    joined = outcome.join(candidates.drop([c for c in outcome.columns if c != "model_name"],
                                          strict=False), on="model_name", how="left")
    return joined.select([c for c in COLUMNS if c in joined.columns])


def leaderboard_markdown(board: pl.DataFrame, headline: str) -> str:
    """The headline, then the leaderboard as a markdown table (the Prefect artifact)."""
    shown = [c for c in SHOWN if c in board.columns]
    header = "| " + " | ".join(HEADERS.get(c, c) for c in shown) + " |"
    rule = "|" + "---|" * len(shown)
    rows = ["| " + " | ".join(format_value(v) for v in row) + " |"
            for row in board.select(shown).iter_rows()]
    return "\n".join([f"**{headline}**", "", header, rule, *rows])


def leaderboard_html(board: pl.DataFrame, headline: str) -> str:
    """A standalone HTML page: headline, then every column of every candidate."""
    head = "".join(f"<th>{html.escape(HEADERS.get(c, c))}</th>" for c in board.columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(format_value(v))}</td>" for v in row) + "</tr>"
        for row in board.iter_rows())
    return ("<!doctype html><html><head><meta charset='utf-8'><title>Model Factory "
            "leaderboard</title><style>td,th{padding:2px 8px;border-bottom:1px solid #ddd;"
            "font:13px sans-serif;text-align:left}</style></head><body>"
            f"<h2>{html.escape(headline)}</h2><p>Out-of-sample, after costs.</p>"
            f"<table><tr>{head}</tr>{body}</table></body></html>")


def leaderboard_png(board: pl.DataFrame, path: Path, headline: str, shown: int = 30) -> Path:
    """Bars of each candidate's deflated Sharpe, coloured by stage (the best ``shown``)."""
    top = board.sort("rank", nulls_last=True).head(shown)
    names = top["model_name"].to_list()[::-1]
    values = top["deflated_sharpe"].fill_null(0.0).fill_nan(0.0).to_list()[::-1]
    colours = [_COLOURS.get(s, "#d0d0d0") for s in top["stage_to"].to_list()[::-1]]
    fig, ax = plt.subplots(figsize=(9, 1.5 + 0.28 * max(len(names), 1)))
    ax.barh(names, values, color=colours)
    ax.set_xlim(0, 1)
    ax.set_xlabel("deflated Sharpe ratio (N = every trial on the universe)")
    ax.set_title("\n".join(textwrap.wrap(headline, 90)), fontsize=9)
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in _COLOURS.values()]
    ax.legend(handles, list(_COLOURS), fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def format_value(value) -> str:
    """A cell: floats to 3 decimals, missing as blank."""
    if isinstance(value, float):
        return "" if value != value else f"{value:.3f}"
    return "" if value is None else str(value)

