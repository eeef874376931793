"""Plot helpers of the house style: one colour per learning rate, log axes for rates, no titles."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib import animation

from lessons_lib._checks import check_int
from lessons_lib.descent import DescentPath
from lessons_lib.landscapes import Landscape

#: The colours of the house style, one per learning rate in a chapter (colour-blind safe, Okabe-Ito).
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]

#: Matplotlib settings of the house style: thick lines, no chart junk, no titles (captions say it).
PLOT_STYLE = {
    "figure.figsize": (6.4, 3.6),
    "figure.dpi": 100,
    "savefig.dpi": 100,
    "figure.constrained_layout.use": True,
    "lines.linewidth": 2,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.titlesize": "medium",
    "axes.labelsize": "medium",
    "legend.frameon": False,
    "font.size": 11,
    "animation.html": "jshtml",
    "animation.embed_limit": 8.0,
}


def lr_colors(lrs) -> dict[float, str]:
    """A fixed colour for each learning rate, in order: the same rates get the same colours."""
    return {float(lr): PALETTE[i % len(PALETTE)] for i, lr in enumerate(np.ravel(lrs))}


def contour(landscape: Landscape, ax, xlim, ylim, levels: int = 20, log: bool = True):
    """Draw the level sets of a 2-D ``landscape`` on ``ax`` (log-spaced levels by default)."""
    x, y = np.meshgrid(np.linspace(*xlim, 200), np.linspace(*ylim, 200))
    z = landscape.loss(np.stack([x, y], axis=-1))
    if log:
        lv = np.geomspace(max(z.min(), 1e-3), z.max(), levels)
    else:
        lv = np.linspace(z.min(), z.max(), levels)
    ax.contour(x, y, z, levels=lv, colors="0.75", linewidths=0.8)
    ax.set(xlabel="$w_1$", ylabel="$w_2$", xlim=xlim, ylim=ylim)
    return ax


def _animation(fig, draw, frames: int, interval: int) -> animation.FuncAnimation:
    """Turn ``draw(frame)`` into a blitted animation of ``fig``, laid out once, figure closed."""
    engine = fig.get_layout_engine()
    if engine is not None:  # lay the figure out once, not again for every frame
        engine.execute(fig)
        fig.set_layout_engine("none")
    anim = animation.FuncAnimation(fig, draw, frames=frames, interval=interval, blit=True)
    plt.close(fig)  # only the animation shows in the notebook
    return anim


def animate_descent_1d(landscape: Landscape, path: DescentPath, frames: int = 20,
                       xlim=(-3.5, 3.5)) -> animation.FuncAnimation:
    """A small jshtml animation of 1-D descent: one ball per learning rate, ``frames`` ≤ 20 steps.

    The figure is closed, so only the animation shows in the notebook.
    """
    frames = min(frames, path.steps + 1, 20)
    fig, axes = plt.subplots(1, len(path.lrs), figsize=(3.2 * len(path.lrs), 2.8), sharey=True)
    axes = np.atleast_1d(axes)
    grid = np.linspace(*xlim, 300)
    colors = lr_colors(path.lrs)
    balls, trails = [], []
    for ax, j in zip(axes, range(len(path.lrs))):
        lr = float(path.lrs[j])
        ax.plot(grid, landscape.loss(grid[:, None]), color="0.6", lw=1.5)
        (trail,) = ax.plot([], [], "-", color=colors[lr], lw=1, alpha=0.6)
        (ball,) = ax.plot([], [], "o", color=colors[lr], ms=9)
        ax.set(xlabel="weight $w$", xlim=xlim, ylim=(-0.3, landscape.loss(np.array([[xlim[1]]]))[0]))
        ax.text(0.5, 0.92, f"η = {lr:g}", transform=ax.transAxes, ha="center")
        balls.append(ball), trails.append(trail)
    axes[0].set_ylabel("loss $L(w)$")

    def draw(t):
        for j, (ball, trail) in enumerate(zip(balls, trails)):
            w = path.w[: t + 1, j, 0]
            trail.set_data(w, path.loss[: t + 1, j])
            ball.set_data([w[-1]], [path.loss[t, j]])
        return balls + trails

    return _animation(fig, draw, frames, interval=500)


def animate_paths_2d(landscape: Landscape, paths: dict, xlim, ylim, frames: int = 20,
                     every: int = 1, colors: dict | None = None,
                     legend_loc: str = "upper left") -> animation.FuncAnimation:
    """A small jshtml animation of several 2-D runs on the contours of ``landscape``.

    ``paths`` maps a label (e.g. an optimizer's name) to the points of one run, an array of shape
    ``(steps + 1, 2)``. Frame ``f`` (0 … ``frames`` − 1, at most 20) shows every run up to step
    ``f · every``: a trail and a dot. ``colors`` maps labels to colours (default: the palette in
    order); ``legend_loc`` places the legend (a matplotlib location such as "lower left"). The
    figure is closed, so only the animation shows in the notebook.
    """
    frames = check_int("frames", frames, low=1, high=20)
    every = check_int("every", every, low=1)
    if not isinstance(paths, dict) or not paths:
        raise ValueError("paths must be a non-empty dict label -> array (steps + 1, 2), "
                         f"got {paths!r}")
    arrays = {}
    for label, path in paths.items():
        arr = np.asarray(path, dtype=float)
        if arr.ndim != 2 or arr.shape[1] != 2 or len(arr) < 1:
            raise ValueError(f"paths[{label!r}] must have shape (steps + 1, 2), got {arr.shape}")
        arrays[label] = arr
    if colors is None:
        colors = {label: PALETTE[i % len(PALETTE)] for i, label in enumerate(arrays)}
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    contour(landscape, ax, xlim, ylim)
    trails, dots = [], []
    for label in arrays:
        (trail,) = ax.plot([], [], "-", color=colors[label], lw=1.5, alpha=0.8, label=label)
        (dot,) = ax.plot([], [], "o", color=colors[label], ms=7)
        trails.append(trail), dots.append(dot)
    ax.legend(loc=legend_loc, fontsize=8, ncol=2)
    step_text = ax.text(0.98, 0.02, "", transform=ax.transAxes, ha="right", va="bottom")

    def draw(f):
        t = f * every
        for arr, trail, dot in zip(arrays.values(), trails, dots):
            shown = arr[: t + 1]
            trail.set_data(shown[:, 0], shown[:, 1])
            dot.set_data(shown[-1:, 0], shown[-1:, 1])
        step_text.set_text(f"step {t}")
        return trails + dots + [step_text]

    return _animation(fig, draw, frames, interval=400)
