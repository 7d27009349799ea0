"""How hyperparameter axes combine: the full product, the orthogonal array, bundles."""

from __future__ import annotations

import itertools

import pytest

from factory.grid_design import check_axes, combinations, orthogonal_rows


@pytest.mark.parametrize(("levels", "columns"), [(2, 3), (3, 4), (3, 2), (5, 6), (7, 3)])
def test_every_pair_of_columns_takes_every_pair_of_levels_exactly_once(levels, columns):
    rows = orthogonal_rows(levels, columns)
    assert len(rows) == levels ** 2
    for i, j in itertools.combinations(range(columns), 2):
        pairs = sorted((row[i], row[j]) for row in rows)
        assert pairs == sorted(itertools.product(range(levels), repeat=2))


def test_no_array_beyond_prime_levels_or_too_many_columns():
    for levels, columns in ((4, 3), (3, 5), (1, 1)):
        with pytest.raises(ValueError):
            orthogonal_rows(levels, columns)


def test_orthogonal_design_starts_at_the_reference_row_and_keeps_constants():
    axes = {"learning_rate": [1e-3, 1e-4, 5e-4], "hidden_size": [128, 64, 256],
            "dropout": [0.2, 0.1, 0.3], "num_layers": [1],
            "regularisation": [{"l2": 1e-4}, {"l1": 1e-5}, {"l1": 1e-5, "l2": 1e-4}]}
    rows = combinations(axes, {"max_epochs": 8}, "orthogonal")
    assert len(rows) == 9
    assert rows[0] == {"max_epochs": 8, "dropout": 0.2, "hidden_size": 128,
                       "learning_rate": 1e-3, "num_layers": 1, "l2": 1e-4}
    assert all(row["num_layers"] == 1 and row["max_epochs"] == 8 for row in rows)
    assert all("regularisation" not in row for row in rows)
    assert len({(r["hidden_size"], r.get("l1", 0.0), r.get("l2", 0.0)) for r in rows}) == 9


def test_full_design_is_the_product_in_sorted_axis_order():
    rows = combinations({"b": [1, 2], "a": ["x", "y", "z"]}, {}, "full")
    assert [(r["a"], r["b"]) for r in rows] == list(itertools.product("xyz", [1, 2]))


@pytest.mark.parametrize(("axes", "fixed", "design", "message"), [
    ({"a": [1, 2], "b": [1, 2, 3]}, {}, "orthogonal", "same prime"),
    ({"a": [1, 2, 3, 4], "b": [1, 2, 3, 4]}, {}, "orthogonal", "same prime"),
    ({"a": [1, 2], "b": [1, 2], "c": [1, 2], "d": [1, 2]}, {}, "orthogonal", "at most 3"),
    ({"a": [1, 2]}, {"a": 3}, "full", "both searched and fixed"),
    ({"r": [{"l1": 1.0}, {"l2": 1.0}]}, {"l2": 0.5}, "full", "both searched and fixed"),
    ({"r": [{"l1": 1.0}], "l1": [2.0]}, {}, "full", "set by two axes"),
    ({"r": [{"l1": 1.0}, 2.0]}, {}, "full", "mixes mappings"),
])
def test_axes_that_cannot_combine_are_refused(axes, fixed, design, message):
    with pytest.raises(ValueError, match=message):
        check_axes(axes, fixed, design)
