"""Argument checks shared by every public function of lessons_lib.

Each check raises ``ValueError`` whose message names the argument, the value received and the
values allowed, so that a learner who passes ``lr=-0.1`` reads what went wrong instead of
watching a NaN creep through a plot.
"""

from __future__ import annotations

import math
from numbers import Integral, Real

import numpy as np


def _describe(value) -> str:
    return repr(value) if not isinstance(value, np.ndarray) else f"array {np.array2string(value)}"


def check_learning_rate(name: str, value, *, allow_zero: bool = False) -> np.ndarray:
    """Return ``value`` as a float array; refuse NaN, infinite, negative (and zero unless allowed).

    Works for a single number or an array of learning rates (a sweep).
    """
    try:
        arr = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(
            f"{name} must be a number or an array of numbers, got {_describe(value)}"
        ) from None
    if arr.size == 0:
        raise ValueError(f"{name} must hold at least one learning rate, got an empty array")
    allowed = "finite and >= 0" if allow_zero else "finite and > 0"
    bad = ~np.isfinite(arr) | (arr < 0) | ((arr == 0) & (not allow_zero))
    if bad.any():
        raise ValueError(
            f"{name} must be {allowed}; got {_describe(value)} "
            f"(bad value: {arr[bad].ravel()[0]!r})"
        )
    return arr


def check_real(name: str, value, *, low=None, high=None, low_open=False, high_open=False) -> float:
    """Return ``value`` as a float, refusing NaN/inf and values outside the interval given.

    ``low_open=True`` makes the lower bound strict (``value > low``), likewise ``high_open``.
    """
    if isinstance(value, bool) or not isinstance(value, Real | np.floating | np.integer):
        raise ValueError(f"{name} must be a real number, got {_describe(value)}")
    value = float(value)
    lo = "(-inf" if low is None else ("(" if low_open else "[") + repr(low)
    hi = "inf)" if high is None else repr(high) + (")" if high_open else "]")
    interval = f"{lo}, {hi}"
    ok = math.isfinite(value)
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if not ok:
        raise ValueError(f"{name} must be a finite number in {interval}, got {value!r}")
    return value


def check_int(name: str, value, *, low: int = 1, high: int | None = None) -> int:
    """Return ``value`` as an int, refusing non-integers and values below ``low`` (or above ``high``)."""
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise ValueError(f"{name} must be an integer >= {low}, got {_describe(value)}")
    value = int(value)
    if value < low or (high is not None and value > high):
        allowed = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise ValueError(f"{name} must be an integer {allowed}, got {value}")
    return value


def check_choice(name: str, value, choices) -> str:
    """Refuse a value that is not one of ``choices``, listing them."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {sorted(choices)!r}, got {value!r}")
    return value


def check_finite_array(name: str, value) -> np.ndarray:
    """Return ``value`` as a float array, refusing NaN or infinite entries."""
    arr = np.asarray(value, dtype=float)
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} must contain only finite numbers (no NaN or inf)")
    return arr
