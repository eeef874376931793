r"""Fine-tuning experiments of chapter 7: several ways to start and train a network on a small
target set, each at several learning rates, over several seeds, trained together.

An *arm* (:class:`Arm`) is one way to train: the network it starts from (a function of the seed:
a pretrained model with its head kept or replaced, or a fresh network) and the learning rates of
its three layers for each setting to try (:func:`layer_rates`), optionally with layers unfrozen
late (gradual unfreezing). :func:`compare` trains every arm × setting × seed with
:func:`lessons_lib.batched.fine_tune_cnns` in one go, seed ``s`` drawing its own ``per_class``
target images per class (:func:`lessons_lib.transfer.target_split`), so that arms can be compared
seed by seed (paired) on the same test images. Each arm is judged at its own best setting, the one
with the highest mean accuracy over the seeds (:attr:`ArmResult.best`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from lessons_lib import batched, transfer
from lessons_lib._checks import check_choice, check_int, check_learning_rate, check_seed
from lessons_lib.models import digit_cnn

#: How the rates of the backbone follow the head's rate η in :func:`layer_rates`:
#: (conv1, conv2, head) as multiples of η. "frozen" trains the head only (a *linear probe*),
#: "top" the last convolution and the head, "all" every layer at one rate, "discriminative"
#: each layer 10× slower than the one above it (Howard & Ruder, 2018, use 2.6×).
UNFREEZE = {"frozen": (0.0, 0.0, 1.0), "top": (0.0, 1.0, 1.0), "all": (1.0, 1.0, 1.0),
            "discriminative": (0.01, 0.1, 1.0)}


def layer_rates(head_rates, how: str = "all") -> np.ndarray:
    """The rates (conv1, conv2, head) of one setting per head rate η in ``head_rates``:
    η · :data:`UNFREEZE` [how], e.g. ``layer_rates([1e-3], "discriminative")`` →
    ``[[1e-5, 1e-4, 1e-3]]``. Returns an array (len(head_rates), 3)."""
    check_choice("how", how, UNFREEZE)
    head_rates = check_learning_rate("head_rates", np.atleast_1d(np.asarray(head_rates, float)))
    return head_rates[:, None] * np.asarray(UNFREEZE[how])[None, :]


def start(source: str | None, head: str = "keep", *, seed: int = 0) -> nn.Module:
    """The network a fine-tuning run starts from.

    ``source`` None: a fresh :func:`lessons_lib.models.digit_cnn` (training *from scratch*; its
    initial weights come from seed 100 + ``seed``, so they differ from every pretrained model's).
    Otherwise the model pretrained on that source domain (:func:`lessons_lib.transfer.pretrained`,
    seed ``seed``) with its classifier kept (``head="keep"``: the target has the same ten
    classes) or replaced by a fresh one (``head="new"``: the usual case of new classes).
    """
    check_choice("head", head, ("keep", "new"))
    seed = check_seed("seed", seed)
    if source is None:
        return digit_cnn(10, channels=transfer.CHANNELS, seed=100 + seed)
    model = transfer.pretrained(source, seed=seed)
    return transfer.new_head(model, seed=seed) if head == "new" else model


def accuracy(model: nn.Module, X: torch.Tensor, y: torch.Tensor) -> float:
    """The share of the rows of ``X`` that ``model`` classifies as ``y`` (no gradients)."""
    with torch.no_grad():
        return float((model(X).argmax(1) == y).float().mean())


@dataclass(frozen=True)
class Arm:
    """One way to fine-tune: ``start(seed) -> network``; ``rates (R, 3)``: the R settings to try,
    each the rates of conv1, conv2 and the head (0 freezes a layer); ``unfreeze_at``: the update
    from which each layer trains (gradual unfreezing), the same for every setting."""

    start: Callable[[int], nn.Module]
    rates: np.ndarray
    unfreeze_at: tuple[int, int, int] = (0, 0, 0)


@dataclass(frozen=True)
class ArmResult:
    """What the R settings × S seeds of one arm reached.

    ``rates (R, 3)``; ``val_acc (R, S, E)``: test accuracy at ``eval_steps (E,)`` (0 after a
    divergence); ``final (R, S)``: at the end; ``best_setting``: the index of the setting with the
    highest mean final accuracy; ``best (S,)``: the final accuracy of each seed at that setting.
    """

    rates: np.ndarray
    eval_steps: np.ndarray
    val_acc: np.ndarray

    @property
    def final(self) -> np.ndarray:
        return self.val_acc[:, :, -1]

    @property
    def best_setting(self) -> int:
        return int(np.argmax(self.final.mean(1)))

    @property
    def best(self) -> np.ndarray:
        return self.final[self.best_setting]

    @property
    def cross_fitted(self) -> np.ndarray:
        """(S,) the final accuracy of each seed at a setting chosen *without* that seed: the
        setting with the best mean on the second half of the seeds is measured on the first
        half, and the other way round (*cross-fitting*), so that no seed's result is picked for
        being lucky on that seed. Needs at least two seeds."""
        final = self.final
        n = final.shape[1]
        if n < 2:
            raise ValueError(f"cross-fitting needs at least 2 seeds, got {n}")
        first, second = np.arange(n // 2), np.arange(n // 2, n)
        out = np.empty(n)
        out[first] = final[np.argmax(final[:, second].mean(1)), first]
        out[second] = final[np.argmax(final[:, first].mean(1)), second]
        return out

    @property
    def best_rates(self) -> np.ndarray:
        """The (conv1, conv2, head) rates of the best setting."""
        return self.rates[self.best_setting]

    def steps_to_reach(self, accuracy: float, setting: int | None = None) -> np.ndarray:
        """For each seed, the first evaluated update at which the test accuracy of ``setting``
        (default: the best) reached ``accuracy``; ``inf`` where it never did. A start that is
        already there before any update counts 0 (``compare`` evaluates update 0 too)."""
        setting = self.best_setting if setting is None else setting
        curves = self.val_acc[setting]
        hit = curves >= accuracy
        return np.where(hit.any(1), self.eval_steps[np.argmax(hit, 1)], np.inf).astype(float)


def compare(arms: Mapping[str, Arm], per_class: int, *, seeds: Sequence[int], steps: int = 100,
            batch_size: int = 16, optimizer: str = "adam", eval_every: int | None = None,
            domain: str = "noisy") -> dict[str, ArmResult]:
    """Train every arm at each of its settings on each seed's ``per_class`` target images per
    class of ``domain``, for ``steps`` updates with ``optimizer``, minibatches of
    min(``batch_size``, training set) images; return each arm's :class:`ArmResult`.

    Seed s draws the target set ``transfer.target_split(per_class, seed=s)``, orders the
    minibatches with seed s and starts each arm from ``arm.start(s)``, so arms differ only in
    how they start and train. The test accuracy is measured before the first update and every
    ``eval_every`` updates (default: only at the end).
    """
    if not arms:
        raise ValueError("arms must hold at least one Arm")
    for name, arm in arms.items():
        if not isinstance(arm, Arm):
            raise ValueError(f"arms[{name!r}] must be an Arm, got {type(arm).__name__}")
    seeds = [check_seed("seeds", s) for s in seeds]
    if not seeds:
        raise ValueError("seeds must hold at least one seed")
    steps = check_int("steps", steps)
    eval_every = steps if eval_every is None else check_int("eval_every", eval_every)
    targets = {s: transfer.target_split(per_class, seed=s, domain=domain) for s in seeds}
    settings = {name: np.asarray(arm.rates, float).reshape(-1, 3) for name, arm in arms.items()}
    runs = [(name, r, s) for name, rates in settings.items() for r in range(len(rates))
            for s in seeds]
    nets = [arms[name].start(s) for name, _, s in runs]
    test = targets[seeds[0]]
    before = np.array([float(accuracy(net, test.X_val, test.y_val)) for net in nets])
    hist = batched.fine_tune_cnns(
        nets, torch.stack([targets[s].X_train for *_, s in runs]),
        torch.stack([targets[s].y_train for *_, s in runs]), test.X_val, test.y_val,
        rates=np.array([settings[name][r] for name, r, _ in runs]),
        unfreeze_at=np.array([arms[name].unfreeze_at for name, *_ in runs], dtype=int),
        steps=steps, batch_size=min(check_int("batch_size", batch_size), len(test.y_train)),
        seeds=np.array([s for *_, s in runs]), optimizer=optimizer, eval_every=eval_every)
    acc = np.nan_to_num(hist.val_acc, nan=0.0)  # NaN after a divergence: 0
    acc = np.concatenate([before[:, None], acc], axis=1)
    eval_steps = np.concatenate([[0], hist.eval_steps])
    out, i = {}, 0
    for name, rates in settings.items():
        n = len(rates) * len(seeds)
        out[name] = ArmResult(rates, eval_steps, acc[i:i + n].reshape(len(rates), len(seeds), -1))
        i += n
    return out
