"""Multiple-testing statistics for honest model selection.

Picking the best of many backtests inflates its Sharpe ratio: even pure noise has a best
candidate. This module measures and corrects that selection bias:

* `probabilistic_sharpe` — the probability that the true Sharpe ratio exceeds a benchmark,
  given the sample length and the non-normality of the returns (Bailey & Lopez de Prado,
  2012, "The Sharpe Ratio Efficient Frontier", Journal of Risk 15(2)).
* `expected_max_sharpe` and `deflated_sharpe` — the benchmark that the best of ``N``
  unskilled trials would reach by luck, and the probabilistic Sharpe ratio against it
  (Bailey & Lopez de Prado, 2014, "The Deflated Sharpe Ratio: Correcting for Selection Bias,
  Backtest Overfitting and Non-Normality", Journal of Portfolio Management 40(5)).
* `pbo_cscv` — the probability of backtest overfitting by combinatorially symmetric
  cross-validation (Bailey, Borwein, Lopez de Prado & Zhu, 2017, "The Probability of Backtest
  Overfitting", Journal of Computational Finance 20(4)).

Conventions: every Sharpe ratio here is per bar, NOT annualised: the mean of the per-bar
returns over their sample standard deviation (``ddof=1``), as in the papers. A caller holding
annualised Sharpe ratios (`factory.evaluation.metrics.trading_metrics`) converts them with
`annual_to_per_bar`, that is divides them by ``sqrt(periods_per_year)``, and divides the
variance of annualised trial Sharpe ratios by ``periods_per_year``. Skewness is the third
standardised moment and kurtosis the fourth, NOT excess kurtosis: a normal distribution has
skewness 0 and kurtosis 3 (``scipy.stats.kurtosis(x, fisher=False)``).
"""

from dataclasses import dataclass
from itertools import combinations

import numpy as np
from scipy.special import ndtr, ndtri

SHARPE = "sharpe"
MEAN = "mean"
_ZERO_STD = 1e-12  # as in factory.evaluation.metrics: a smaller std gives a Sharpe of 0
_CHUNK_CELLS = 1 << 20  # combinations x candidates evaluated at once in pbo_cscv


def annual_to_per_bar(sharpe: np.ndarray | float, periods_per_year: float) -> np.ndarray | float:
    """Per-bar Sharpe ratio from an annualised one: ``sharpe / sqrt(periods_per_year)``.

    Parameters
    ----------
    sharpe : array_like or float
        Annualised Sharpe ratio(s).
    periods_per_year : float
        Bars per year of the symbol's stored bar frequency, the factor they were annualised
        with.

    Returns
    -------
    numpy.ndarray or float
        Per-bar Sharpe ratio(s), the unit every other function of this module expects.

    Raises
    ------
    ValueError
        If ``periods_per_year`` is not positive.
    """
    if not periods_per_year > 0:
        raise ValueError(f"periods_per_year must be positive, got {periods_per_year}")
    return np.asarray(sharpe, dtype=np.float64)[()] / np.sqrt(periods_per_year)


def probabilistic_sharpe(
    sharpe: np.ndarray | float,
    n_obs: np.ndarray | float,
    skew: np.ndarray | float,
    kurtosis: np.ndarray | float,
    benchmark: np.ndarray | float = 0.0,
) -> np.ndarray:
    """Probabilistic Sharpe ratio (PSR): the probability that the true Sharpe beats a benchmark.

    Bailey & Lopez de Prado (2012), "The Sharpe Ratio Efficient Frontier"::

        PSR(SR*) = Phi( (SR - SR*) * sqrt(T - 1)
                        / sqrt(1 - skew * SR + (kurtosis - 1) / 4 * SR**2) )

    with ``Phi`` the standard normal CDF. The denominator is the standard error of the
    estimated Sharpe ratio under non-normal i.i.d. returns (Mertens, 2002): negative skewness
    and fat tails widen it and lower the PSR.

    Parameters
    ----------
    sharpe : array_like
        Estimated Sharpe ratio ``SR``, per bar (not annualised).
    n_obs : array_like
        Number of returns ``T`` behind each estimate.
    skew : array_like
        Skewness of the returns.
    kurtosis : array_like
        Kurtosis of the returns, NOT excess (a normal distribution has 3).
    benchmark : array_like
        Benchmark Sharpe ratio ``SR*``, per bar; 0 asks whether the strategy has any skill.

    Returns
    -------
    numpy.ndarray
        PSR in [0, 1] with the broadcast shape of the inputs (a NumPy scalar for scalar
        inputs); NaN where an input is NaN, ``T < 2``, or the variance term
        ``1 - skew * SR + (kurtosis - 1) / 4 * SR**2`` is not positive (impossible for moments
        of a real sample, since kurtosis >= 1 + skew**2 makes it a square).
    """
    sr, t, g3, g4, sr0 = np.broadcast_arrays(
        *(np.asarray(x, dtype=np.float64) for x in (sharpe, n_obs, skew, kurtosis, benchmark))
    )
    variance = 1.0 - g3 * sr + (g4 - 1.0) / 4.0 * sr**2
    valid = (t >= 2) & (variance > 0)  # False where NaN
    z = np.full(sr.shape, np.nan)
    z[valid] = (sr[valid] - sr0[valid]) * np.sqrt(t[valid] - 1.0) / np.sqrt(variance[valid])
    return ndtr(z)


def expected_max_sharpe(
    n_trials: np.ndarray | int, trials_sharpe_variance: np.ndarray | float
) -> np.ndarray | float:
    """Expected maximum Sharpe ratio of ``N`` unskilled trials (the false strategy theorem).

    Bailey & Lopez de Prado (2014), "The Deflated Sharpe Ratio", the benchmark ``SR0`` of
    the DSR::

        E[max SR] = sqrt(V) * ((1 - gamma) * Phi^-1(1 - 1/N) + gamma * Phi^-1(1 - 1/(N e)))

    with ``gamma`` the Euler-Mascheroni constant, ``Phi^-1`` the standard normal quantile and
    ``V`` the variance of the trials' Sharpe ratios. It is the Sharpe ratio that the best of
    ``N`` independent trials reaches with no skill at all (true Sharpe 0 for each).

    Parameters
    ----------
    n_trials : array_like of int
        Number of independent trials ``N`` behind the selection, every one ever run, not
        only those kept.
    trials_sharpe_variance : array_like of float
        Variance ``V`` across trials of their Sharpe ratios, per bar (the variance of
        annualised Sharpe ratios divided by ``periods_per_year``).

    Returns
    -------
    numpy.ndarray or float
        Expected maximum per-bar Sharpe ratio, a float for scalar inputs. One trial has no
        selection bias: ``N = 1`` gives exactly 0 whatever ``V`` (even NaN, the sample
        variance of one number).

    Raises
    ------
    ValueError
        If an ``N`` is not an integer >= 1 or a variance is negative.
    """
    n = np.asarray(n_trials, dtype=np.float64)
    v = np.asarray(trials_sharpe_variance, dtype=np.float64)
    if not np.all(n >= 1) or np.any(n != np.floor(n)):
        raise ValueError(f"n_trials must be integers >= 1, got {n_trials}")
    if np.any(v < 0):
        raise ValueError(f"trials_sharpe_variance must be non-negative, got {v}")
    many = np.maximum(n, 2.0)  # the quantiles diverge at N = 1, which is 0 below
    z = (1.0 - np.euler_gamma) * ndtri(1.0 - 1.0 / many) + np.euler_gamma * ndtri(
        1.0 - 1.0 / (many * np.e)
    )
    out = np.where(n == 1, 0.0, np.sqrt(v) * z)
    return float(out) if out.ndim == 0 else out


def deflated_sharpe(
    sharpe: np.ndarray | float,
    n_obs: np.ndarray | float,
    skew: np.ndarray | float,
    kurtosis: np.ndarray | float,
    n_trials: np.ndarray | int,
    trials_sharpe_variance: np.ndarray | float,
) -> np.ndarray:
    """Deflated Sharpe ratio (DSR): the PSR against the best Sharpe that luck alone gives.

    Bailey & Lopez de Prado (2014), "The Deflated Sharpe Ratio"::

        DSR = PSR(SR0),  SR0 = expected_max_sharpe(N, V)

    A DSR above 0.95 says the selected strategy's Sharpe is significant at 5% after
    accounting for the ``N`` trials it was selected from, the sample length and non-normal
    returns.

    Parameters
    ----------
    sharpe, n_obs, skew, kurtosis : array_like
        As in `probabilistic_sharpe`: per-bar Sharpe ratio, number of returns, skewness and
        non-excess kurtosis of the selected strategy's returns.
    n_trials, trials_sharpe_variance : array_like
        As in `expected_max_sharpe`: number of trials and variance of their per-bar Sharpe
        ratios. Divide annualised Sharpe ratios by ``sqrt(periods_per_year)`` and their
        variance by ``periods_per_year`` first.

    Returns
    -------
    numpy.ndarray
        DSR in [0, 1], NaN under the same conditions as `probabilistic_sharpe`.

    Raises
    ------
    ValueError
        As `expected_max_sharpe`.
    """
    benchmark = expected_max_sharpe(n_trials, trials_sharpe_variance)
    return probabilistic_sharpe(sharpe, n_obs, skew, kurtosis, benchmark=benchmark)


@dataclass(frozen=True, eq=False)
class PBOResult:
    """Outcome of `pbo_cscv`.

    Attributes
    ----------
    pbo : float
        Probability of backtest overfitting: share of combinations whose logit is <= 0,
        i.e. whose in-sample best candidate ranks in the bottom half out of sample.
    logits : numpy.ndarray
        One logit ``ln(w / (1 - w))`` per combination (read-only), in the order of
        ``itertools.combinations(range(n_partitions), n_partitions // 2)`` over the
        in-sample block indices (block 0 the oldest).
    probability_of_loss : float
        Share of combinations where the in-sample best candidate's out-of-sample metric is
        below 0 (it loses money out of sample).
    n_combinations : int
        ``C(n_partitions, n_partitions / 2)``.
    n_partitions : int
        Number of blocks ``S``.
    n_candidates : int
        Number of candidates ``N``.
    n_bars_used : int
        Rows used: the rows without NaN, less the oldest ``rows mod S``.
    """

    pbo: float
    logits: np.ndarray
    probability_of_loss: float
    n_combinations: int
    n_partitions: int
    n_candidates: int
    n_bars_used: int

    @property
    def median_logit(self) -> float:
        """Median logit: above 0 when the in-sample best typically stays above median."""
        return float(np.median(self.logits))


def pbo_cscv(returns: np.ndarray, n_partitions: int = 16, metric: str = SHARPE) -> PBOResult:
    """Probability of backtest overfitting by combinatorially symmetric cross-validation.

    Bailey, Borwein, Lopez de Prado & Zhu (2017), "The Probability of Backtest Overfitting",
    section 2. The rows are split into ``S`` contiguous blocks of equal size; for each of the
    ``C(S, S/2)`` ways to choose ``S/2`` blocks as the in-sample set (the others, in the same
    order, are out of sample):

    1. the in-sample best candidate ``n*`` is the one with the highest metric (ties: the
       lowest column index);
    2. its relative rank out of sample is ``w = rank / (N + 1)``, ranks 1 (worst) to ``N``
       (best), tied values sharing their average rank;
    3. its logit is ``lambda = ln(w / (1 - w))``.

    ``PBO = #{lambda <= 0} / C(S, S/2)``: the probability that the configuration picked
    in-sample is no better than the median out of sample. Near 0 means the selection carries
    over; near 0.5 or above means it is luck (pure noise gives about 0.5).

    Parameters
    ----------
    returns : numpy.ndarray
        ``(T, N)`` per-bar returns, one column per candidate, rows in time order. Every
        candidate must be compared on the same bars, so a row with a NaN in any column is
        dropped (e.g. the warm-up of a model with a longer window); if that leaves fewer
        than ``2 * S`` rows, a ValueError says so. Then the oldest ``rows mod S`` rows are
        dropped so the blocks are of equal size.
    n_partitions : int
        Number of blocks ``S``, even and >= 2. The paper uses 16 (12,870 combinations).
    metric : {"sharpe", "mean"}
        Performance of a candidate on a set of blocks: the per-bar Sharpe ratio (mean over
        sample standard deviation, ``ddof=1``; 0 when the standard deviation is below 1e-12)
        or the mean return.

    Returns
    -------
    PBOResult
        PBO, the logits, the probability of loss and the sizes used.

    Raises
    ------
    ValueError
        If ``returns`` is not 2-D, has fewer than 2 candidates or an infinite value,
        ``n_partitions`` is odd or < 2, fewer than 2 rows per block remain, or ``metric`` is
        unknown.
    """
    r = np.asarray(returns, dtype=np.float64)
    if r.ndim != 2:
        raise ValueError(f"returns must be a 2-D (bars x candidates) array, got shape {r.shape}")
    if r.shape[1] < 2:
        raise ValueError(f"pbo_cscv needs at least 2 candidates (columns), got {r.shape[1]}")
    if np.isinf(r).any():
        rows = np.flatnonzero(np.isinf(r).any(axis=1)).tolist()
        raise ValueError(f"returns contain infinite values in rows {rows[:10]}")
    if n_partitions < 2 or n_partitions % 2:
        raise ValueError(f"n_partitions must be an even number >= 2, got {n_partitions}")
    if metric not in (SHARPE, MEAN):
        raise ValueError(f"metric must be {SHARPE!r} or {MEAN!r}, got {metric!r}")
    complete = r[~np.isnan(r).any(axis=1)]
    block = complete.shape[0] // n_partitions
    if block < 2:
        raise ValueError(
            f"pbo_cscv needs at least 2 rows per block: {complete.shape[0]} of {r.shape[0]} "
            f"rows have no NaN in any candidate, fewer than 2 x {n_partitions} partitions"
        )
    used = complete[complete.shape[0] - block * n_partitions :]
    logits, losses = _cscv_logits(used, n_partitions, block, metric)
    logits.flags.writeable = False
    return PBOResult(
        pbo=float(np.mean(logits <= 0)),
        logits=logits,
        probability_of_loss=float(np.mean(losses)),
        n_combinations=logits.size,
        n_partitions=n_partitions,
        n_candidates=used.shape[1],
        n_bars_used=used.shape[0],
    )


def _cscv_logits(
    r: np.ndarray, n_partitions: int, block: int, metric: str
) -> tuple[np.ndarray, np.ndarray]:
    """Logit of the in-sample best's out-of-sample rank, and whether it lost, per combination.

    Each candidate's returns are centred on their full-sample mean before the per-block sums
    and sums of squares are taken, so the variance ``(q - s**2 / n) / (n - 1)`` of a set of
    blocks does not lose precision to cancellation.
    """
    centre = r.mean(axis=0)
    blocks = (r - centre).reshape(n_partitions, block, r.shape[1])
    sums, squares = blocks.sum(axis=1), (blocks**2).sum(axis=1)
    half = n_partitions // 2
    combos = list(combinations(range(n_partitions), half))
    chosen = np.zeros((len(combos), n_partitions))
    for i, combo in enumerate(combos):
        chosen[i, list(combo)] = 1.0
    n_half = half * block
    chunk = max(1, _CHUNK_CELLS // r.shape[1])
    logits, losses = [], []
    for start in range(0, len(combos), chunk):
        part = chosen[start : start + chunk]
        in_s, in_q = part @ sums, part @ squares
        in_metric = _metric(centre, in_s, in_q, n_half, metric)
        out_metric = _metric(centre, sums.sum(0) - in_s, squares.sum(0) - in_q, n_half, metric)
        best = out_metric[np.arange(part.shape[0]), np.argmax(in_metric, axis=1)][:, None]
        rank = (out_metric < best).sum(axis=1) + ((out_metric == best).sum(axis=1) + 1) / 2
        w = rank / (r.shape[1] + 1)
        logits.append(np.log(w / (1.0 - w)))
        losses.append(best[:, 0] < 0)
    return np.concatenate(logits), np.concatenate(losses)


def _metric(
    centre: np.ndarray, sums: np.ndarray, squares: np.ndarray, n: int, metric: str
) -> np.ndarray:
    """Mean or Sharpe of ``n`` returns from sums and sums of squares of centred returns."""
    mean = centre + sums / n
    if metric == MEAN:
        return mean
    std = np.sqrt(np.maximum(squares - sums**2 / n, 0.0) / (n - 1))
    return np.divide(mean, std, out=np.zeros_like(mean), where=std > _ZERO_STD)
