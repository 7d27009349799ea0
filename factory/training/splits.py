"""Purged walk-forward folds and forward-return labels.

Timing conventions (the single source of truth for the whole project):

- A signal formed at bar ``t``'s close trades at bar ``t + 1``, at the execution price
  (the next close by default, or the next open).
- The label for bar ``t`` is the forward return from ``t + 1`` to ``t + 2`` at the execution
  price: ``label_t = p[t + 2] / p[t + 1] - 1``. More generally, with ``horizon`` ``h``,
  ``label_t = p[t + h] / p[t + 1] - 1``: the label of decision ``t`` is only known at bar
  ``t + h``.
- A position held from decision ``t`` earns ``position_t * label_t``.
- Costs are charged on turnover: ``cost_bps / 1e4 * |position_t - position_{t-1}|``.

Because a label reaches ``horizon`` bars into the future, a training sample ``t`` with
``t + horizon >= test_start`` would see prices of the test period. Such samples are purged, and
``embargo`` further bars may be dropped on top. The same purge separates training from validation.
"""

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Fold:
    """One walk-forward fold.

    Attributes
    ----------
    index : int
        Position of the fold in time order, starting at 0.
    train, valid, test : numpy.ndarray
        Integer positions into the sorted array of decision timestamps. ``valid`` is empty when
        no validation set was asked for.
    """

    index: int
    train: np.ndarray
    valid: np.ndarray
    test: np.ndarray


def walk_forward_folds(
    n_times: int,
    n_folds: int,
    test_fraction: float,
    valid_fraction: float,
    horizon: int = 2,
    embargo: int = 0,
    max_train: int | None = None,
) -> list[Fold]:
    """Cut a timeline into purged, expanding-window walk-forward folds.

    The last ``round(n_times * test_fraction)`` positions are split into ``n_folds`` consecutive
    test blocks whose sizes differ by at most one (equal when the count divides evenly), so the
    blocks cover that tail exactly and never overlap. Each fold fits on the positions before its
    test block, minus the purge (``t + horizon >= test_start``) and ``embargo`` more bars; with
    ``max_train``, only the last ``max_train`` of those remain. The last ``valid_fraction`` of
    them becomes the validation set, and training positions are purged against it the same way
    (``t + horizon < valid_start``).

    Parameters
    ----------
    n_times : int
        Number of decision timestamps.
    n_folds : int
        Number of test blocks (folds), at least 1.
    test_fraction : float
        Share of the timeline used for out-of-sample testing, in (0, 1).
    valid_fraction : float
        Share of each fold's fitting positions held out for validation, in [0, 1).
    horizon : int, default 2
        Bars until a decision's label is known (see the module's timing conventions).
    embargo : int, default 0
        Extra bars dropped between the fitting positions and the test block.
    max_train : int or None, default None
        Upper bound on the fitting positions (train plus valid); ``None`` keeps the window
        expanding from the start of the timeline.

    Returns
    -------
    list of Fold
        Folds in time order.

    Raises
    ------
    ValueError
        On out-of-range arguments, or when a fold would get an empty test, train or (with
        ``valid_fraction > 0``) validation set; the message names the numbers involved.
    """
    _check_arguments(n_times, n_folds, test_fraction, valid_fraction, horizon, embargo, max_train)
    n_test = int(round(n_times * test_fraction))
    if n_test < n_folds:
        raise ValueError(
            f"test_fraction={test_fraction} of n_times={n_times} gives {n_test} test positions, "
            f"fewer than n_folds={n_folds}"
        )
    blocks = np.array_split(np.arange(n_times - n_test, n_times, dtype=np.int64), n_folds)
    folds = []
    for index, test in enumerate(blocks):
        test_start = int(test[0])
        fit_end = test_start - horizon - embargo
        fit_start = 0 if max_train is None else max(0, fit_end - max_train)
        n_valid = int(round(max(fit_end - fit_start, 0) * valid_fraction))
        valid_start = fit_end - n_valid
        train_end = valid_start - horizon if n_valid else fit_end
        if (valid_fraction > 0 and n_valid < 1) or train_end - fit_start < 1:
            raise ValueError(
                f"fold {index}: test block starts at {test_start} of n_times={n_times}; after "
                f"purge horizon={horizon} and embargo={embargo} there are "
                f"{max(fit_end - fit_start, 0)} fitting positions, giving "
                f"{max(train_end - fit_start, 0)} train and {n_valid} valid positions "
                f"(valid_fraction={valid_fraction}); need at least 1 of each"
            )
        folds.append(
            Fold(
                index=index,
                train=np.arange(fit_start, train_end, dtype=np.int64),
                valid=np.arange(valid_start, fit_end, dtype=np.int64),
                test=test,
            )
        )
    return folds


def _check_arguments(
    n_times: int,
    n_folds: int,
    test_fraction: float,
    valid_fraction: float,
    horizon: int,
    embargo: int,
    max_train: int | None,
) -> None:
    """Raise ValueError naming the first out-of-range argument of `walk_forward_folds`."""
    if n_times < 1:
        raise ValueError(f"n_times must be at least 1, got {n_times}")
    if n_folds < 1:
        raise ValueError(f"n_folds must be at least 1, got {n_folds}")
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    if not 0 <= valid_fraction < 1:
        raise ValueError(f"valid_fraction must be in [0, 1), got {valid_fraction}")
    if horizon < 0 or embargo < 0:
        raise ValueError(f"horizon and embargo must be >= 0, got {horizon} and {embargo}")
    if max_train is not None and max_train < 1:
        raise ValueError(f"max_train must be at least 1 or None, got {max_train}")


def label_forward_returns(exec_price: np.ndarray, horizon: int = 2) -> np.ndarray:
    """Forward return earned by a decision taken at each bar's close.

    ``label_t = p[t + horizon] / p[t + 1] - 1``: the position decided at ``t`` is entered at
    the execution price of bar ``t + 1`` and marked at bar ``t + horizon``. With the default
    ``horizon=2`` this is the one-bar return from ``t + 1`` to ``t + 2``.

    Parameters
    ----------
    exec_price : numpy.ndarray
        1-D execution prices (next close or next open), positive, in time order.
    horizon : int, default 2
        Bar at which the label ends, at least 2.

    Returns
    -------
    numpy.ndarray
        Float labels of the same length; the last ``horizon`` entries are NaN (not yet known).

    Raises
    ------
    ValueError
        If the prices are not 1-D, a price is not positive (the first offending rows are
        named), or ``horizon < 2``.
    """
    price = np.asarray(exec_price, dtype=np.float64)
    if price.ndim != 1:
        raise ValueError(f"exec_price must be 1-D, got shape {price.shape}")
    if horizon < 2:
        raise ValueError(f"horizon must be at least 2 (enter at t+1, mark later), got {horizon}")
    bad = np.flatnonzero(~(price > 0) & ~np.isnan(price))
    if bad.size:
        raise ValueError(f"exec_price must be positive; rows {bad[:10].tolist()} are not")
    labels = np.full(price.shape, np.nan)
    n = price.size
    if n > horizon:
        labels[: n - horizon] = price[horizon:] / price[1 : n - horizon + 1] - 1.0
    return labels
