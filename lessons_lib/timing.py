"""Timing training steps against the batch size: is a power of two faster than its neighbours?

Three pieces, used in this order:

1. :func:`training_step` builds one full training step (forward pass, backward pass, optimizer
   step) of a model on synthetic data, as a function ``step(batch_size)``;
2. :func:`time_steps` times that step for every batch size of a list, in rounds that visit the
   sizes in a new shuffled order each time, and returns :class:`StepTimes` (seconds per step
   and per sample, one row per repeat);
3. :meth:`StepTimes.neighbour_ratios` and :func:`compare_with_neighbours` compare each batch size
   ``B`` with its neighbours ``B − 1`` and ``B + 1``:

   .. math:: \\rho(B) = \\frac{T(B)}{\\tfrac12\\,[\\,T(B-1) + T(B+1)\\,]},

   where ``T`` is the time of one step. ``ρ < 1``: a step at ``B`` took less time than the
   straight line through its neighbours predicts, so ``B`` is cheaper per sample than the
   trend; ``ρ = 1``: nothing special about ``B``.

Why neighbours and ratios: a machine's speed drifts (another program starts, the clock
changes), by more than the few per cent a "good" batch size might gain. ``B − 1``, ``B`` and
``B + 1`` are measured in the same rounds, in shuffled orders, so a drift slower than one
round hits all three alike and cancels in ``ρ``; faster noise varies ``ρ`` between repeats and
shows up in its interval over repeats, not as a bias.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from lessons_lib._checks import check_choice, check_int, check_real, check_seed
from lessons_lib.claims import Interval, mean_interval

STATISTICS = ("median", "min", "mean")


def _check_batch_sizes(name: str, values) -> np.ndarray:
    """A non-empty list of distinct integer batch sizes >= 1, as an int array."""
    try:
        sizes = list(values)
    except TypeError:
        raise ValueError(f"{name} must be a non-empty list of integers >= 1, got {values!r}"
                         ) from None
    if not sizes:
        raise ValueError(f"{name} must be a non-empty list of integers >= 1, got an empty list")
    out = np.array([check_int(name, b, low=1) for b in sizes], dtype=int)
    if np.unique(out).size != out.size:
        raise ValueError(f"{name} must not repeat a batch size, got {sorted(out.tolist())}")
    return out


def training_step(model, *, n_in: int, n_out: int, max_batch: int, lr: float = 0.01,
                  seed: int = 0, device: str = "cpu", dtype=None) -> Callable[[int], None]:
    """One full training step of ``model`` on synthetic data, as a function of the batch size.

    ``step = training_step(model, n_in=64, n_out=10, max_batch=513)`` draws ``max_batch`` random
    inputs (standard normal, ``n_in`` numbers each) and class labels (``n_out`` classes) once;
    ``step(B)`` then takes the first ``B`` of them and runs what one iteration of training runs:
    ``zero_grad``, the forward pass, the cross-entropy loss, ``backward`` and one SGD step with
    learning rate ``lr``. It returns nothing, so nothing is copied back from a GPU.

    ``device`` (``"cpu"``, ``"cuda"``, …) and ``dtype`` (e.g. ``torch.float16`` to use a GPU's
    Tensor Cores) move the model and the data there. The model is changed in place by the steps:
    pass a fresh one if its weights matter afterwards.
    """
    import torch

    n_in, n_out = check_int("n_in", n_in), check_int("n_out", n_out)
    max_batch = check_int("max_batch", max_batch)
    lr = check_real("lr", lr, low=0, low_open=True)
    seed = check_seed("seed", seed)
    if not isinstance(model, torch.nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    dtype = torch.float32 if dtype is None else dtype
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ValueError(f"dtype must be a floating-point torch dtype (torch.float32, "
                         f"torch.float16, torch.bfloat16, …), got {dtype!r}")
    gen = torch.Generator().manual_seed(seed)
    X = torch.randn(max_batch, n_in, generator=gen).to(device=device, dtype=dtype)
    y = torch.randint(0, n_out, (max_batch,), generator=gen).to(device)
    model = model.to(device=device, dtype=dtype)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    loss_fn = torch.nn.functional.cross_entropy

    def step(batch_size: int) -> None:
        if not 1 <= batch_size <= max_batch:
            raise ValueError(f"batch_size must be an integer in [1, {max_batch}] (max_batch), "
                             f"got {batch_size!r}")
        opt.zero_grad(set_to_none=True)
        loss_fn(model(X[:batch_size]), y[:batch_size]).backward()
        opt.step()

    return step


@dataclass(frozen=True)
class StepTimes:
    """What :func:`time_steps` measured.

    ``batch_sizes``: the sizes, in the order they were given (not the order they ran);
    ``seconds_per_step``: an array (repeats × sizes), one row per repeat, each entry the
    ``statistic`` (the minimum by default) of ``steps`` timed steps; ``order``: (repeats ×
    steps × sizes), the batch sizes in the order each round of each repeat ran them.
    """

    batch_sizes: np.ndarray
    seconds_per_step: np.ndarray
    order: np.ndarray
    steps: int
    statistic: str

    @property
    def repeats(self) -> int:
        return self.seconds_per_step.shape[0]

    @property
    def seconds_per_sample(self) -> np.ndarray:
        """Seconds per step divided by the batch size: (repeats × sizes)."""
        return self.seconds_per_step / self.batch_sizes

    def column(self, batch_size: int) -> np.ndarray:
        """The seconds per step of one batch size, one number per repeat."""
        where = np.flatnonzero(self.batch_sizes == batch_size)
        if where.size == 0:
            raise ValueError(f"batch_size must be one of the measured sizes, got {batch_size!r}")
        return self.seconds_per_step[:, where[0]]

    def neighbour_ratios(self, at=None) -> np.ndarray:
        """ρ(B) = T(B) / ½[T(B − 1) + T(B + 1)] for every ``B`` in ``at``, per repeat.

        ``T`` is seconds per step within the same repeat, so the result has one row per repeat
        and one column per size of ``at`` (by default every measured size whose two neighbours
        were measured too). Comparing step times with the *mean* of the neighbours' step times
        is the same as comparing the time per sample at ``B`` with the one a straight line
        through the neighbours' step times predicts; it is 1 exactly when ``T`` grows linearly
        around ``B`` (a fixed cost per step plus a cost per sample), whereas the time per sample
        itself bends like 1/B and its neighbours' mean would be biased.
        """
        at = self.comparable() if at is None else _check_batch_sizes("at", at)
        missing = [int(b) for b in at if not {b - 1, b, b + 1} <= set(self.batch_sizes.tolist())]
        if missing:
            raise ValueError(f"at must hold batch sizes B whose neighbours B-1 and B+1 were "
                             f"measured too; not measured around {missing}")
        if at.size == 0:
            raise ValueError("at must hold at least one batch size B with B-1 and B+1 measured; "
                             "none was")
        return np.stack([self.column(b) / (0.5 * (self.column(b - 1) + self.column(b + 1)))
                         for b in at], axis=1)

    def comparable(self) -> np.ndarray:
        """The measured sizes B whose neighbours B − 1 and B + 1 were measured too."""
        have = set(self.batch_sizes.tolist())
        return np.array([b for b in self.batch_sizes if b - 1 in have and b + 1 in have],
                        dtype=int)


def time_steps(step: Callable[[int], object], batch_sizes, *, repeats: int = 5, steps: int = 5,
               warmup: int = 1, statistic: str = "min", seed: int = 0,
               sync: Callable[[], object] | None = None,
               clock: Callable[[], float] = time.perf_counter) -> StepTimes:
    """Time ``step(B)`` for every batch size ``B`` of ``batch_sizes``.

    First every size runs ``warmup`` untimed steps, in the order given (the allocator, the
    matrix-multiply library and the caches settle). Then ``repeats`` times, ``steps`` rounds: a
    round runs one step of every size, in a new random order each round (a generator seeded
    with ``seed``), each step timed alone with ``clock``. The entry
    of a repeat and a size is the ``statistic`` of its ``steps`` durations in that repeat:
    ``"min"`` (the default, as :mod:`timeit` advises: a step is only ever slowed down by
    interference, never sped up), ``"median"`` or ``"mean"``.

    Because every round visits every size, the steps of one size are spread over the whole
    repeat, and a slow change of the machine's speed (another program starting) reaches all
    sizes alike instead of the ones that happened to run at that moment.

    ``clock``: :func:`time.perf_counter` (wall time, the default, the one to use on a GPU) or
    :func:`time.process_time` (processor time of this program: on a CPU shared with other
    programs it leaves out the moments when the core was lent to them). ``sync``: called before
    each reading of the clock, e.g. ``torch.cuda.synchronize`` on a GPU, where a step only
    *queues* work and returns before it is done.
    """
    sizes = _check_batch_sizes("batch_sizes", batch_sizes)
    repeats = check_int("repeats", repeats, low=1)
    steps = check_int("steps", steps, low=1)
    warmup = check_int("warmup", warmup, low=0)
    statistic = check_choice("statistic", statistic, STATISTICS)
    seed = check_seed("seed", seed)
    if not callable(clock):
        raise ValueError(f"clock must be a function returning seconds, e.g. time.perf_counter, "
                         f"got {clock!r}")
    if not callable(step):
        raise ValueError(f"step must be a function step(batch_size), got {step!r}")
    if sync is not None and not callable(sync):
        raise ValueError(f"sync must be None or a function without arguments, got {sync!r}")
    reduce = {"median": np.median, "min": np.min, "mean": np.mean}[statistic]
    wait = sync if sync is not None else (lambda: None)

    for b in sizes:
        for _ in range(warmup):
            step(int(b))
    rng = np.random.default_rng(seed)
    seconds = np.empty((repeats, sizes.size))
    order = np.empty((repeats, steps, sizes.size), dtype=int)
    durations = np.empty((steps, sizes.size))
    for r in range(repeats):
        for k in range(steps):
            perm = rng.permutation(sizes.size)
            order[r, k] = sizes[perm]
            for j in perm:
                wait()
                start = clock()
                step(int(sizes[j]))
                wait()
                durations[k, j] = clock() - start
        seconds[r] = reduce(durations, axis=0)
    return StepTimes(sizes, seconds, order, steps, statistic)


@dataclass(frozen=True)
class NeighbourComparison:
    """Each batch size of ``batch_sizes`` against its neighbours, over the repeats.

    ``ratios``: ρ(B) per repeat (repeats × sizes, see :meth:`StepTimes.neighbour_ratios`);
    ``intervals``: per size, the mean of ρ over the repeats and its Student-t interval
    (:func:`lessons_lib.claims.mean_interval`); ``margin``: how much faster than its neighbours
    a size must be to count (0.05: at least 5 % less time per step).
    """

    batch_sizes: np.ndarray
    ratios: np.ndarray
    intervals: tuple[Interval, ...]
    margin: float
    confidence: float

    def outcomes(self) -> list[str]:
        """Per size: ``"faster"`` if the whole interval of ρ lies below 1 − margin (faster than
        its neighbours by more than the margin), ``"not faster"`` if it lies above 1 − margin
        (any advantage is smaller than the margin), ``"undecided"`` if it straddles 1 − margin
        (the noise hides the answer)."""
        words = {True: "faster", False: "not faster", None: "undecided"}
        return [words[iv.below(1 - self.margin)] for iv in self.intervals]

    def counts(self) -> dict[str, int]:
        """How many sizes had each outcome."""
        out = self.outcomes()
        return {w: out.count(w) for w in ("faster", "not faster", "undecided")}

    def pooled(self, center: str = "mean") -> Interval:
        """All the sizes together: within each repeat the ``center`` (``"mean"`` or ``"median"``)
        of ρ over the sizes, then the mean of that over the repeats and its Student-t interval.

        The median is robust to one size whose iterations were all slowed down by another
        program in one repeat: it moves the mean of six ratios, not their median.
        """
        center = check_choice("center", center, ("mean", "median"))
        per_repeat = (np.mean if center == "mean" else np.median)(self.ratios, axis=1)
        return mean_interval(per_repeat, confidence=self.confidence)


def compare_with_neighbours(times: StepTimes, at, *, margin: float = 0.05,
                            confidence: float = 0.95) -> NeighbourComparison:
    """ρ(B) for each ``B`` in ``at`` (e.g. the powers of two), with an interval over repeats.

    Needs at least two repeats (an interval needs a spread). ``margin`` in [0, 1).
    """
    if not isinstance(times, StepTimes):
        raise ValueError(f"times must be the StepTimes that time_steps returns, got "
                         f"{type(times).__name__}")
    margin = check_real("margin", margin, low=0, high=1, high_open=True)
    confidence = check_real("confidence", confidence, low=0, high=1, low_open=True,
                            high_open=True)
    if times.repeats < 2:
        raise ValueError(f"times must hold at least 2 repeats for an interval, got "
                         f"{times.repeats}")
    at = _check_batch_sizes("at", at)
    ratios = times.neighbour_ratios(at)
    intervals = tuple(mean_interval(ratios[:, j], confidence=confidence)
                      for j in range(at.size))
    return NeighbourComparison(at, ratios, intervals, margin, confidence)


def powers_of_two(low: int, high: int) -> np.ndarray:
    """The powers of two ``2**k`` with ``low <= 2**k <= high``."""
    low, high = check_int("low", low, low=1), check_int("high", high, low=1)
    if high < low:
        raise ValueError(f"high must be >= low, got low={low}, high={high}")
    return np.array([2 ** k for k in range(int(math.log2(high)) + 1) if low <= 2 ** k <= high],
                    dtype=int)
