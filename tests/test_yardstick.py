"""The book's one yardstick for a good learning rate (diagnostics.good_rates)."""

import numpy as np
import pytest

from lessons_lib.diagnostics import GOOD_LOSS_FACTOR, good_rates


def test_good_rates_keeps_exactly_the_rates_within_the_factor_of_the_best():
    """Catches a yardstick measured against the wrong best, or with < instead of <=."""
    lrs = [0.01, 0.03, 0.1, 0.3, 1.0]
    losses = [2.0, 1.5, 1.0, 1.5 * GOOD_LOSS_FACTOR / 1.5, np.inf]
    np.testing.assert_array_equal(good_rates(lrs, losses), [0.03, 0.1, 0.3])
    np.testing.assert_array_equal(good_rates(lrs, losses, factor=1.0), [0.1])


def test_a_diverged_or_nan_run_is_never_good():
    """Catches NaN compared as good (NaN <= x is False, but NaN as the best would poison it)."""
    np.testing.assert_array_equal(good_rates([0.1, 1.0, 3.0], [1.0, np.nan, np.inf]), [0.1])


@pytest.mark.parametrize("losses, match", [
    ([1.0], r"^losses must hold one loss per rate: 2 rates, 1 losses$"),
    ([np.inf, np.nan], r"^losses must hold at least one finite loss"),
])
def test_bad_sweeps_are_refused(losses, match):
    with pytest.raises(ValueError, match=match):
        good_rates([0.1, 1.0], losses)


def test_a_factor_below_one_is_refused():
    with pytest.raises(ValueError, match=r"^factor must be a finite number in \[1, inf\)"):
        good_rates([0.1], [1.0], factor=0.5)
