"""Choose the stages: gate, score, diversify, allocate. A pure function, no I/O.

The candidates' figures are out-of-sample and after costs: the walk-forward record joined by
the live (paper) record of the version (``factory.evaluation.candidates``). Every candidate
leaves with a target stage and a reason, so the audit log can say why a model moved:

- **Production**: cleared every gate, and chosen: the strongest of each group of correlated
  configurations, then the best ``top_k`` of those by composite score.
- **Staging**: the next ``staging_k`` by composite score, kept in evaluation, with the gate
  each failed.
- **Archived**: a model that was in Production or Staging and is neither now (demoted).
- **None**: never staged and not chosen now; stays as it is.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import polars as pl

from factory.config import SelectionConfig
from factory.evaluation.allocation import allocate
from factory.evaluation.rating import composite_score, metric_ranks_json
from factory.stages import ARCHIVED, NONE, PRODUCTION, STAGING

_MIN_COMMON_OBS = 3


@dataclass(frozen=True)
class SelectionResult:
    """Outcome of `select`.

    Attributes
    ----------
    production : list of str
        Models for Production, best score first.
    staging : list of str
        Models for Staging, in order.
    table : polars.DataFrame
        One row per candidate: ``model_name``, ``score``, ``rank`` (by score, 1 best),
        ``metric_ranks`` (JSON: the scaled rank on each weighted metric behind the score),
        ``stage_from``, ``stage_to``, ``gates_failed`` ("" when it cleared every gate),
        ``reason``, ``max_corr_with_chosen`` and ``weight`` (allocation, 0 outside
        Production). Sorted by target stage (Production, Staging, then the rest), then rank.
    headline : str
        One sentence for the CLI, the leaderboard and the Prefect artifact; says plainly when
        nothing clears the gates and which gate stops the best candidate.
    """

    production: list[str]
    staging: list[str]
    table: pl.DataFrame
    headline: str


def select(candidates: pl.DataFrame, returns: Mapping[str, np.ndarray],
           policy: SelectionConfig) -> SelectionResult:
    """Gate, score, diversify and stage candidate models.

    1. Gates (`gate_failures`): enough out-of-sample bars, deflated Sharpe, optionally
       beating buy-and-hold, and a live record that does not show a significant loss.
    2. Every candidate is scored with `composite_score` (ranks over all candidates).
    3. Diversify: walk the gate-clearing candidates from the highest Sharpe down and set
       aside any whose returns correlate above ``max_correlation`` with a stronger one kept,
       so each correlated group keeps its strongest member.
    4. Production: the kept ones by score, at most ``top_k``; below ``min_k``, filled from the
       gate-clearing ones set aside for correlation. A model that failed a gate never is.
    5. Staging: the next ``staging_k`` by score (gate-clearing ones first); the rest are
       Archived when they were staged, else left alone. Production gets allocation weights.

    The result depends only on the input's content, not its row order.

    Parameters
    ----------
    candidates : polars.DataFrame
        One row per model: unique ``model_name``, ``stage`` (current), ``sharpe``, ``n_obs``,
        ``deflated_sharpe``, ``n_trials``, ``rolling_sharpe_30d``, every weighted column of
        the policy, and as the gates need ``buy_and_hold_sharpe``, ``live_n_obs``,
        ``live_psr``.
    returns : Mapping of str to numpy.ndarray
        ``model_name`` to its return series, all aligned on the same bars, NaN where absent.
    policy : SelectionConfig
        conf/selection.yaml.

    Returns
    -------
    SelectionResult

    Raises
    ------
    ValueError
        On duplicate names, missing columns or return series.
    """
    _check(candidates, returns)
    frame = candidates.sort("model_name")
    series = {name: np.asarray(returns[name], dtype=np.float64) for name in frame["model_name"]}
    failures = gate_failures(frame, policy)
    frame = frame.with_columns(composite_score(frame, policy.weights),
                               metric_ranks_json(frame, policy.weights),
                               pl.Series("gates_failed", failures, dtype=pl.String))
    frame = frame.sort(["score", "model_name"], descending=[True, False]).with_row_index(
        "rank", offset=1)
    reasons: dict[str, str] = {}
    cleared = frame.filter(pl.col("gates_failed") == "")
    by_strength = cleared.sort(["sharpe", "model_name"], descending=[True, False], nulls_last=True)
    kept, set_aside = [], []
    for name in by_strength["model_name"]:
        corr, other = _most_correlated(series, name, kept)
        if corr > policy.max_correlation:
            reasons[name] = f"correlated {corr:.2f} with {other}, which is stronger"
            set_aside.append(name)
        else:
            kept.append(name)
    in_score_order = [n for n in frame["model_name"] if n in set(kept)]
    production = in_score_order[:policy.top_k]
    for name in in_score_order[policy.top_k:]:
        reasons[name] = f"below top_k ({policy.top_k})"
    fill = [n for n in frame["model_name"] if n in set(set_aside)]
    production += fill[:max(policy.min_k - len(production), 0)]
    production = [n for n in frame["model_name"] if n in set(production)]
    rest = frame.filter(~pl.col("model_name").is_in(production)).sort(
        [pl.col("gates_failed") != "", "rank"])
    staging = rest["model_name"].head(policy.staging_k).to_list()
    weights = allocate(frame.filter(pl.col("model_name").is_in(production)), policy.allocation)
    table = _table(frame, series, production, staging, reasons, weights)
    return SelectionResult(production, staging, table, headline(table, policy))


def gate_failures(frame: pl.DataFrame, policy: SelectionConfig) -> list[str]:
    """Per candidate, the gates it fails joined by "; " ("" when it clears all).

    Each failure reads as the rule with the figure, e.g. ``"deflated Sharpe 0.54 < 0.95
    (N=33 trials)"``, so a reason never needs the policy beside it to be understood.
    """
    gates = policy.gates
    out = []
    for row in frame.iter_rows(named=True):
        failed = []
        n_obs = row["n_obs"]
        if n_obs is None or not n_obs >= gates.min_obs:
            failed.append(f"out-of-sample bars {_fmt(n_obs, '.0f')} < {gates.min_obs}")
        if gates.min_deflated_sharpe is not None:
            dsr = row["deflated_sharpe"]
            if dsr is None or not dsr >= gates.min_deflated_sharpe:
                failed.append(f"deflated Sharpe {_fmt(dsr, '.2f')} < {gates.min_deflated_sharpe}"
                              f" (N={row['n_trials']} trials)")
        if gates.beat_buy_and_hold:
            mine, held = row.get("walk_forward_sharpe", row["sharpe"]), row["buy_and_hold_sharpe"]
            if mine is None or held is None or not mine > held:
                failed.append(f"Sharpe {_fmt(mine, '.2f')} <= buy and hold {_fmt(held, '.2f')}")
        if gates.min_live_psr is not None and (row.get("live_n_obs") or 0) >= gates.min_live_bars:
            psr = row["live_psr"]
            if psr is None or not psr >= gates.min_live_psr:
                failed.append(f"live record loses: probabilistic Sharpe {_fmt(psr, '.3f')} < "
                              f"{gates.min_live_psr} over {row['live_n_obs']:.0f} live bars")
        out.append("; ".join(failed))
    return out


def headline(table: pl.DataFrame, policy: SelectionConfig) -> str:
    """One sentence on the outcome: how many were promoted, or why none was."""
    n_prod = table.filter(pl.col("stage_to") == PRODUCTION).height
    if n_prod:
        return (f"{n_prod} of {table.height} configurations in Production: each cleared every "
                f"gate (deflated Sharpe >= {policy.gates.min_deflated_sharpe})")
    if table.is_empty():
        return "no candidates"
    threshold = policy.gates.min_deflated_sharpe
    dsr_failures = table.filter(pl.col("gates_failed").str.contains("deflated Sharpe"))
    if threshold is not None and dsr_failures.height == table.height:
        best = table["deflated_sharpe"].fill_nan(None).max()
        return (f"no configuration clears the deflated-Sharpe gate: best {_fmt(best, '.2f')} < "
                f"{threshold} (N={table['n_trials'].max()} trials); nothing promoted")
    first = table.sort("rank").row(0, named=True)
    return (f"no configuration clears every gate (the best scored, {first['model_name']}, "
            f"fails: {first['gates_failed']}); nothing promoted")


def _table(frame: pl.DataFrame, series: dict[str, np.ndarray], production: list[str],
           staging: list[str], reasons: dict[str, str], weights: dict[str, float]
           ) -> pl.DataFrame:
    """The per-candidate outcome table of `select`."""
    rows = []
    for row in frame.iter_rows(named=True):
        name, stage_from, failed = row["model_name"], row["stage"], row["gates_failed"]
        why = f"failed: {failed}" if failed else reasons.get(name, "")
        if name in production:
            stage_to = PRODUCTION
            dsr = _fmt(row["deflated_sharpe"], ".2f")
            why = (f"rank {row['rank']}, score {row['score']:.2f}, Sharpe "
                   f"{_fmt(row['sharpe'], '.2f')}, deflated Sharpe {dsr}"
                   + (f" (min_k fill; {reasons[name]})" if name in reasons else ""))
        elif name in staging:
            stage_to = STAGING
        elif stage_from in (PRODUCTION, STAGING):
            stage_to = ARCHIVED
            why = why or f"below staging_k, rank {row['rank']}"
        else:
            stage_to = stage_from if stage_from == ARCHIVED else NONE
            why = why or f"not staged, rank {row['rank']}"
        rows.append({"model_name": name, "stage_to": stage_to, "reason": why,
                     "weight": weights.get(name, 0.0),
                     "max_corr_with_chosen": _most_correlated(series, name, production)[0]})
    order = {PRODUCTION: 0, STAGING: 1, ARCHIVED: 2, NONE: 3}
    outcome = pl.DataFrame(rows, schema={"model_name": pl.String, "stage_to": pl.String,
                                         "reason": pl.String, "weight": pl.Float64,
                                         "max_corr_with_chosen": pl.Float64})
    keep = [c for c in ("model_name", "score", "rank", "metric_ranks", "stage", "gates_failed",
                        "sharpe", "deflated_sharpe", "n_trials") if c in frame.columns]
    return (frame.select(keep).rename({"stage": "stage_from"})
            .join(outcome.with_columns(pl.col("max_corr_with_chosen").fill_nan(None)),
                  on="model_name")
            .with_columns(pl.col("rank").cast(pl.Int64))
            .sort([pl.col("stage_to").replace_strict(order, return_dtype=pl.Int8), "rank"]))


def _check(candidates: pl.DataFrame, returns: Mapping[str, np.ndarray]) -> None:
    """Raise ValueError naming the first problem with the inputs of `select`."""
    needed = {"model_name", "stage", "sharpe", "n_obs", "deflated_sharpe", "n_trials",
              "rolling_sharpe_30d"}
    missing = sorted(needed - set(candidates.columns))
    if missing:
        raise ValueError(f"candidates lack the columns {missing}")
    duplicated = candidates.filter(pl.col("model_name").is_duplicated())["model_name"]
    if duplicated.len():
        raise ValueError(f"model_name must be unique; repeated: {sorted(set(duplicated))}")
    absent = sorted(set(candidates["model_name"]) - set(returns))
    if absent:
        raise ValueError(f"no return series for candidates {absent}")
    lengths = {len(returns[name]) for name in candidates["model_name"]}
    if len(lengths) > 1:
        raise ValueError(f"return series must share one length, got lengths {sorted(lengths)}")


def _fmt(value: float | None, spec: str) -> str:
    """A figure for a reason string; "n/a" when missing."""
    return "n/a" if value is None or not np.isfinite(value) else format(value, spec)


def _most_correlated(series: dict[str, np.ndarray], name: str, others: list[str]
                     ) -> tuple[float, str | None]:
    """Highest defined return correlation of ``name`` with ``others`` (itself excluded).

    ``(nan, None)`` when none is defined: fewer than 3 common finite bars or a constant
    series; an undefined correlation never blocks.
    """
    best, best_name = np.nan, None
    for other in others:
        if other == name:
            continue
        corr = _correlation(series[name], series[other])
        if not np.isnan(corr) and (best_name is None or corr > best):
            best, best_name = corr, other
    return best, best_name


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation on the bars where both are finite; NaN when undefined."""
    both = np.isfinite(a) & np.isfinite(b)
    if both.sum() < _MIN_COMMON_OBS:
        return np.nan
    x = a[both] - a[both].mean()
    y = b[both] - b[both].mean()
    denom = np.sqrt(np.dot(x, x) * np.dot(y, y))
    return float(np.clip(np.dot(x, y) / denom, -1.0, 1.0)) if denom > 0 else np.nan
