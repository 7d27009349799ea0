"""Purged walk-forward folds: no label of a training sample may reach into its test block."""

import numpy as np
import pytest

from factory.training.splits import walk_forward_folds

CASES = [
    dict(n_times=1000, n_folds=5, test_fraction=0.3, valid_fraction=0.2),
    dict(n_times=1003, n_folds=4, test_fraction=0.25, valid_fraction=0.1, horizon=5, embargo=7),
    dict(n_times=500, n_folds=3, test_fraction=0.4, valid_fraction=0.0, horizon=2, embargo=3),
    dict(n_times=800, n_folds=2, test_fraction=0.5, valid_fraction=0.2, max_train=150),
]


@pytest.mark.parametrize("case", CASES)
def test_train_and_valid_labels_never_reach_the_test_block(case):
    horizon = case.get("horizon", 2)
    embargo = case.get("embargo", 0)
    for fold in walk_forward_folds(**case):
        test_start = fold.test[0]
        assert fold.train[-1] + horizon + embargo < test_start
        if fold.valid.size:
            assert fold.valid[-1] + horizon + embargo < test_start
            assert fold.train[-1] + horizon < fold.valid[0]
        assert set(fold.train).isdisjoint(fold.valid)


@pytest.mark.parametrize("case", CASES)
def test_test_blocks_cover_the_tail_exactly_without_overlap(case):
    folds = walk_forward_folds(**case)
    tests = np.concatenate([fold.test for fold in folds])
    n_test = round(case["n_times"] * case["test_fraction"])
    np.testing.assert_array_equal(tests, np.arange(case["n_times"] - n_test, case["n_times"]))
    sizes = [fold.test.size for fold in folds]
    assert max(sizes) - min(sizes) <= 1
    assert [fold.index for fold in folds] == list(range(case["n_folds"]))


def test_exact_positions_with_purge_embargo_and_validation():
    folds = walk_forward_folds(
        n_times=100, n_folds=2, test_fraction=0.2, valid_fraction=0.25, horizon=2, embargo=3
    )
    first, second = folds
    np.testing.assert_array_equal(first.test, np.arange(80, 90))
    np.testing.assert_array_equal(second.test, np.arange(90, 100))
    # 80 - 2 (purge) - 3 (embargo) = 75 fitting positions; 19 valid; purge 2 before valid.
    np.testing.assert_array_equal(first.valid, np.arange(56, 75))
    np.testing.assert_array_equal(first.train, np.arange(0, 54))
    assert second.train[0] == 0 and second.train.size > first.train.size


def test_embargo_removes_exactly_that_many_more_bars():
    plain = walk_forward_folds(200, 2, 0.3, 0.0, horizon=2, embargo=0)
    embargoed = walk_forward_folds(200, 2, 0.3, 0.0, horizon=2, embargo=6)
    for a, b in zip(plain, embargoed, strict=True):
        assert a.train[-1] - b.train[-1] == 6
        np.testing.assert_array_equal(a.test, b.test)


def test_max_train_bounds_the_rolling_window():
    for fold in walk_forward_folds(800, 3, 0.5, 0.2, max_train=100):
        assert fold.train.size + fold.valid.size + 2 == 100
        assert fold.valid[-1] == fold.test[0] - 3


def test_too_little_data_names_the_numbers():
    with pytest.raises(ValueError, match="n_folds=5"):
        walk_forward_folds(10, 5, 0.2, 0.0)
    with pytest.raises(ValueError, match=r"fold 0: test block starts at 5 of n_times=10"):
        walk_forward_folds(10, 1, 0.5, 0.5, horizon=2, embargo=2)
    with pytest.raises(ValueError, match="test_fraction"):
        walk_forward_folds(100, 2, 1.0, 0.1)
