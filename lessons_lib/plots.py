"""Plot helpers of the house style: one colour per learning rate, log axes for rates, no titles."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib import animation

from lessons_lib.descent import DescentPath
from lessons_lib.landscapes import Landscape
from lessons_lib.setup import PALETTE


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

    anim = animation.FuncAnimation(fig, draw, frames=frames, interval=500, blit=True)
    plt.close(fig)
    return anim
