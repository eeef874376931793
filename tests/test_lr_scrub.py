"""Tests of plots.animate_lr_scrub, the η slider: frames are learning rates, each frame draws the
whole descent path at its rate (checked against descent.gradient_descent), precomputed paths are
drawn as given, and bad input is refused by a message naming the argument."""

import matplotlib.pyplot as plt
import numpy as np
import pytest

from lessons_lib import descent, landscapes, plots

VALLEY = landscapes.valley(1.0, 20.0)
LIMITS = {"xlim": (-4.5, 1.0), "ylim": (-1.8, 1.8)}


def test_one_frame_per_rate_and_the_figure_is_closed():
    """Catches frames that are steps again (or a frame count cut to a default), and a figure left
    open that would show a second, static copy in the notebook."""
    lrs = np.geomspace(0.01, 0.12, 7)
    before = plt.get_fignums()
    anim = plots.animate_lr_scrub(VALLEY, lrs, 30, [-4.0, 1.5], **LIMITS)
    assert plt.get_fignums() == before
    html = anim.to_jshtml()
    assert "frames[6]" in html and "frames[7]" not in html


@pytest.mark.parametrize("landscape, start, lrs", [
    (landscapes.parabola(1.0), [3.0], [0.05, 0.3, 0.9, 1.5, 3.0]),
    (VALLEY, [-4.0, 1.5], [0.12, 0.01, 0.045, 0.095]),  # unsorted: frames go by increasing η
])
def test_frame_k_draws_the_gradient_descent_path_at_the_kth_rate(landscape, start, lrs):
    """Catches a frame drawing another rate's path, a path cut short, or (1-D) dots drawn off the
    loss curve: each frame's line is the full path of descent.gradient_descent at that rate."""
    steps = 40
    anim = plots.animate_lr_scrub(landscape, lrs, steps, start, xlim=(-4.5, 4.5), ylim=(-2, 2))
    rates = np.sort(lrs)
    reference = descent.gradient_descent(landscape, start, rates, steps)
    for k, lr in enumerate(rates):
        artists = anim._func(k)
        line, status = artists[0], artists[-2]
        x, y = line.get_data()
        w = reference.w[:, k]
        expected_y = reference.loss[:, k] if landscape.dim == 1 else w[:, 1]
        np.testing.assert_array_equal(np.asarray(x), w[:, 0])
        np.testing.assert_allclose(np.asarray(y)[np.isfinite(y)],
                                   expected_y[np.isfinite(expected_y)], rtol=1e-12)
        assert len(x) == steps + 1
        assert status.get_text().startswith(f"η = {lr:.3g}")
        assert ("diverged" in status.get_text()) == bool(reference.diverged[k])
    assert reference.diverged.any() and not reference.diverged.all()  # both kinds were seen


def test_precomputed_paths_one_or_several_runs_per_rate():
    """Catches precomputed runs redrawn from scratch or mixed up between rates and labels (the
    use of chapter 4: several optimizers at the same η), and a label missing from a frame still
    showing the previous frame's path."""
    rng = np.random.default_rng(0)
    a, b, c = (rng.normal(size=(12, 2)) for _ in range(3))
    anim = plots.animate_lr_scrub(VALLEY, paths={0.1: {"sgd": a, "adam": b}, 0.01: {"sgd": c}},
                                  **LIMITS)
    sgd, adam, status, knob = anim._func(0)
    np.testing.assert_array_equal(np.column_stack(sgd.get_data()), c)  # 0.01 comes first
    assert len(adam.get_data()[0]) == 0
    assert np.allclose(knob.get_data(), [[0.01], [0.5]])
    sgd, adam, status, knob = anim._func(1)
    np.testing.assert_array_equal(np.column_stack(sgd.get_data()), a)
    np.testing.assert_array_equal(np.column_stack(adam.get_data()), b)
    assert "sgd: loss" in status.get_text() and "adam: loss" in status.get_text()
    single = plots.animate_lr_scrub(VALLEY, paths={0.05: a}, **LIMITS)
    np.testing.assert_array_equal(np.column_stack(single._func(0)[0].get_data()), a)


def test_a_run_that_leaves_the_finite_numbers_reads_diverged():
    """Catches a blown-up run reported with a loss (nan or inf) instead of the word."""
    path = np.array([[1.0, 1.0], [2.0, -4.0], [np.nan, np.nan]])
    anim = plots.animate_lr_scrub(VALLEY, paths={0.2: path}, **LIMITS)
    assert anim._func(0)[-2].get_text() == "η = 0.2\ndiverged"


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({}, r"^give lrs, steps and start \(to run gradient descent\) or paths"),
        ({"lrs": np.geomspace(0.01, 0.1, 21), "steps": 5, "start": [1.0, 1.0]},
         r"^len\(lrs\) must be an integer in \[1, 20\], got 21"),
        ({"lrs": [0.1, 0.1], "steps": 5, "start": [1.0, 1.0]},
         r"^lrs must not repeat a learning rate"),
        ({"lrs": [-0.1], "steps": 5, "start": [1.0, 1.0]}, r"^lrs must be .*finite and > 0"),
        ({"lrs": [0.1], "steps": 5, "start": [1.0, 1.0], "paths": {0.1: np.zeros((3, 2))}},
         r"^give either lrs, steps and start or paths, not both"),
        ({"paths": {}}, r"^paths must be a non-empty dict learning rate -> array"),
        ({"paths": {0.1: np.zeros((3, 3))}}, r"^paths\[0\.1\] must have shape \(steps \+ 1, 2\)"),
        ({"paths": {0.1: {"sgd": np.zeros(3)}}},
         r"^paths\[0\.1\]\['sgd'\] must have shape \(steps \+ 1, 2\)"),
        ({"paths": {0.0: np.zeros((3, 2))}},
         r"^each key of paths must be finite and > 0; got 0\.0"),
        ({"paths": {0.1: {"sgd": np.zeros((3, 2))}}, "colors": {"adam": "k"}},
         r"^colors must give a colour for every label, missing \['sgd'\]"),
        ({"paths": {0.1: np.zeros((3, 2))}, "marks": {"2/λ": -1.0}},
         r"^marks\['2/λ'\] must be finite and > 0; got -1\.0"),
    ],
)
def test_bad_arguments_are_refused_by_name(kwargs, match):
    """Catches a slider with more frames than the house limit (20), a run that silently draws
    nothing, or a message that does not start with the argument and what it allows."""
    with pytest.raises(ValueError, match=match):
        plots.animate_lr_scrub(VALLEY, **LIMITS, **kwargs)


def test_landscape_dimension_and_limits_are_checked():
    """Catches a 3-D landscape drawn as if it were 2-D, and a 2-D plot without its limits."""
    with pytest.raises(ValueError, match=r"^landscape must have 1 or 2 dimensions, got dim 3"):
        plots.animate_lr_scrub(landscapes.quadratic([1, 2, 3]), [0.1], 5, [1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match=r"^xlim and ylim must both be given for a 2-D landscape"):
        plots.animate_lr_scrub(VALLEY, [0.1], 5, [1.0, 1.0], xlim=(-1, 1))
