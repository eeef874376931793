"""Tests of the animation helpers of lessons_lib.plots: frame count, closed figure, bad input."""

import matplotlib.pyplot as plt
import numpy as np
import pytest

from lessons_lib import landscapes, plots


def test_animate_paths_2d_has_the_frames_asked_and_closes_its_figure():
    saddle = landscapes.saddle()
    paths = {"a": np.linspace([1.5, 0.0], [0.0, 1.0], 41), "b": np.zeros((41, 2))}
    before = plt.get_fignums()
    anim = plots.animate_paths_2d(saddle, paths, (-2, 2), (-1.5, 1.5), frames=11, every=4)
    assert plt.get_fignums() == before  # the figure is closed
    html = anim.to_jshtml()
    assert html.count("frames[") >= 11 and "frames[11]" not in html
    trail = anim._fig.axes[0].lines[0]
    anim._func(10)  # the last frame shows the run up to step 40
    np.testing.assert_allclose(trail.get_xydata()[-1], paths["a"][40])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"frames": 21}, r"^frames must be an integer in \[1, 20\], got 21"),
        ({"frames": 0}, r"^frames must be an integer in \[1, 20\], got 0"),
        ({"every": 0}, r"^every must be an integer >= 1, got 0"),
        ({"paths": {}},
         r"^paths must be a non-empty dict label -> array \(steps \+ 1, 2\), got \{\}"),
        ({"paths": {"a": np.zeros((5, 3))}},
         r"^paths\['a'\] must have shape \(steps \+ 1, 2\), got \(5, 3\)"),
        ({"paths": [np.zeros((5, 2))]},
         r"^paths must be a non-empty dict label -> array \(steps \+ 1, 2\), got \[array"),
    ],
)
def test_animate_paths_2d_bad_arguments(kwargs, match):
    """Catches an animation setting outside the house limits (≤ 20 frames) or malformed paths
    accepted, or refused by a message that does not start with the argument and what it allows."""
    args = {"paths": {"a": np.zeros((5, 2))}, **kwargs}
    with pytest.raises(ValueError, match=match):
        plots.animate_paths_2d(landscapes.saddle(), xlim=(-1, 1), ylim=(-1, 1), **args)
