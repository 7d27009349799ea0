"""numpy's elementwise arithmetic on Python floats, bit for bit: the one-symbol fast path.

With a universe of one symbol every array of the engine has one entry, and a numpy call on a
one-element array costs about a microsecond, most of a bar's time. So for one symbol the
portfolio, the risk manager and the broker do the same arithmetic on Python floats (IEEE
doubles, like numpy's float64), and events carry a float where they would carry a
one-element array (their array attributes still read as arrays, ``factory.backtest.events``).

The results must equal the array path's to the bit, signed zeros and NaN included, so what
plain Python does differently is spelt out here:

- ``np.sign(-0.0)`` is ``+0.0``, and NaN stays NaN;
- ``np.minimum`` propagates NaN and, of two equal values, returns the second;
- ``np.trunc`` keeps the sign (``-0.5 -> -0.0``) and returns a float;
- a sum or dot product of one entry starts from ``+0.0``: ``x.sum()`` is ``x + 0.0`` and
  ``a @ b`` is ``a * b + 0.0`` (``-0.0`` becomes ``+0.0``). The callers write that ``+ 0.0``
  out where the array path reduces.

Every operator the engine uses on arrays (``+ - * /``, ``abs``, comparisons) is already
IEEE-exact on floats.
"""

from __future__ import annotations

import math

import numpy as np


def single(value: object) -> float:
    """The one entry of a one-symbol field, stored as a float or given as an array.

    Raises
    ------
    ValueError
        When ``value`` holds more or fewer than one number.
    """
    if value.__class__ is float:
        return value
    array = np.asarray(value, dtype=np.float64)
    if array.size != 1:
        raise ValueError(f"a universe of one symbol takes one value per field, got "
                         f"{array.size}")
    return float(array.reshape(-1)[0])


def sign(x: float) -> float:
    """``np.sign``: -1.0, +0.0 (for either zero) or 1.0; NaN for NaN."""
    if x > 0.0:
        return 1.0
    if x < 0.0:
        return -1.0
    return 0.0 if x == 0.0 else x


def minimum(a: float, b: float) -> float:
    """``np.minimum``: NaN if either is NaN, else the smaller (``b`` when equal)."""
    return a if a < b or a != a else b


def trunc(x: float) -> float:
    """``np.trunc``: the integer part as a float, with the sign of ``x``; NaN and infinities
    as they are."""
    if x - x != 0.0:  # NaN or an infinity
        return x
    whole = float(int(x))
    return whole if whole else math.copysign(0.0, x)
