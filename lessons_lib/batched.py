"""Train many small networks at once: one per (learning rate, seed, weight decay), in one loop.

A sweep over learning rates and seeds is dozens of tiny trainings. Run one after the other with
:func:`lessons_lib.train.fit`, each step of each run pays Python's overhead; here the ``K`` runs
are stacked along a first axis and trained together with batched matrix products
(``torch.baddbmm``), which makes a sweep of 40 runs several times faster than training them one
after the other.

``fit_mlps(data, lrs=[1e-3, 1e-2, 1e-1], seeds=[0, 1, 2], steps=300, optimizer="adam")`` trains
``K`` networks, where ``lrs``, ``seeds`` (and ``l2``, ``decay``) are broadcast against each other
to ``K`` runs. Run ``k`` is the *same computation* as::

    train.fit(models.mlp(n_in, n_out, width=width, depth=depth, seed=seeds[k]), data,
              lr=lrs[k], steps=steps, optimizer=optimizer, batch_size=batch_size, seed=seeds[k])

same initial weights, same minibatches, same optimizer, same divergence rule (up to float32
rounding; ``tests/test_batched.py`` checks it run by run). ``fit_cnns`` does the same for
:func:`lessons_lib.models.small_cnn`.

How one optimizer serves ``K`` learning rates. Every optimizer of ``torch.optim`` (and
AdaBelief) moves the weights by ``lr`` times a direction ``u`` that does not depend on ``lr``:
``u`` is built from the gradients only (momentum, running averages of g², ...). So the loop lets
the optimizer take its step with ``lr = 1`` on the stacked weights, reads ``u`` off as the change
of the weights, and applies ``θ_k ← θ_k − η_k · u_k`` to each run with its own ``η_k``. All the
optimizers' operations are elementwise, so the runs do not mix.

Weight decay, per run. ``l2[k]`` adds ``l2[k] · θ`` to the gradient before the optimizer sees it
(what ``weight_decay`` does in ``torch.optim.SGD`` and ``torch.optim.Adam``: an L2 penalty);
``decay[k]`` shrinks the weights, ``θ ← θ · (1 − η_k · decay[k])``, outside the optimizer (what
``weight_decay`` does in ``torch.optim.AdamW``: decoupled weight decay). ``optimizer="adam"``
with ``decay`` is AdamW.

Why the stacks are built by hand. ``torch.func.stack_module_state`` + ``torch.func.vmap`` over
``functional_call`` of the ``models`` networks computes the same runs (the same final losses, to
float32 rounding), but was slower on the sizes the lessons use. Measured on a 2-core CPU
(AMD EPYC, shared), 1 torch thread, torch 2.13, digits, batch 64, 300 steps, best of 3, the whole
``_fit`` loop with either stack: MLP width 64 depth 1, 39 runs, Adam: 1.27 s by hand, 1.40 s with
vmap; 9 runs, SGD: 0.40 s / 0.56 s; depth 8, 16 runs, Adam: 2.73 s / 3.30 s; ``small_cnn`` with
8 channels, 12 runs, momentum: 2.11 s / 2.96 s (vmap runs ``Conv2d`` per network; here one
product with the unfolded patches serves all of them).
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn

from lessons_lib._checks import check_choice, check_int, check_learning_rate, check_real, check_run
from lessons_lib.data import Split, minibatch_indices
from lessons_lib.models import digit_cnn, mlp, small_cnn
from lessons_lib.optimizers import TORCH_OPTIMIZERS, torch_optimizer


@dataclass(frozen=True)
class BatchHistory:
    """What happened in ``K`` runs trained together (arrays with a first axis of length ``K``).

    ``train_loss (K, steps)``: minibatch loss of every update, NaN after a run diverged;
    ``val_loss, val_acc (K, E)``: on the validation set at ``eval_steps (E,)``, NaN after
    divergence;
    ``diverged (K,)``: the run stopped because its loss was not finite or exceeded
    ``diverge`` × its first value (the rule of :func:`lessons_lib.train.fit`);
    ``params``: the final weights of all runs, stacked as the loop holds them (for
    :func:`trained_mlp`).
    """

    lrs: np.ndarray
    seeds: np.ndarray
    l2: np.ndarray
    decay: np.ndarray
    train_loss: np.ndarray
    eval_steps: np.ndarray
    val_loss: np.ndarray
    val_acc: np.ndarray
    diverged: np.ndarray
    params: tuple[torch.Tensor, ...] = ()

    @property
    def final_val_loss(self) -> np.ndarray:
        """Validation loss at the end of each run; ``inf`` for a run that diverged."""
        return np.where(self.diverged, np.inf, self.val_loss[:, -1])

    @property
    def final_val_acc(self) -> np.ndarray:
        """Validation accuracy at the end of each run; 0 for a run that diverged."""
        return np.where(self.diverged, 0.0, self.val_acc[:, -1])


def _stacked_mlp(n_in, n_out, width, depth, seeds) -> list[torch.Tensor]:
    """Weights and biases of ``models.mlp(..., seed=s)`` for every s, stacked: [W0, b0, W1, ...]."""
    nets = {int(s): mlp(n_in, n_out, width=width, depth=depth, seed=int(s)) for s in set(seeds)}
    layers = [[m for m in nets[int(s)] if isinstance(m, nn.Linear)] for s in seeds]
    params = []
    for i in range(len(layers[0])):
        params.append(torch.stack([run[i].weight.detach() for run in layers]).clone())
        params.append(torch.stack([run[i].bias.detach() for run in layers]).clone())
    return [p.requires_grad_(True) for p in params]


def trained_mlp(history: BatchHistory, k: int) -> nn.Sequential:
    """Run ``k`` of a :func:`fit_mlps` call as an ordinary ``models.mlp`` network holding the
    weights that run ended with (e.g. to measure its sharpness with :mod:`lessons_lib.sharpness`)."""
    params = history.params if isinstance(history, BatchHistory) else ()
    weights, biases = params[::2], params[1::2]
    chain = bool(params) and len(params) % 2 == 0 and all(
        w.dim() == 3 and b.dim() == 2 and b.shape[1] == w.shape[1] for w, b in zip(weights, biases)
    ) and all(nxt.shape[2] == w.shape[1] for w, nxt in zip(weights, weights[1:]))
    if not chain:  # e.g. a fit_cnns history: its stacks are not a chain of linear layers
        raise ValueError("history must come from batched.fit_mlps (its stacked MLP weights)")
    k = check_int("k", k, low=0, high=params[0].shape[0] - 1)
    depth = len(params) // 2 - 1
    n_out, width, n_in = params[-2].shape[1], params[0].shape[1], params[0].shape[2]
    net = mlp(n_in, n_out, width=width, depth=depth)
    with torch.no_grad():
        for layer, (w, b) in zip([m for m in net if isinstance(m, nn.Linear)],
                                 zip(params[::2], params[1::2])):
            layer.weight.copy_(w[k])
            layer.bias.copy_(b[k])
    return net


def _forward(params: list[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """The K networks on inputs ``x`` of shape (K, batch, n_in): outputs (K, batch, n_out)."""
    n_layers = len(params) // 2
    for i in range(n_layers):
        w, b = params[2 * i], params[2 * i + 1]
        x = torch.baddbmm(b.unsqueeze(1), x, w.transpose(1, 2))
        if i < n_layers - 1:
            x = torch.relu(x)
    return x


def _stacked_cnn(n_out, channels, image_size, seeds) -> list[torch.Tensor]:
    """Parameters of ``models.small_cnn(..., seed=s)`` for every s, stacked:
    [conv weight (K, 9, channels), conv bias (K, channels), linear weight, linear bias]."""
    nets = {int(s): small_cnn(n_out, channels=channels, image_size=image_size, seed=int(s))
            for s in set(seeds)}
    conv = [nets[int(s)][1] for s in seeds]
    linear = [nets[int(s)][5] for s in seeds]
    params = [torch.stack([c.weight.detach().reshape(channels, 9).T for c in conv]),
              torch.stack([c.bias.detach() for c in conv]),
              torch.stack([m.weight.detach() for m in linear]),
              torch.stack([m.bias.detach() for m in linear])]
    return [p.clone().requires_grad_(True) for p in params]


def _patches(x: torch.Tensor, image_size: int) -> torch.Tensor:
    """The 3×3 patches (zero padding) around every pixel of flat images: (n, 9, image_size²)."""
    return nn.functional.unfold(x.reshape(-1, 1, image_size, image_size), kernel_size=3, padding=1)


def _forward_cnn(params: list[torch.Tensor], patches: torch.Tensor) -> torch.Tensor:
    """The K small CNNs on image patches of shape (K, batch, 9, s²): outputs (K, batch, n_out)."""
    conv_w, conv_b, lin_w, lin_b = params
    k, n, _, pixels = patches.shape
    s, c = int(round(pixels**0.5)), conv_w.shape[-1]
    h = torch.einsum("knpq,kpc->kncq", patches, conv_w) + conv_b[:, None, :, None]  # convolution
    h = nn.functional.max_pool2d(torch.relu(h).reshape(k * n, c, s, s), 2)
    return torch.baddbmm(lin_b.unsqueeze(1), h.reshape(k, n, -1), lin_w.transpose(1, 2))


def fit_mlps(data: Split, *, lrs, seeds=0, steps: int, optimizer="sgd", l2=0.0, decay=0.0,
             width: int = 64, depth: int = 1, batch_size: int = 64, eval_every: int = 50,
             diverge: float = 1e3, lr_factor: Callable[[int], float] | None = None
             ) -> BatchHistory:
    """Train ``K`` MLPs on ``data`` together; ``lrs, seeds, l2, decay`` broadcast to ``K`` runs.

    Run ``k`` is ``models.mlp(n_in, n_out, width=width, depth=depth, seed=seeds[k])`` trained as
    :func:`lessons_lib.train.fit` would train it.

    ``optimizer``: a name of :data:`lessons_lib.optimizers.TORCH_OPTIMIZERS` or a function
    ``params, lr -> torch optimizer`` whose update is ``lr`` × a direction independent of ``lr``
    (true of every ``torch.optim`` optimizer and of AdaBelief).
    ``l2``: L2 penalty added to the gradient, ``g ← g + l2·θ`` (coupled weight decay).
    ``decay``: decoupled weight decay, ``θ ← θ·(1 − η·decay)`` before each update (AdamW).
    ``lr_factor``: optional function of the update t = 0, 1, … multiplying every run's rate
    (e.g. ``lambda t: 0.1 ** (t // 100)``, a step decay).
    """
    width, depth = check_int("width", width), check_int("depth", depth, low=0)

    def make(seeds_arr):
        return _stacked_mlp(data.n_features, data.n_outputs, width, depth, seeds_arr)

    return _fit(data, make, _forward, lrs=lrs, seeds=seeds, steps=steps, optimizer=optimizer,
                l2=l2, decay=decay, batch_size=batch_size, eval_every=eval_every,
                diverge=diverge, lr_factor=lr_factor)


def fit_cnns(data: Split, *, lrs, seeds=0, steps: int, optimizer="sgd", l2=0.0, decay=0.0,
             channels: int = 8, image_size: int = 8, batch_size: int = 64, eval_every: int = 50,
             diverge: float = 1e3, lr_factor: Callable[[int], float] | None = None
             ) -> BatchHistory:
    """Train ``K`` copies of :func:`lessons_lib.models.small_cnn` on ``data`` together.

    Run ``k`` is ``models.small_cnn(n_out, channels=channels, image_size=image_size,
    seed=seeds[k])`` trained as :func:`lessons_lib.train.fit` would train it; the other arguments
    are those of :func:`fit_mlps`. The convolution is computed as a product of each network's 3×3
    filters with the 3×3 patches of the images (``torch.nn.functional.unfold``, cut once), so that
    all ``K`` networks share one batched product; ``tests/test_batched.py`` checks the result
    against ``train.fit``.
    """
    channels = check_int("channels", channels)
    image_size = check_int("image_size", image_size, low=2)
    if image_size % 2 or data.n_features != image_size**2:
        raise ValueError(f"image_size must be even and image_size² must equal the number of "
                         f"features ({data.n_features}), got image_size={image_size}")

    def make(seeds_arr):
        return _stacked_cnn(data.n_outputs, channels, image_size, seeds_arr)

    # the patches of every image are cut once; each step then only gathers its minibatch
    patched = dataclasses.replace(data, X_train=_patches(data.X_train, image_size),
                                  X_val=_patches(data.X_val, image_size))
    return _fit(patched, make, _forward_cnn, lrs=lrs, seeds=seeds, steps=steps,
                optimizer=optimizer, l2=l2, decay=decay, batch_size=batch_size,
                eval_every=eval_every, diverge=diverge, lr_factor=lr_factor)


def _optimizer_step(opt, params, views, factor, alive, all_alive, has_l2, has_decay) -> None:
    """One update of every run by a torch optimizer stepping at lr = 1: read its direction u_k off
    as the change of the weights, then apply θ_k ← θ_k·(1 − η_k·decay_k) + η_k·u_k."""
    with torch.no_grad():
        before = [p.detach().clone() for p in params]
        for p, v in zip(params, views):
            if not all_alive:
                p.grad[~alive] = 0.0
            if has_l2:
                p.grad.add_(v["l2"] * p)
        opt.step()
        for p, old, v in zip(params, before, views):
            rate = v["lr"] * factor
            p.sub_(old).mul_(rate)  # η_k · (the optimizer's step at lr = 1)
            p.add_(old * (1 - rate * v["decay"]) if has_decay else old)
            if not all_alive:
                p.copy_(torch.where(v["alive"](alive), p, old))


def _fit(data: Split, make_params, forward, *, lrs, seeds, steps, optimizer, l2, decay,
         batch_size, eval_every, diverge, lr_factor) -> BatchHistory:
    """The training loop shared by :func:`fit_mlps` and :func:`fit_cnns`."""
    if not callable(optimizer):
        check_choice("optimizer", optimizer, TORCH_OPTIMIZERS)
    lrs = check_learning_rate("lrs", lrs).reshape(-1)
    try:
        seeds_arr = np.asarray(seeds)
    except (TypeError, ValueError):
        raise ValueError(f"seeds must be an integer >= 0 or an array of them, got {seeds!r}"
                         ) from None
    if (seeds_arr.size == 0 or not np.issubdtype(seeds_arr.dtype, np.integer)
            or (seeds_arr < 0).any()):
        raise ValueError(f"seeds must be an integer >= 0 or an array of them, got {seeds!r}")
    l2_arr = check_learning_rate("l2", l2, allow_zero=True).reshape(-1)
    decay_arr = check_learning_rate("decay", decay, allow_zero=True).reshape(-1)
    try:
        lrs, seeds_arr, l2_arr, decay_arr = np.broadcast_arrays(lrs, seeds_arr.reshape(-1),
                                                                l2_arr, decay_arr)
    except ValueError:
        raise ValueError("lrs, seeds, l2 and decay must have one value or the same number of "
                         f"values, got {np.size(lrs)}, {seeds_arr.size}, {l2_arr.size} and "
                         f"{decay_arr.size}") from None
    steps, batch_size, eval_every, diverge = check_run(data, steps, batch_size, eval_every, diverge)
    n = len(data.X_train)
    if lr_factor is not None and not callable(lr_factor):
        raise ValueError(f"lr_factor must be a function of the step or None, got {lr_factor!r}")

    k = lrs.size
    classification = data.task == "classification"
    params = make_params(seeds_arr)
    opt = (optimizer(params, 1.0) if callable(optimizer)
           else torch_optimizer(optimizer, params, 1.0))
    for group in opt.param_groups:  # torch's multi-tensor kernels: same arithmetic, less overhead
        if "foreach" in group and group["foreach"] is None:
            group["foreach"] = True
    batches = {s: minibatch_indices(n, batch_size, steps, s) for s in set(seeds_arr.tolist())}
    idx = torch.stack([batches[int(s)] for s in seeds_arr], dim=1)  # (steps, K, batch)
    lr_t = torch.as_tensor(lrs, dtype=torch.float32)
    l2_t = torch.as_tensor(l2_arr, dtype=torch.float32)
    decay_t = torch.as_tensor(decay_arr, dtype=torch.float32)

    def shape_like(v, p):  # a per-run vector, broadcastable against a stacked parameter
        return v.view(-1, *([1] * (p.dim() - 1)))

    has_l2, has_decay = bool((l2_t != 0).any()), bool((decay_t != 0).any())
    views = [{"lr": shape_like(lr_t, p), "l2": shape_like(l2_t, p), "decay": shape_like(decay_t, p),
              "alive": functools.partial(shape_like, p=p)} for p in params]

    def losses(out, y):  # one mean loss per run
        if classification:
            ce = nn.functional.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1),
                                             reduction="none")
            return ce.view(y.shape).mean(1)
        return ((out.squeeze(-1) - y) ** 2).mean(1)

    train_loss = np.full((k, steps), np.nan)
    eval_steps = [s for s in range(1, steps + 1) if s % eval_every == 0 or s == steps]
    val_loss = np.full((k, len(eval_steps)), np.nan)
    val_acc = np.full((k, len(eval_steps)), np.nan)
    alive = torch.ones(k, dtype=torch.bool)
    first = None
    x_val = data.X_val.expand(k, *data.X_val.shape)
    y_val = data.y_val.expand(k, *data.y_val.shape)
    for step in range(1, steps + 1):
        # only the runs still alive are computed; the others keep their last weights
        live = alive.nonzero()[:, 0]
        every = len(live) == k
        batch = idx[step - 1] if every else idx[step - 1, live]
        live_params = params if every else [p[live] for p in params]
        loss = losses(forward(live_params, data.X_train[batch]), data.y_train[batch])
        value = loss.detach()
        first = value.clone() if first is None else first
        bad = ~torch.isfinite(value) | (value > diverge * first[live])
        train_loss[live.numpy(), step - 1] = value.numpy()
        alive[live[bad]] = False
        if not alive.any():
            break
        for p in params:
            p.grad = None
        loss[~bad].sum().backward()
        factor = 1.0 if lr_factor is None else float(lr_factor(step - 1))
        all_alive = bool(alive.all())  # after this step's divergence check
        _optimizer_step(opt, params, views, factor, alive, all_alive, has_l2, has_decay)

        if step in eval_steps:
            with torch.no_grad():
                out = forward(params, x_val)
                e = eval_steps.index(step)
                vl = losses(out, y_val).numpy()
                va = ((out.argmax(-1) == y_val).float().mean(1).numpy() if classification
                      else np.zeros(k))
                live = alive.numpy()
                val_loss[live, e], val_acc[live, e] = vl[live], va[live]
    return BatchHistory(lrs=lrs.copy(), seeds=seeds_arr.copy(), l2=l2_arr.copy(),
                        decay=decay_arr.copy(), train_loss=train_loss,
                        eval_steps=np.array(eval_steps), val_loss=val_loss, val_acc=val_acc,
                        diverged=~alive.numpy(),
                        params=tuple(p.detach().clone() for p in params))


@dataclass(frozen=True)
class FineTuneHistory:
    """What happened in ``K`` fine-tuning runs trained together by :func:`fine_tune_cnns`.

    ``train_loss (K, steps)``; ``val_loss, val_acc (K, E)`` at ``eval_steps (E,)``;
    ``diverged (K,)``; ``params``: the final stacked weights (for :func:`trained_digit_cnn`).
    """

    train_loss: np.ndarray
    eval_steps: np.ndarray
    val_loss: np.ndarray
    val_acc: np.ndarray
    diverged: np.ndarray
    params: tuple[torch.Tensor, ...]

    @property
    def final_val_acc(self) -> np.ndarray:
        """Validation accuracy at the end of each run; 0 for a run that diverged."""
        return np.where(self.diverged, 0.0, self.val_acc[:, -1])


def _per_run_cross_entropy(out: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The mean cross-entropy of each of K runs: outputs (K, n, classes), labels (K, n) → (K,)."""
    return nn.functional.cross_entropy(out.reshape(-1, out.shape[-1]), labels.reshape(-1),
                                       reduction="none").view(out.shape[0], -1).mean(1)


def _per_run_accuracy(out: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The accuracy of each of K runs: outputs (K, n, classes), labels (K, n) → (K,)."""
    return (out.argmax(-1) == labels).float().mean(1)


def _sgd_step(params: list[torch.Tensor], rate: torch.Tensor) -> None:
    """θ_k ← θ_k − η_k · g_k for every stacked parameter, with one rate per run (K,)."""
    with torch.no_grad():
        for p in params:
            p.sub_(rate.view(-1, *([1] * (p.dim() - 1))) * p.grad)


def _record_losses(loss: torch.Tensor, first, alive: torch.Tensor, train_loss: np.ndarray,
                   step: int, diverge: float) -> torch.Tensor:
    """The divergence rule of the loops that train K runs with one loss each: record the losses
    of the runs still alive at ``step`` (1-based) in ``train_loss``, and mark dead (in ``alive``,
    in place) every run whose loss is not finite or exceeds ``diverge`` × its first loss, the
    rule of :func:`lessons_lib.train.fit`. Returns the first losses (set at the first call)."""
    value = loss.detach()
    first = value.clone() if first is None else first
    bad = ~torch.isfinite(value) | (value > diverge * first) | ~alive
    train_loss[alive.numpy(), step - 1] = value[alive].numpy()
    alive &= ~bad
    return first


def _stack_digit_cnns(models_) -> list[torch.Tensor]:
    """[conv1 w, conv1 b, conv2 w, conv2 b, head w, head b] of every model, stacked."""
    names = ("conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias", "head.weight", "head.bias")
    states = [dict(m.named_parameters()) for m in models_]
    try:
        return [torch.stack([s[n].detach() for s in states]).clone().requires_grad_(True)
                for n in names]
    except (KeyError, RuntimeError):
        raise ValueError("models must be models.digit_cnn networks of one shape") from None


def _forward_digit_cnns(params: list[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """K digit CNNs on images x of shape (K, batch, 64): outputs (K, batch, n_out).

    The K networks' channels are laid side by side, (batch, K · channels, 8, 8), and each
    convolution is one grouped ``conv2d`` (``groups=K``: network k's filters see only network
    k's channels), which trains faster on a CPU than K separate convolutions or a convolution
    written as shifted copies of the images."""
    c1w, c1b, c2w, c2b, hw, hb = params
    k, n, _ = x.shape
    h = x.transpose(0, 1).reshape(n, k, 8, 8)
    h = torch.relu(nn.functional.conv2d(h, c1w.flatten(0, 1), c1b.flatten(), padding=1, groups=k))
    h = torch.relu(nn.functional.conv2d(h, c2w.flatten(0, 1), c2b.flatten(), padding=1, groups=k))
    h = nn.functional.max_pool2d(h, 2).reshape(n, k, -1).transpose(0, 1)  # (K, batch, c2 · 16)
    return torch.baddbmm(hb.unsqueeze(1), h, hw.transpose(1, 2))


def _evaluate_digit_cnns(params: list[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """The outputs (K, n, n_out) of K digit CNNs on the same images x (n, 64), one network at a
    time with torch's own convolution: for many images this is several times faster than
    :func:`_forward_digit_cnns`, which is built for small training batches (no gradients)."""
    c1w, c1b, c2w, c2b, hw, hb = params
    h0 = x.view(-1, 1, 8, 8)
    outs = []
    with torch.no_grad():
        for k in range(c1w.shape[0]):
            h = torch.relu(nn.functional.conv2d(h0, c1w[k], c1b[k], padding=1))
            h = torch.relu(nn.functional.conv2d(h, c2w[k], c2b[k], padding=1))
            h = nn.functional.max_pool2d(h, 2).flatten(1)
            outs.append(torch.addmm(hb[k], h, hw[k].T))
    return torch.stack(outs)


def trained_digit_cnn(history: FineTuneHistory, k: int) -> nn.Module:
    """Run ``k`` of :func:`fine_tune_cnns` as an ordinary ``models.digit_cnn``."""
    params = history.params
    k = check_int("k", k, low=0, high=params[0].shape[0] - 1)
    net = digit_cnn(params[-2].shape[1], channels=(params[0].shape[1], params[2].shape[1]))
    with torch.no_grad():
        for p, stacked in zip(net.parameters(), params):
            p.copy_(stacked[k])
    return net


def fine_tune_cnns(models_, X_train: torch.Tensor, y_train: torch.Tensor, X_val: torch.Tensor,
                   y_val: torch.Tensor, *, rates, steps: int, seeds=0, batch_size: int = 32,
                   optimizer: str = "adam", unfreeze_at=None, eval_every: int = 50,
                   diverge: float = 1e3) -> FineTuneHistory:
    """Fine-tune ``K`` :func:`lessons_lib.models.digit_cnn` networks together, each on its own
    training set, with its own rate for every layer.

    ``models_``: K networks (e.g. pretrained ones with a new head, or fresh ones), not changed.
    ``X_train (K, n, 64)``, ``y_train (K, n)``: run k's n training samples (e.g. the few target
    examples its seed drew); ``X_val, y_val``: one validation set for all runs.
    ``rates (K, 3)``: the learning rates of conv1, conv2 and the head in run k (0 freezes a
    layer); ``unfreeze_at (K, 3)``: the update from which each layer trains (default 0; gradual
    unfreezing unfreezes the head first, then the layers below). Before that, the layer's
    gradient is set to zero, so it does not move and (with momentum or Adam) builds no history;
    Adam's step counter is shared by the layers of a run, so a layer unfrozen late starts with
    a nearly unbiased step size.
    ``seeds``: one per run (or one for all): the order of run k's minibatches, as
    :func:`lessons_lib.data.minibatch_indices` gives it for n samples. ``optimizer``: "sgd",
    "momentum" (0.9) or "adam" with torch's defaults.

    Run k computes what ``transfer.fine_tune`` computes for the same network, data, rates and
    seed (the layers' updates are independent across runs; ``tests/test_transfer.py`` checks
    one against the other).
    """
    models_ = list(models_)
    k = len(models_)
    if k == 0:
        raise ValueError("models_ must hold at least one network")
    if (not isinstance(X_train, torch.Tensor) or X_train.dim() != 3 or X_train.shape[0] != k
            or X_train.shape[2] != 64 or y_train.shape != X_train.shape[:2]):
        raise ValueError(f"X_train must be a tensor (K={k}, n, 64) and y_train (K, n), got "
                         f"{tuple(getattr(X_train, 'shape', ()))} and "
                         f"{tuple(getattr(y_train, 'shape', ()))}")
    n = X_train.shape[1]
    check_choice("optimizer", optimizer, ("sgd", "momentum", "adam"))
    rates = check_learning_rate("rates", rates, allow_zero=True)
    if rates.shape != (k, 3):
        raise ValueError(f"rates must have shape (K={k}, 3): conv1, conv2, head of each run, got "
                         f"{rates.shape}")
    start = np.zeros((k, 3), dtype=int) if unfreeze_at is None else np.asarray(unfreeze_at)
    if start.shape != (k, 3) or start.dtype.kind not in "iu" or (start < 0).any():
        raise ValueError(f"unfreeze_at must be integers >= 0 of shape (K={k}, 3), got "
                         f"{unfreeze_at!r}")
    steps = check_int("steps", steps)
    batch_size = check_int("batch_size", batch_size, low=1, high=n)
    eval_every = check_int("eval_every", eval_every)
    diverge = check_real("diverge", diverge, low=1, low_open=True)
    seeds_arr = np.asarray(seeds)
    if (seeds_arr.size not in (1, k) or seeds_arr.dtype.kind not in "iu"
            or (seeds_arr < 0).any()):
        raise ValueError(f"seeds must be an integer >= 0 or one per run (K={k}), got {seeds!r}")
    seeds_arr = np.broadcast_to(seeds_arr.reshape(-1), (k,))
    if (not isinstance(X_val, torch.Tensor) or X_val.dim() != 2 or X_val.shape[1] != 64
            or not isinstance(y_val, torch.Tensor) or y_val.shape != X_val.shape[:1]):
        raise ValueError(f"X_val must be a tensor (n_val, 64) and y_val (n_val,), got "
                         f"{tuple(getattr(X_val, 'shape', ()))} and "
                         f"{tuple(getattr(y_val, 'shape', ()))}")

    params = _stack_digit_cnns(models_)
    opt = (torch.optim.Adam(params, lr=1.0, foreach=True) if optimizer == "adam" else
           torch.optim.SGD(params, lr=1.0, momentum=0.9, foreach=True)
           if optimizer == "momentum" else None)  # plain SGD: θ ← θ − η·g, applied directly
    order = torch.stack([minibatch_indices(n, batch_size, steps, int(s)) for s in seeds_arr],
                        dim=1)  # (steps, K, batch)
    run = torch.arange(k)[:, None]
    layer_of = [0, 0, 1, 1, 2, 2]  # which layer each stacked tensor belongs to
    rate_t = torch.as_tensor(rates, dtype=torch.float32)
    start_t = torch.as_tensor(start)

    def per_run(v, p):
        return v.view(-1, *([1] * (p.dim() - 1)))

    eval_steps = [s for s in range(1, steps + 1) if s % eval_every == 0 or s == steps]
    train_loss = np.full((k, steps), np.nan)
    val_loss = np.full((k, len(eval_steps)), np.nan)
    val_acc = np.full((k, len(eval_steps)), np.nan)
    alive = torch.ones(k, dtype=torch.bool)
    first = None
    y_val_k = y_val.expand(k, *y_val.shape)
    for step in range(1, steps + 1):
        idx = order[step - 1]
        out = _forward_digit_cnns(params, X_train[run, idx])
        loss = _per_run_cross_entropy(out, y_train[run, idx])
        first = _record_losses(loss, first, alive, train_loss, step, diverge)
        if not alive.any():
            break
        for p in params:
            p.grad = None
        loss[alive].sum().backward()
        training = (start_t <= step - 1) & alive[:, None]  # (K, 3): layer trains at this update
        views = []
        for p, layer in zip(params, layer_of):
            on = per_run(training[:, layer], p)
            p.grad.mul_(on)  # frozen layers and dead runs: no gradient, no history
            views.append({"lr": per_run(rate_t[:, layer], p) * on, "l2": None, "decay": None,
                          "alive": functools.partial(per_run, p=p)})
        if opt is None:
            with torch.no_grad():
                for p, v in zip(params, views):
                    p.sub_(v["lr"] * p.grad)
        else:
            _optimizer_step(opt, params, views, 1.0, alive, True, False, False)
        if step in eval_steps:
            with torch.no_grad():
                out = _evaluate_digit_cnns(params, X_val)
                e = eval_steps.index(step)
                vl, va = _per_run_cross_entropy(out, y_val_k), _per_run_accuracy(out, y_val_k)
                live = alive.numpy()
                val_loss[live, e], val_acc[live, e] = vl.numpy()[live], va.numpy()[live]
    return FineTuneHistory(train_loss, np.array(eval_steps), val_loss, val_acc, ~alive.numpy(),
                           tuple(p.detach().clone() for p in params))
