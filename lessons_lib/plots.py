"""Plot helpers of the house style: one colour per learning rate, log axes for rates, no titles."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib import animation

from lessons_lib._checks import check_int
from lessons_lib.descent import DescentPath
from lessons_lib.landscapes import Landscape
from lessons_lib.optimizers import OPTIMIZERS

#: The colours of the house style, one per learning rate in a chapter (colour-blind safe, Okabe-Ito).
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]

#: One colour per optimizer of :data:`lessons_lib.optimizers.OPTIMIZERS` (the palette in the
#: registry's order), so that SGD, momentum, …, AdaBelief look the same in every lesson.
OPTIMIZER_COLORS = dict(zip(OPTIMIZERS, PALETTE))

#: Colour and line style of each learning-rate schedule, the same in every lesson of chapter 3
#: ("fixed" is the constant schedule under the name a comparison gives it).
SCHEDULE_STYLE = {
    "constant": ("0.55", ":"), "fixed": ("0.55", ":"),
    "step decay": (PALETTE[1], "-"), "multistep": (PALETTE[2], "-"),
    "exponential": (PALETTE[3], "-"), "cosine": (PALETTE[0], "-"),
    "cosine restarts": (PALETTE[5], "-"), "warmup + cosine": (PALETTE[4], "-"),
    "one-cycle": (PALETTE[7], "-"), "reduce on plateau": ("0.55", "--"),
}

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


def _scrub_runs(landscape: Landscape, lrs, steps, start,
                paths) -> dict[float, dict[str, np.ndarray]]:
    """The runs of :func:`animate_lr_scrub`: ``{η: {label: array (steps + 1, dim)}}``, η rising."""
    from lessons_lib._checks import check_learning_rate
    from lessons_lib.descent import gradient_descent

    if paths is None:
        if lrs is None or steps is None or start is None:
            raise ValueError("give lrs, steps and start (to run gradient descent) or paths "
                             "(precomputed runs), got neither")
        rates = np.sort(check_learning_rate("lrs", lrs).reshape(-1))
        if len(np.unique(rates)) != rates.size:
            raise ValueError(f"lrs must not repeat a learning rate, got {rates.tolist()}")
        check_int("len(lrs)", rates.size, low=1, high=20)
        run = gradient_descent(landscape, start, rates, steps)
        return {float(lr): {"": run.w[:, j]} for j, lr in enumerate(rates)}
    if lrs is not None or steps is not None or start is not None:
        raise ValueError("give either lrs, steps and start or paths, not both")
    if not isinstance(paths, dict) or not paths:
        raise ValueError("paths must be a non-empty dict learning rate -> array (steps + 1, dim) "
                         f"or -> dict label -> array, got {paths!r}")
    check_int("len(paths)", len(paths), low=1, high=20)
    runs: dict[float, dict[str, np.ndarray]] = {}
    for lr, value in paths.items():
        rate = check_learning_rate("each key of paths", lr, scalar=True)
        group = value if isinstance(value, dict) else {"": value}
        if not group:
            raise ValueError(f"paths[{lr!r}] must hold at least one run, got an empty dict")
        runs[rate] = {}
        for label, points in group.items():
            arr = np.asarray(points, dtype=float)
            if landscape.dim == 1 and arr.ndim == 1:
                arr = arr[:, None]
            if arr.ndim != 2 or arr.shape[1] != landscape.dim or len(arr) < 1:
                where = f"paths[{lr!r}]" + (f"[{label!r}]" if label else "")
                raise ValueError(f"{where} must have shape (steps + 1, {landscape.dim}), "
                                 f"got {arr.shape}")
            runs[rate][str(label)] = arr
    return dict(sorted(runs.items()))


def animate_lr_scrub(landscape: Landscape, lrs=None, steps: int | None = None, start=None, *,
                     paths: dict | None = None, xlim=(-3.5, 3.5), ylim=None,
                     marks: dict | None = None, colors: dict | None = None,
                     legend_loc: str = "upper right",
                     interval: int = 700) -> animation.FuncAnimation:
    """An η slider: a jshtml animation whose frames are learning rates, not steps.

    Frame ``k`` shows the *whole* descent path at the ``k``-th learning rate (in increasing
    order), so scrubbing the animation's slider sweeps η and the path changes from creeping to
    oscillating to diverging. Give either

    - ``lrs``, ``steps`` and ``start``: the paths are run here with
      :func:`lessons_lib.descent.gradient_descent` (all rates from ``start``, ``steps`` updates), or
    - ``paths``: precomputed runs, a dict mapping each learning rate to the points of one run, an
      array of shape ``(steps + 1, dim)``, or to a dict ``label -> array`` for several runs per
      rate (e.g. two optimizers at the same η; one colour per label, from ``colors`` or the
      palette in order, and a legend at ``legend_loc``).

    At most 20 rates (one frame each). A 1-D landscape is drawn as its loss curve with the path
    as dots on it (``xlim``; ``ylim`` defaults to the curve's range); a 2-D one as level sets
    with the path on top (``xlim``, ``ylim`` required). A strip below is a log axis of η with a
    dot at the current rate and dashed lines at ``marks`` (label -> rate, e.g. ``{"2/λ": 2.0}``).
    The corner text gives η and the loss at the path's last point, or "diverged" for a run whose
    points stop being finite (where :class:`~lessons_lib.descent.DescentPath` stops a run that
    blew up). The figure is closed, so only the animation shows in the notebook.
    """
    from lessons_lib._checks import check_learning_rate

    if landscape.dim not in (1, 2):
        raise ValueError(f"landscape must have 1 or 2 dimensions, got dim {landscape.dim}")
    if landscape.dim == 2 and (xlim is None or ylim is None):
        raise ValueError("xlim and ylim must both be given for a 2-D landscape")
    interval = check_int("interval", interval)
    runs = _scrub_runs(landscape, lrs, steps, start, paths)
    rates = np.array(list(runs))
    labels = list(dict.fromkeys(label for group in runs.values() for label in group))
    if colors is None:
        colors = {label: PALETTE[i % len(PALETTE)] for i, label in enumerate(labels)}
    missing = [label for label in labels if label not in colors]
    if missing:
        raise ValueError(f"colors must give a colour for every label, missing {missing}")
    marks = {} if marks is None else dict(marks)
    for name, value in marks.items():
        check_learning_rate(f"marks[{name!r}]", value, scalar=True)

    fig, (ax, strip) = plt.subplots(2, 1, figsize=(6.4, 4.6), height_ratios=[5, 1])
    if landscape.dim == 1:
        grid = np.linspace(*xlim, 300)
        curve = landscape.loss(grid[:, None])
        ax.plot(grid, curve, color="0.6", lw=1.5)
        top = float(curve.max())
        ax.set(xlabel="weight $w$", ylabel="loss $L(w)$", xlim=xlim,
               ylim=ylim if ylim is not None else (-0.05 * top, 1.05 * top))
    else:
        contour(landscape, ax, xlim, ylim)
        if landscape.minimum is not None:
            ax.plot(*landscape.minimum, "k*", ms=12)
    lines = {}
    for label in labels:
        (lines[label],) = ax.plot([], [], "o-", ms=4, lw=1.2, color=colors[label],
                                  label=label or None)
    if any(labels):
        ax.legend(loc=legend_loc, fontsize=8)
    # the corner the path leaves free: above the bowl in 1-D, bottom right in 2-D
    x, y, ha, va = (0.5, 0.97, "center", "top") if landscape.dim == 1 else (0.98, 0.03, "right",
                                                                          "bottom")
    status = ax.text(x, y, "", transform=ax.transAxes, ha=ha, va=va,
                     bbox=dict(facecolor="white", edgecolor="none", alpha=0.8))

    strip.set(xscale="log", xlim=(rates.min() / 1.5, rates.max() * 1.5), ylim=(0, 1), yticks=[],
              xlabel="learning rate η (log scale)")
    strip.grid(False)
    strip.spines["left"].set_visible(False)
    strip.plot(rates, np.full(rates.size, 0.5), "|", color="0.6", ms=10)
    for name, value in marks.items():
        strip.axvline(value, color="k", ls="--", lw=1)
        strip.text(value, 0.95, f" {name}", va="top", ha="left", fontsize=9)
    (knob,) = strip.plot([], [], "o", color=PALETTE[3], ms=10)

    def draw(k):
        lr = float(rates[k])
        group = runs[lr]
        words = []
        for label, line in lines.items():
            arr = group.get(label)
            if arr is None:
                line.set_data([], [])
                continue
            y = landscape.loss(arr) if landscape.dim == 1 else arr[:, 1]
            line.set_data(arr[:, 0], y)
            end = arr[-1]
            prefix = f"{label}: " if label else ""
            if np.isfinite(arr).all():
                words.append(f"{prefix}loss {float(landscape.loss(arr[0])):.2g} → "
                             f"{float(landscape.loss(end)):.2g} in {len(arr) - 1} steps")
            else:
                words.append(f"{prefix}diverged")
        status.set_text("\n".join([f"η = {lr:.3g}"] + words))
        knob.set_data([lr], [0.5])
        return list(lines.values()) + [status, knob]

    return _animation(fig, draw, len(rates), interval=interval)


def _box(ax, xy, text, color, width=0.26, height=0.16):
    """A rounded box with centred text on axes spanning [0, 1]², its centre at ``xy``."""
    from matplotlib.patches import FancyBboxPatch

    x, y = xy
    ax.add_patch(FancyBboxPatch((x - width / 2, y - height / 2), width, height,
                                boxstyle="round,pad=0.02", fc=color, ec="0.3", lw=1))
    ax.text(x, y, text, ha="center", va="center", fontsize=9)


def _arrow(ax, start, end, text="", offset=(0.0, 0.04)):
    """An arrow from ``start`` to ``end`` with ``text`` beside its middle."""
    ax.annotate("", xy=end, xytext=start, arrowprops=dict(arrowstyle="->", lw=1.5, color="0.25"))
    mid = ((start[0] + end[0]) / 2 + offset[0], (start[1] + end[1]) / 2 + offset[1])
    ax.text(*mid, text, ha="center", va="center", fontsize=8, color="0.2")


def transfer_diagram():
    """Chapter 7's diagram: transfer learning (left: a source domain with many labels trains a
    network; its backbone, and its head when the classes are the same, start the network of a
    target domain with few labels) beside reinforcement learning (right: an agent acts, the
    environment answers with a new state and a reward). Returns the figure."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8), width_ratios=[1.6, 1])
    for ax in (left, right):
        ax.set(xlim=(-0.02, 1.02), ylim=(0, 1.08), xticks=[], yticks=[])
        ax.grid(False)
        for spine in ax.spines.values():
            spine.set_visible(False)
    blue, orange, green = "#cfe3f3", "#fbe3c1", "#cdeadf"
    _box(left, (0.15, 0.78), "source domain\nmany labelled\nclean digits", blue)
    _box(left, (0.15, 0.22), "target domain\nfew labelled\nnoisy digits", orange)
    _box(left, (0.52, 0.78), "pretrained network\nbackbone | head", blue, width=0.3)
    _box(left, (0.52, 0.22), "fine-tuned network\nbackbone | head", orange, width=0.3)
    _box(left, (0.87, 0.22), "predictions\non the target", orange, width=0.22)
    _arrow(left, (0.29, 0.78), (0.36, 0.78), "pretrain", offset=(0.0, 0.12))
    _arrow(left, (0.29, 0.22), (0.36, 0.22), "fine-tune", offset=(0.0, 0.12))
    _arrow(left, (0.52, 0.69), (0.52, 0.31), "copy the weights\n(a new head if\nthe classes differ)",
           offset=(0.12, 0.0))
    _arrow(left, (0.67, 0.22), (0.76, 0.22))
    left.text(0.5, 1.03, "transfer learning", ha="center", fontsize=10, weight="bold")
    right.text(0.5, 1.03, "reinforcement learning", ha="center", fontsize=10, weight="bold")
    _box(right, (0.5, 0.8), "agent\n(a network that acts)", green, width=0.5)
    _box(right, (0.5, 0.2), "environment\n(a game, a robot's world)", green, width=0.5)
    _arrow(right, (0.3, 0.71), (0.3, 0.29), "action", offset=(-0.1, 0.0))
    _arrow(right, (0.7, 0.29), (0.7, 0.71), "new state\n+ reward", offset=(0.13, 0.0))
    right.text(0.5, 0.5, "no labels:\nlearns from\nrewards", ha="center", va="center", fontsize=8,
               color="0.3")
    return fig
