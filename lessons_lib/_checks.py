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
    if isinstance(value, str):
        return f"the string {value!r}"
    if isinstance(value, bool | np.bool_):
        return f"the bool {value!r}"
    return repr(value) if not isinstance(value, np.ndarray) else f"array {np.array2string(value)}"


def check_learning_rate(name: str, value, *, allow_zero: bool = False, scalar: bool = False):
    """The one learning-rate check of the library: refuse NaN, infinite, negative (and zero unless
    ``allow_zero``) values, and anything that is not a number.

    Returns a float array for a single number or an array of learning rates (a sweep); with
    ``scalar=True`` only a single number is accepted and it is returned as a float. Strings
    (``"0.1"``) and booleans (``True``) are refused although NumPy would turn them into numbers.
    """
    allowed = "finite and >= 0" if allow_zero else "finite and > 0"
    kind = "a number" if scalar else "a number or an array of numbers"
    arr = None
    if not isinstance(value, str | bytes | bool | np.bool_):
        try:
            arr = np.asarray(value)
            if arr.dtype == object or (not isinstance(value, np.ndarray) and any(
                    isinstance(v, str | bytes | bool | np.bool_)
                    for v in np.asarray(value, dtype=object).ravel())):
                arr = None
        except (TypeError, ValueError):
            arr = None
    if arr is None or arr.dtype.kind not in "iuf":
        raise ValueError(f"{name} must be {kind}, {allowed}; got {_describe(value)}")
    arr = arr.astype(float)
    if scalar and arr.ndim != 0:
        raise ValueError(f"{name} must be a single number, got an array of shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} must hold at least one learning rate, got an empty array")
    bad = ~np.isfinite(arr) | (arr < 0) | ((arr == 0) & (not allow_zero))
    if bad.any():
        raise ValueError(
            f"{name} must be {allowed}; got {_describe(value)} "
            f"(bad value: {arr[bad].ravel()[0]!r})"
        )
    return float(arr) if scalar else arr


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


def check_bool(name: str, value) -> bool:
    """Return ``value`` if it is ``True`` or ``False``; refuse 1, 1.0, "yes", None and the like
    (``nesterov=1.0`` is a typo, not a choice)."""
    if not isinstance(value, bool | np.bool_):
        raise ValueError(f"{name} must be True or False, got {_describe(value)}")
    return bool(value)


def check_seed(name: str, value) -> int:
    """A random seed: an integer >= 0 (NumPy's ``default_rng`` refuses negative seeds, torch
    silently wraps them, so both are refused here alike)."""
    return check_int(name, value, low=0)


def check_run(data, steps, batch_size, eval_every, diverge) -> tuple[int, int, int, float]:
    """Validate the settings every training loop shares (:func:`lessons_lib.train.fit`,
    :mod:`lessons_lib.batched`); return them as (int, int, int, float).

    ``batch_size`` may not exceed the number of training samples of ``data``; ``diverge`` is the
    factor above the first loss at which a run counts as diverged (> 1).
    """
    steps = check_int("steps", steps)
    batch_size = check_int("batch_size", batch_size, low=1, high=len(data.X_train))
    eval_every = check_int("eval_every", eval_every)
    diverge = check_real("diverge", diverge, low=1, low_open=True)
    return steps, batch_size, eval_every, diverge
