"""How an architecture's hyperparameter axes combine into configurations.

``full`` takes every combination. ``orthogonal`` takes the rows of a strength-2 orthogonal
array: for axes of one prime number of levels ``s`` (at most ``s + 1`` of them), ``s**2``
rows in which every pair of levels of any two axes appears exactly once. Four three-level
axes (learning rate, hidden size, dropout, regularisation) take 9 rows instead of 81, and
each axis's main effect, and each pair's joint effect, can still be read off the results.

The array is the classical one over the integers modulo ``s``: the row of ``(a, b)`` has the
columns ``a``, ``b``, ``a + b``, ``a + 2b``, ..., ``a + (s - 1) b``; any two of them take every
pair of values once because ``s`` is prime.

An axis whose values are mappings is a bundle: a value sets the hyperparameters it names
(the axis name is not one). Axes with one value are constants and take no column.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

DESIGNS = ("full", "orthogonal")


def _is_prime(n: int) -> bool:
    return n >= 2 and all(n % d for d in range(2, int(n ** 0.5) + 1))


def _bundle_keys(values: list[Any]) -> set[str]:
    return {key for value in values if isinstance(value, Mapping) for key in value}


def check_axes(axes: Mapping[str, list[Any]], fixed: Mapping[str, Any], design: str) -> None:
    """Refuse axes that cannot be combined as ``design`` says.

    Raises
    ------
    ValueError
        A name both searched and fixed (bundles included), a bundle axis mixing mappings
        with plain values, or an orthogonal design whose varying axes do not share one
        prime number of levels or outnumber it by more than one.
    """
    names = set(axes)
    for name, values in axes.items():
        mappings = [isinstance(v, Mapping) for v in values]
        if any(mappings) and not all(mappings):
            raise ValueError(f"axis {name!r} mixes mappings (a bundle) with plain values")
        names |= _bundle_keys(values)
    overlap = names & set(fixed)
    if overlap:
        raise ValueError(f"hyperparameters both searched and fixed: {sorted(overlap)}")
    bundled = [key for name, values in axes.items() for key in _bundle_keys(values)]
    clashes = sorted({k for k in bundled if bundled.count(k) > 1 or k in axes})
    if clashes:
        raise ValueError(f"hyperparameters set by two axes: {clashes}")
    if design == "orthogonal":
        levels = {len(v) for v in axes.values() if len(v) > 1}
        varying = sum(1 for v in axes.values() if len(v) > 1)
        if len(levels) > 1 or (levels and not _is_prime(next(iter(levels)))):
            raise ValueError(f"an orthogonal design needs every varying axis to have the same "
                             f"prime number of values; got {sorted(levels)}")
        if levels and varying > next(iter(levels)) + 1:
            raise ValueError(f"an orthogonal design over {next(iter(levels))} levels takes at "
                             f"most {next(iter(levels)) + 1} varying axes; got {varying}")
    elif design not in DESIGNS:
        raise ValueError(f"design must be one of {DESIGNS}; got {design!r}")


def orthogonal_rows(levels: int, columns: int) -> list[tuple[int, ...]]:
    """The ``levels**2`` rows of a strength-2 orthogonal array with ``columns`` columns.

    Parameters
    ----------
    levels : int
        A prime number of levels ``s``.
    columns : int
        At most ``s + 1``.

    Returns
    -------
    list of tuple of int
        Level indices, rows ordered by ``(a, b)``.
    """
    if not _is_prime(levels) or not 0 <= columns <= levels + 1:
        raise ValueError(f"no orthogonal array of {columns} columns over {levels} levels here")
    rows = []
    for a, b in itertools.product(range(levels), repeat=2):
        row = (a, b, *((a + k * b) % levels for k in range(1, levels)))
        rows.append(row[:columns])
    return rows


def _assign(name: str, value: Any) -> dict[str, Any]:
    return dict(value) if isinstance(value, Mapping) else {name: value}


def combinations(axes: Mapping[str, list[Any]], fixed: Mapping[str, Any],
                 design: str = "full") -> list[dict[str, Any]]:
    """The hyperparameter dicts of ``axes`` combined as ``design`` says, ``fixed`` in each.

    Axes are taken in sorted name order, so the result does not depend on the YAML's order.
    """
    check_axes(axes, fixed, design)
    names = sorted(axes)
    if design == "full":
        picks = list(itertools.product(*(range(len(axes[n])) for n in names)))
    else:
        varying = [n for n in names if len(axes[n]) > 1]
        levels = len(axes[varying[0]]) if varying else 1
        rows = orthogonal_rows(levels, len(varying)) if varying else [()]
        picks = [tuple(dict(zip(varying, row, strict=True)).get(n, 0) for n in names)
                 for row in rows]
    combos = []
    for pick in picks:
        hparams = dict(fixed)
        for name, index in zip(names, pick, strict=True):
            hparams |= _assign(name, axes[name][index])
        combos.append(hparams)
    return combos
