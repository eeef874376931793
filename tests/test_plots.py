"""Tests of the animation helpers of lessons_lib.plots: frame count, closed figure, bad input."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from lessons_lib import landscapes, plots  # noqa: E402


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
        ({"frames": 21}, "frames"),
        ({"frames": 0}, "frames"),
        ({"every": 0}, "every"),
        ({"paths": {}}, "paths"),
        ({"paths": {"a": np.zeros((5, 3))}}, "paths"),
        ({"paths": [np.zeros((5, 2))]}, "paths"),
    ],
)
def test_animate_paths_2d_bad_arguments(kwargs, match):
    args = {"paths": {"a": np.zeros((5, 2))}, **kwargs}
    with pytest.raises(ValueError, match=match):
        plots.animate_paths_2d(landscapes.saddle(), xlim=(-1, 1), ylim=(-1, 1), **args)
