"""lessons_lib.timing: the neighbour ratio against a hand computation, the timing protocol with a
virtual clock (exact and instant), a planted slow-down that must be found, and bad input."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from lessons_lib import claims, models, timing


class VirtualMachine:
    """A fake step and a fake clock: ``step(B)`` advances the clock by ``cost(B)`` seconds and
    records the call, so timings are exact and the protocol can be inspected."""

    def __init__(self, cost):
        self.cost, self.now, self.calls = cost, 0.0, []

    def step(self, batch_size: int) -> None:
        self.calls.append(batch_size)
        self.now += self.cost(batch_size)

    def clock(self) -> float:
        return self.now


def linear(b: int) -> float:
    return 300e-6 + 1e-6 * b   # a fixed cost per step and a cost per sample


def test_neighbour_ratio_is_the_hand_computation():
    """Catches a ratio taken to the wrong neighbours, per sample instead of per step, or across
    repeats instead of within one."""
    T = np.array([[1.0, 2.0, 4.0, 3.0, 6.0],
                  [2.0, 2.0, 2.0, 5.0, 1.0]])
    times = timing.StepTimes(np.array([7, 8, 9, 10, 11]), T, np.zeros((2, 1, 5), int), 1, "min")
    hand = np.array([[2.0 / 2.5, 4.0 / 2.5, 3.0 / 5.0],
                     [2.0 / 2.0, 2.0 / 3.5, 5.0 / 1.5]])
    assert np.allclose(times.neighbour_ratios(), hand)
    assert times.comparable().tolist() == [8, 9, 10]
    assert np.allclose(times.neighbour_ratios([9]), hand[:, [1]])
    assert np.allclose(times.seconds_per_sample, T / np.array([7, 8, 9, 10, 11]))


def test_a_linear_step_time_gives_ratio_one_exactly():
    """Catches a ratio that is biased where nothing is special: with T(B) = a + bB every
    ρ(B) is 1 (the time per sample, a/B + b, would have given ρ < 1)."""
    vm = VirtualMachine(linear)
    times = timing.time_steps(vm.step, range(1, 40), repeats=2, steps=2, clock=vm.clock)
    assert np.allclose(times.seconds_per_step, [linear(b) for b in range(1, 40)])
    assert np.allclose(times.neighbour_ratios(), 1.0)


def test_every_round_runs_every_size_once_in_a_new_shuffled_order():
    """Catches sizes timed in a fixed order (drift would then favour some), a size skipped or
    run twice, warm-up missing, and an order that the seed does not fix."""
    vm = VirtualMachine(linear)
    sizes = list(range(10, 30))
    times = timing.time_steps(vm.step, sizes, repeats=3, steps=4, warmup=2, seed=5,
                              clock=vm.clock)
    assert times.order.shape == (3, 4, 20)
    assert all(sorted(row) == sizes for row in times.order.reshape(-1, 20).tolist())
    assert len({tuple(row) for row in times.order.reshape(-1, 20).tolist()}) == 12
    assert vm.calls[:40] == [b for b in sizes for _ in range(2)]          # warm-up first
    assert vm.calls[40:] == times.order.ravel().tolist()                  # then the rounds
    vm2 = VirtualMachine(linear)
    again = timing.time_steps(vm2.step, sizes, repeats=3, steps=4, warmup=2, seed=5,
                              clock=vm2.clock)
    assert np.array_equal(again.order, times.order)
    other = timing.time_steps(vm2.step, sizes, repeats=3, steps=4, warmup=2, seed=6,
                              clock=vm2.clock)
    assert not np.array_equal(other.order, times.order)


@pytest.mark.parametrize("statistic, expected", [("min", 1.0), ("median", 2.0), ("mean", 4.0)])
def test_the_statistic_over_the_steps_of_a_repeat(statistic, expected):
    """Catches the statistic taken over the wrong axis or ignored: one size, durations 1, 2, 9."""
    durations = iter([1.0, 2.0, 9.0])
    vm = VirtualMachine(lambda b: next(durations))
    times = timing.time_steps(vm.step, [5], repeats=1, steps=3, warmup=0, statistic=statistic,
                              clock=vm.clock)
    assert times.seconds_per_step.tolist() == [[expected]]


def test_a_planted_penalty_away_from_powers_of_two_is_found():
    """Catches a comparison that cannot see an effect: steps at sizes that are not powers of two
    cost 20 % more (virtual clock, with noise from a seeded generator), so every power of two
    must come out "faster" with ρ near 1 / 1.2."""
    rng = np.random.default_rng(0)

    def cost(b):
        return linear(b) * (1.0 if b & (b - 1) == 0 else 1.2) * rng.uniform(1.0, 1.03)

    vm = VirtualMachine(cost)
    powers = timing.powers_of_two(16, 512)
    sizes = sorted({b + d for b in powers for d in (-1, 0, 1)})
    times = timing.time_steps(vm.step, sizes, repeats=4, steps=3, clock=vm.clock)
    cmp = timing.compare_with_neighbours(times, powers, margin=0.05)
    assert cmp.outcomes() == ["faster"] * 6
    assert cmp.counts() == {"faster": 6, "not faster": 0, "undecided": 0}
    assert abs(cmp.pooled().mean - 1 / 1.2) < 0.03
    # … and without the penalty nothing is found: ρ ≈ 1, no power of two faster by 5 %
    vm = VirtualMachine(lambda b: linear(b) * rng.uniform(1.0, 1.03))
    flat = timing.time_steps(vm.step, sizes, repeats=4, steps=3, clock=vm.clock)
    assert timing.compare_with_neighbours(flat, powers).counts()["faster"] == 0


def test_a_real_sleeping_penalty_is_found_with_the_real_clock():
    """The same with time.perf_counter and time.sleep: catches a protocol that only works with
    the virtual clock (e.g. timing the wrong call). Sleeping 15 ms more at 17 than at 16 and 15.
    A loaded machine can wake a sleeper late, so the claim is on the median of five repeats."""
    def step(b):
        time.sleep(0.005 if b != 17 else 0.020)

    times = timing.time_steps(step, [15, 16, 17], repeats=5, steps=1, warmup=0)
    rho = times.neighbour_ratios([16])[:, 0]
    assert np.median(rho) < 0.8         # 5 ms against ½ (5 + 20) ms: ρ ≈ 0.4


def test_outcomes_follow_the_interval_and_the_margin():
    """Catches outcomes decided by the mean alone or with the margin on the wrong side."""
    ratios = np.array([[0.90, 0.99, 0.80, 1.10],
                       [0.92, 1.01, 1.10, 1.12],
                       [0.91, 1.00, 0.95, 1.11]])
    cmp = timing.NeighbourComparison(np.arange(2, 6), ratios,
                                     tuple(claims.mean_interval(ratios[:, j]) for j in range(4)),
                                     0.05, 0.95)
    assert cmp.outcomes() == ["faster", "not faster", "undecided", "not faster"]
    pooled = cmp.pooled()
    assert pooled.low < ratios.mean() < pooled.high
    assert np.isclose(pooled.mean, ratios.mean())
    # the median pools each repeat's four ratios by their median, computed here by hand
    hand = [np.median(row) for row in ratios]
    assert np.isclose(cmp.pooled("median").mean, np.mean(hand))
    assert np.isclose(cmp.pooled("median").low, claims.mean_interval(hand).low)


def test_training_step_runs_a_real_training_step():
    """Catches a step that does not train (no backward or no optimizer step): the weights move,
    and the timings of a real model are positive and finite."""
    model = models.mlp(8, 3, width=8)
    before = [p.detach().clone() for p in model.parameters()]
    step = timing.training_step(model, n_in=8, n_out=3, max_batch=6, lr=0.1)
    times = timing.time_steps(step, [1, 2, 3, 4], repeats=2, steps=2)
    assert all(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert np.all(np.isfinite(times.seconds_per_step)) and np.all(times.seconds_per_step > 0)
    with pytest.raises(ValueError, match=r"^batch_size must be an integer in \[1, 6\]"):
        step(7)


def test_powers_of_two():
    assert timing.powers_of_two(16, 512).tolist() == [16, 32, 64, 128, 256, 512]
    assert timing.powers_of_two(3, 3).tolist() == []
    assert timing.powers_of_two(1, 1000).tolist() == [2 ** k for k in range(10)]


def _times():
    vm = VirtualMachine(linear)
    return timing.time_steps(vm.step, [3, 4, 5, 9], repeats=2, steps=1, clock=vm.clock)


def _one_repeat():
    vm = VirtualMachine(linear)
    return timing.time_steps(vm.step, [3, 4, 5], repeats=1, steps=1, clock=vm.clock)


step = VirtualMachine(linear).step


@pytest.mark.parametrize("call, pattern", [
    (lambda: timing.time_steps(step, []), r"^batch_sizes must be a non-empty list of integers"),
    (lambda: timing.time_steps(step, [4, 0]), r"^batch_sizes must be an integer >= 1, got 0"),
    (lambda: timing.time_steps(step, [4, 2.5]), r"^batch_sizes must be an integer >= 1"),
    (lambda: timing.time_steps(step, 64), r"^batch_sizes must be a non-empty list of integers"),
    (lambda: timing.time_steps(step, [4, 4]), r"^batch_sizes must not repeat a batch size"),
    (lambda: timing.time_steps(step, [4], repeats=0), r"^repeats must be an integer >= 1, got 0"),
    (lambda: timing.time_steps(step, [4], steps=0), r"^steps must be an integer >= 1, got 0"),
    (lambda: timing.time_steps(step, [4], warmup=-1), r"^warmup must be an integer >= 0"),
    (lambda: timing.time_steps(step, [4], statistic="max"),
     r"^statistic must be one of \['mean', 'median', 'min'\]"),
    (lambda: timing.time_steps(step, [4], seed=-1), r"^seed must be an integer >= 0"),
    (lambda: timing.time_steps("step", [4]), r"^step must be a function step\(batch_size\)"),
    (lambda: timing.time_steps(step, [4], sync=1), r"^sync must be None or a function"),
    (lambda: timing.time_steps(step, [4], clock=0.0), r"^clock must be a function"),
    (lambda: _times().neighbour_ratios([9]), r"^at must hold batch sizes B whose neighbours"),
    (lambda: _times().neighbour_ratios([]), r"^at must be a non-empty list of integers"),
    (lambda: _times().column(6), r"^batch_size must be one of the measured sizes, got 6"),
    (lambda: timing.compare_with_neighbours(_times(), [4], margin=1.0),
     r"^margin must be a finite number in \[0, 1\)"),
    (lambda: timing.compare_with_neighbours(_times(), [4], margin=-0.1),
     r"^margin must be a finite number in \[0, 1\)"),
    (lambda: timing.compare_with_neighbours(_times(), [4], confidence=1.0),
     r"^confidence must be a finite number in \(0, 1\)"),
    (lambda: timing.compare_with_neighbours(_one_repeat(), [4]),
     r"^times must hold at least 2 repeats"),
    (lambda: timing.compare_with_neighbours(np.ones((2, 3)), [4]), r"^times must be the StepTimes"),
    (lambda: timing.compare_with_neighbours(_times(), [4]).pooled("max"),
     r"^center must be one of \['mean', 'median'\]"),
    (lambda: timing.powers_of_two(0, 8), r"^low must be an integer >= 1, got 0"),
    (lambda: timing.powers_of_two(8, 4), r"^high must be >= low"),
    (lambda: timing.training_step("net", n_in=2, n_out=2, max_batch=4),
     r"^model must be a torch.nn.Module"),
    (lambda: timing.training_step(models.mlp(2, 2), n_in=2, n_out=2, max_batch=0),
     r"^max_batch must be an integer >= 1, got 0"),
    (lambda: timing.training_step(models.mlp(2, 2), n_in=2, n_out=2, max_batch=4, lr=-1.0),
     r"^lr must be a finite number in \(0, inf\)"),
    (lambda: timing.training_step(models.mlp(2, 2), n_in=2, n_out=2, max_batch=4,
                                  dtype=torch.int32), r"^dtype must be a floating-point torch"),
])
def test_bad_input_names_the_argument_and_what_it_allows(call, pattern):
    with pytest.raises(ValueError, match=pattern):
        call()
