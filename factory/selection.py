"""Choose the production set: gate, score, diversify. A pure function, no I/O.

The candidates' metrics come from out-of-sample strategy returns (timing conventions in
``factory.training.splits``: decide at ``t``'s close, trade at ``t + 1``, earn
``position_t * label_t`` net of turnover costs). Every candidate leaves with a reason, so the
audit log can say why a model is or is not in production.
"""

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import polars as pl

from factory.evaluation.rating import composite_score

_MIN_COMMON_OBS = 3


@dataclass(frozen=True)
class SelectionResult:
    """Outcome of `select`.

    Attributes
    ----------
    chosen : list of str
        Chosen model names, best rank first.
    table : polars.DataFrame
        One row per candidate: ``model_name``, ``score`` and ``rank`` (null when gated),
        ``chosen``, ``reason`` and ``max_corr_with_chosen`` (highest return correlation with a
        chosen model other than itself; null when none is defined). Sorted by rank, gated rows
        last, ties by name.
    """

    chosen: list[str]
    table: pl.DataFrame


def select(
    candidates: pl.DataFrame,
    returns: Mapping[str, np.ndarray | pl.Series],
    *,
    weights: Mapping[str, float],
    top_k: int,
    min_k: int,
    max_correlation: float,
    min_sharpe: float | None,
    min_obs: int,
) -> SelectionResult:
    """Gate, score and greedily diversify candidate models.

    1. Gate: a candidate needs ``n_obs >= min_obs`` (the ``n_obs`` column when present, else
       the count of finite returns) and, when ``min_sharpe`` is given, ``sharpe >= min_sharpe``
       (a NaN Sharpe fails).
    2. Score the survivors with `composite_score` and rank them (ties by ``model_name``).
    3. Walk by rank and accept a candidate if its return correlation with every accepted one is
       at most ``max_correlation``, until ``top_k`` are accepted. Correlations use the bars
       where both series are finite; with fewer than 3 such bars, or a constant series, the
       correlation is undefined and does not block.
    4. If fewer than ``min_k`` were accepted, fill up from the candidates rejected for
       correlation, best rank first. Fewer than ``min_k`` survivors give a smaller set.

    The result depends only on the input's content, not its row order, so the same input
    always gives the same output.

    Parameters
    ----------
    candidates : polars.DataFrame
        One row per model: unique ``model_name``, ``sharpe``, and every column in ``weights``.
    returns : Mapping of str to array-like
        ``model_name`` to its out-of-sample strategy returns, all the same length and aligned
        on the same bars; NaN where a model has no prediction.
    weights : Mapping of str to float
        Metric weights for `composite_score`.
    top_k : int
        Most models to choose, at least 1.
    min_k : int
        Fewest models to choose when enough survive the gate, between 0 and ``top_k``.
    max_correlation : float
        Highest return correlation allowed with an already accepted model, in [-1, 1].
    min_sharpe : float or None
        Sharpe gate; None disables it.
    min_obs : int
        Fewest out-of-sample observations, at least 0.

    Returns
    -------
    SelectionResult

    Raises
    ------
    ValueError
        On out-of-range arguments, duplicate or missing names, or return series of unequal
        lengths.
    """
    _check_arguments(candidates, returns, top_k, min_k, max_correlation, min_obs)
    frame = candidates.sort("model_name")
    series = {name: _as_array(returns[name]) for name in frame["model_name"]}
    reasons = _gate(frame, series, min_sharpe, min_obs)
    eligible = frame.filter(~pl.col("model_name").is_in(list(reasons)))
    ranked = (
        eligible.select("model_name")
        .with_columns(composite_score(eligible, weights))
        .sort(["score", "model_name"], descending=[True, False])
        .with_row_index("rank", offset=1)
    )
    accepted: list[str] = []
    too_correlated: list[str] = []
    for name in ranked["model_name"]:
        if len(accepted) >= top_k:
            reasons[name] = "below top_k"
            continue
        corr, other = _most_correlated(series, name, accepted)
        if corr > max_correlation:
            reasons[name] = f"correlated {corr:.2f} with {other}"
            too_correlated.append(name)
        else:
            accepted.append(name)
    fill = too_correlated[: max(min_k - len(accepted), 0)]
    chosen_set = set(accepted + fill)
    chosen = [name for name in ranked["model_name"] if name in chosen_set]
    for row in ranked.filter(pl.col("model_name").is_in(chosen)).iter_rows(named=True):
        note = f" (min_k fill; {reasons[row['model_name']]})" if row["model_name"] in fill else ""
        reasons[row["model_name"]] = f"selected: rank {row['rank']}, score {row['score']:.2f}{note}"
    table = (
        frame.select("model_name")
        .join(ranked, on="model_name", how="left")
        .with_columns(
            pl.col("rank").cast(pl.Int64),
            pl.col("model_name").is_in(chosen).alias("chosen"),
            pl.col("model_name").replace_strict(reasons, return_dtype=pl.String).alias("reason"),
            pl.Series(
                "max_corr_with_chosen",
                [_most_correlated(series, name, chosen)[0] for name in frame["model_name"]],
                dtype=pl.Float64,
            ).fill_nan(None),
        )
        .sort(["rank", "model_name"], nulls_last=True)
        .select("model_name", "score", "rank", "chosen", "reason", "max_corr_with_chosen")
    )
    return SelectionResult(chosen=chosen, table=table)


def _check_arguments(
    candidates: pl.DataFrame,
    returns: Mapping[str, np.ndarray | pl.Series],
    top_k: int,
    min_k: int,
    max_correlation: float,
    min_obs: int,
) -> None:
    """Raise ValueError naming the first problem with the inputs of `select`."""
    if "model_name" not in candidates.columns:
        raise ValueError(f"candidates need a model_name column, got {candidates.columns}")
    duplicated = candidates.filter(pl.col("model_name").is_duplicated())["model_name"]
    if duplicated.len():
        raise ValueError(f"model_name must be unique; repeated: {sorted(set(duplicated))}")
    missing = sorted(set(candidates["model_name"]) - set(returns))
    if missing:
        raise ValueError(f"no return series for candidates {missing}")
    lengths = {len(returns[name]) for name in candidates["model_name"]}
    if len(lengths) > 1:
        raise ValueError(f"return series must share one length, got lengths {sorted(lengths)}")
    if top_k < 1 or not 0 <= min_k <= top_k:
        raise ValueError(f"need top_k >= 1 and 0 <= min_k <= top_k, got {top_k=} {min_k=}")
    if not -1 <= max_correlation <= 1:
        raise ValueError(f"max_correlation must be in [-1, 1], got {max_correlation}")
    if min_obs < 0:
        raise ValueError(f"min_obs must be >= 0, got {min_obs}")


def _as_array(values: np.ndarray | pl.Series) -> np.ndarray:
    """Float numpy copy of a return series; nulls become NaN."""
    if isinstance(values, pl.Series):
        values = values.cast(pl.Float64).fill_null(np.nan).to_numpy()
    return np.asarray(values, dtype=np.float64)


def _gate(
    frame: pl.DataFrame,
    series: dict[str, np.ndarray],
    min_sharpe: float | None,
    min_obs: int,
) -> dict[str, str]:
    """Reasons for every candidate that fails a gate, keyed by name."""
    reasons = {}
    for row in frame.iter_rows(named=True):
        name = row["model_name"]
        n_obs = row["n_obs"] if "n_obs" in row else int(np.isfinite(series[name]).sum())
        failures = []
        if n_obs is None or not n_obs >= min_obs:
            failures.append(f"n_obs {_short(n_obs)} < {min_obs}")
        if min_sharpe is not None:
            sharpe = row["sharpe"]
            if sharpe is None or not sharpe >= min_sharpe:
                failures.append(f"sharpe {_short(sharpe)} < {_short(min_sharpe)}")
        if failures:
            reasons[name] = "gated: " + "; ".join(failures)
    return reasons


def _short(value: float | None) -> str:
    """Compact, stable rendering of a metric for a reason string."""
    return "null" if value is None else str(round(float(value), 4))


def _most_correlated(
    series: dict[str, np.ndarray], name: str, others: list[str]
) -> tuple[float, str | None]:
    """Highest defined correlation of ``name``'s returns with ``others`` (itself excluded).

    Returns ``(nan, None)`` when no correlation is defined; ties keep the first of ``others``.
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
