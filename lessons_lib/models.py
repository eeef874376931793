"""Tiny torch models for the lessons: small enough to train in seconds on a laptop CPU."""

from __future__ import annotations

import torch
from torch import nn

from lessons_lib._checks import check_int, check_real, check_seed


def mlp(n_in: int, n_out: int, *, width: int = 64, depth: int = 1, init_scale: float = 1.0,
        seed: int = 0) -> nn.Sequential:
    """A multilayer perceptron: ``depth`` hidden layers of ``width`` ReLU units.

    Weights start as PyTorch's default initialisation multiplied by ``init_scale`` (1 = default),
    a knob the lessons compare with the learning rate. ``seed`` fixes the initial weights.
    """
    n_in, n_out = check_int("n_in", n_in), check_int("n_out", n_out)
    width, depth = check_int("width", width), check_int("depth", depth, low=0)
    init_scale = check_real("init_scale", init_scale, low=0, low_open=True)
    seed = check_seed("seed", seed)
    gen_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        sizes = [n_in] + [width] * depth + [n_out]
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(nn.Linear(a, b))
            if i < len(sizes) - 2:
                layers.append(nn.ReLU())
        model = nn.Sequential(*layers)
        with torch.no_grad():
            for p in model.parameters():
                p.mul_(init_scale)
    finally:
        torch.random.set_rng_state(gen_state)
    return model


def small_cnn(n_out: int = 10, *, channels: int = 8, image_size: int = 8, seed: int = 0
              ) -> nn.Sequential:
    """A tiny convolutional network for small square grey images given as flat rows of pixels.

    Input: a batch of shape ``(n, image_size²)``, like the 8×8 digits of
    :func:`lessons_lib.data.sklearn_dataset` (which keeps each image as a row of 64 numbers), so
    it trains with :func:`lessons_lib.train.fit` exactly like an MLP. Layers::

        reshape to (n, 1, s, s) → Conv2d(1, channels, 3×3, padding 1) → ReLU
        → MaxPool 2×2 → flatten (channels · (s/2)² numbers) → Linear(…, n_out)

    Weights start at PyTorch's default initialisation; ``seed`` fixes them (the global random
    state is left as it was).
    """
    n_out = check_int("n_out", n_out)
    channels = check_int("channels", channels)
    image_size = check_int("image_size", image_size, low=2)
    if image_size % 2:
        raise ValueError("image_size must be an even integer >= 2 (for the 2×2 pooling), "
                         f"got {image_size}")
    seed = check_seed("seed", seed)
    gen_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        model = nn.Sequential(
            nn.Unflatten(1, (1, image_size, image_size)),
            nn.Conv2d(1, channels, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(channels * (image_size // 2) ** 2, n_out),
        )
    finally:
        torch.random.set_rng_state(gen_state)
    return model


def count_parameters(model: nn.Module) -> int:
    """Number of trainable numbers in ``model``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def tiny_net(seed: int = 0, *, n_in: int = 64, width: int = 32, n_out: int = 10) -> nn.Sequential:
    """The small network of chapter 2's full-batch experiments: ``n_in`` → ``width`` tanh units →
    ``n_out`` (by default 64 pixels → 32 → 10 digits, 2410 weights).

    Weights start at PyTorch's default initialisation drawn right after
    ``torch.manual_seed(seed)``, so ``tiny_net(s)`` is the network that
    ``torch.manual_seed(s); nn.Sequential(nn.Linear(64, 32), nn.Tanh(), nn.Linear(32, 10))``
    builds; the global random state is left as it was.
    """
    n_in, width, n_out = (check_int(name, value) for name, value in
                          (("n_in", n_in), ("width", width), ("n_out", n_out)))
    seed = check_seed("seed", seed)
    gen_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        model = nn.Sequential(nn.Linear(n_in, width), nn.Tanh(), nn.Linear(width, n_out))
    finally:
        torch.random.set_rng_state(gen_state)
    return model


def half_squared_error(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """½ ‖out − target‖², summed over the outputs and averaged over the samples (the rows).

    With one-hot targets (:func:`lessons_lib.data.one_hot_subset`) this is the loss of chapter 2's
    full-batch experiments; its Hessian with respect to the outputs is the identity, which keeps
    the curvature of the loss that of the network.
    """
    if not isinstance(out, torch.Tensor) or not isinstance(target, torch.Tensor):
        raise ValueError("out and target must be torch tensors, got "
                         f"{type(out).__name__} and {type(target).__name__}")
    if out.dim() != 2 or out.shape != target.shape:
        raise ValueError("out and target must be 2-d tensors of the same shape (samples, outputs), "
                         f"got {tuple(out.shape)} and {tuple(target.shape)}")
    return 0.5 * ((out - target) ** 2).sum(1).mean()


def digit_cnn(n_out: int = 10, *, channels: tuple[int, int] = (8, 16), seed: int = 0
              ) -> nn.Sequential:
    """The convolutional network of chapter 7 (transfer learning), for 8×8 images given as flat
    rows of 64 pixels. Its layers have names, so that a lesson can freeze or re-train them by
    name::

        unflatten (n, 1, 8, 8) → conv1: Conv2d(1, c1, 3×3, padding 1) → relu1
        → conv2: Conv2d(c1, c2, 3×3, padding 1) → relu2 → pool: MaxPool 2×2 → flatten
        → head: Linear(c2 · 16, n_out)

    Everything before ``head`` is the *backbone* (the features a source task teaches);
    ``head`` is the task-specific classifier that transfer replaces. ``seed`` fixes the initial
    weights (the global random state is left as it was).
    """
    from collections import OrderedDict

    n_out = check_int("n_out", n_out)
    if (not isinstance(channels, tuple | list) or len(channels) != 2):
        raise ValueError(f"channels must be a pair of integers >= 1 (c1, c2), got {channels!r}")
    c1, c2 = (check_int("channels", c) for c in channels)
    seed = check_seed("seed", seed)
    gen_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        model = nn.Sequential(OrderedDict(
            unflatten=nn.Unflatten(1, (1, 8, 8)),
            conv1=nn.Conv2d(1, c1, kernel_size=3, padding=1),
            relu1=nn.ReLU(),
            conv2=nn.Conv2d(c1, c2, kernel_size=3, padding=1),
            relu2=nn.ReLU(),
            pool=nn.MaxPool2d(2),
            flatten=nn.Flatten(),
            head=nn.Linear(c2 * 16, n_out),
        ))
    finally:
        torch.random.set_rng_state(gen_state)
    return model
