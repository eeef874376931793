"""The search benchmark (lessons_lib.search_bench): its test functions reach the published minima
at the published minimisers, a 2-seed miniature of ``make bench-search`` runs end to end (through
the worker processes), and bad input gets a ValueError that names the argument."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import minimize
from threadpoolctl import threadpool_limits

from lessons_lib import search_bench as sb

#: Surjanovic & Bingham's published global minima, to the digits they publish.
PUBLISHED = {"branin": 0.397887, "hartmann3": -3.86278, "rosenbrock4": 0.0,
             "hartmann6": -3.32237}


def test_every_function_is_checked_here():
    """Catches a function added to FUNCTIONS without its published minimum in this file."""
    assert set(sb.FUNCTIONS) == set(PUBLISHED)
    assert all(2 <= p.dim <= 6 for p in sb.FUNCTIONS.values())


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_the_minimiser_reaches_the_published_minimum(name):
    """Catches a typo in a formula's constants (Hartmann's A or P, Branin's b and c): the value
    at the published minimiser would move away from the published minimum."""
    p = sb.FUNCTIONS[name]
    assert len(p.argmin) == p.dim
    assert all(low <= x <= high for x, (low, high) in zip(p.argmin, p.bounds))
    assert p(p.argmin) == pytest.approx(PUBLISHED[name], abs=1e-4)
    assert p.minimum == pytest.approx(PUBLISHED[name], abs=1e-4)
    assert p(p.argmin) == pytest.approx(p.minimum, abs=1e-12)


def test_branin_has_three_minimisers():
    p = sb.FUNCTIONS["branin"]
    for x in [(-np.pi, 12.275), (np.pi, 2.275), (9.42478, 2.475)]:
        assert p(x) == pytest.approx(PUBLISHED["branin"], abs=1e-5)


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_nothing_lies_below_the_minimum(name):
    """Catches a stored minimum that is not the minimum (a regret could then go negative): no
    random point of the box is below it, nor a local search from the minimiser."""
    p = sb.FUNCTIONS[name]
    low, high = np.array(p.bounds).T
    points = np.random.default_rng(0).uniform(low, high, size=(3000, p.dim))
    assert min(p(x) for x in points) >= p.minimum
    polished = minimize(p, p.argmin, method="Nelder-Mead",
                        options={"xatol": 1e-10, "fatol": 1e-14, "maxiter": 4000})
    assert polished.fun >= p.minimum - 1e-9


def test_the_searches_see_the_same_function():
    """Catches the dict wrapper of lessons_lib.search taking the coordinates in another order."""
    p = sb.FUNCTIONS["hartmann3"]
    assert set(p.space()) == {"x0", "x1", "x2"}
    assert p.on_params({"x2": p.argmin[2], "x0": p.argmin[0], "x1": p.argmin[1]}) == p.minimum


@pytest.fixture(scope="module")
def miniature():
    """`make bench-search` in miniature: two small functions, the four methods, 2 seeds,
    12 trials, read at 6 and 12; two worker processes, as the command line runs it."""
    return sb.benchmark(functions=["branin", "hartmann3"], methods=sb.METHODS, seeds=range(2),
                        n_trials=12, checkpoints=(6, 12), jobs=2)


def test_the_miniature_benchmark_runs(miniature):
    """Catches the benchmark rotting: a library changing its API, a method or a row going
    missing, a regret below zero (a wrong minimum) or growing with more trials."""
    rows = {(r.function, r.method, r.checkpoint): r for r in miniature}
    assert len(rows) == len(miniature) == 2 * 4 * 2
    for function in ("branin", "hartmann3"):
        for method in sb.METHODS:
            early, late = rows[function, method, 6], rows[function, method, 12]
            for r in (early, late):
                assert np.isfinite([r.median, r.q25, r.q75, r.seconds_per_trial]).all()
                assert 0 <= r.q25 <= r.median <= r.q75
                assert r.seconds_per_trial > 0 and r.cpu_seconds_per_trial >= 0
            assert late.median <= early.median and late.q25 <= early.q25
            assert late.q75 <= early.q75
    table = sb.format_table(miniature)
    for name in (*sb.METHODS, "branin", "hartmann3", "regret @ 6", "regret @ 12", "s/trial"):
        assert name in table
    assert len({len(line) for line in table.splitlines() if line}) <= 2  # fixed width
    verdicts = sb.verdict(miniature)
    assert [v.function for v in verdicts] == ["branin", "hartmann3"]
    assert all(v.checkpoint == 12 and v.best_rival in sb.RIVALS for v in verdicts)
    assert "target" in sb.format_verdicts(verdicts)


def test_the_workers_get_what_a_search_here_gets(miniature):
    """Catches the worker processes running something else than run_method here (a seed or a
    function lost in the pickling): same seeds, same regrets."""
    with threadpool_limits(limits=1):  # as in the workers (and much faster on a busy machine)
        runs = [sb.run_method("bayes_opt", "branin", 12, seed) for seed in range(2)]
    regret = np.array([r.best_so_far for r in runs]) - sb.FUNCTIONS["branin"].minimum
    row = next(r for r in miniature
               if (r.function, r.method, r.checkpoint) == ("branin", "bayes_opt", 6))
    assert row.median == pytest.approx(np.median(regret[:, 5]), rel=1e-12)
    assert all(np.all(np.diff(r.best_so_far) <= 0) for r in runs)


def test_the_verdict_compares_bo_with_the_better_rival():
    """Catches the verdict comparing with the worse rival, or ignoring the time per trial."""

    def row(method, median, seconds=0.1):
        return sb.Row("f", method, 30, median, 0.0, 1.0, seconds, 0.0)

    v, = sb.verdict([row("bayes_opt", 0.5), row("tpe", 0.4), row("gp_minimize", 0.7)])
    assert (v.best_rival, v.rival_regret, v.regret_ok, v.speed_ok) == ("tpe", 0.4, False, True)
    v, = sb.verdict([row("bayes_opt", 0.4, 0.6), row("tpe", 0.4), row("gp_minimize", 0.7)])
    assert (v.regret_ok, v.speed_ok, v.ok) == (True, False, False)
    with pytest.raises(ValueError, match=r"^rows must hold bayes_opt, tpe and gp_minimize"):
        sb.verdict([row("bayes_opt", 0.5), row("tpe", 0.4)])


@pytest.mark.parametrize("call, argument", [
    (lambda: sb.run_method("sgd", "branin", 5, 0), "method"),
    (lambda: sb.run_method(None, "branin", 5, 0), "method"),
    (lambda: sb.run_method("random", "sphere", 5, 0), "function"),
    (lambda: sb.run_method("random", ["branin"], 5, 0), "function"),
    (lambda: sb.run_method("random", "branin", 0, 0), "n_trials"),
    (lambda: sb.run_method("random", "branin", 5, -1), "seed"),
    (lambda: sb.benchmark(functions=["sphere"]), "functions"),
    (lambda: sb.benchmark(functions="branin"), "functions"),
    (lambda: sb.benchmark(methods=["random", "cma"]), "methods"),
    (lambda: sb.benchmark(methods=[]), "methods"),
    (lambda: sb.benchmark(seeds=[]), "seeds"),
    (lambda: sb.benchmark(seeds=[0, -1]), "seeds"),
    (lambda: sb.benchmark(n_trials=0, checkpoints=(1,)), "n_trials"),
    (lambda: sb.benchmark(n_trials=12, checkpoints=(6, 13)), "checkpoints"),
    (lambda: sb.benchmark(n_trials=12, checkpoints=(0, 12)), "checkpoints"),
    (lambda: sb.benchmark(n_trials=12, checkpoints=(6, 6)), "checkpoints"),
    (lambda: sb.benchmark(n_trials=12, checkpoints=12), "checkpoints"),
    (lambda: sb.benchmark(jobs=0), "jobs"),
    (lambda: sb.format_table([]), "rows"),
    (lambda: sb.verdict("rows"), "rows"),
], ids=["method", "method-None", "function", "function-list", "n_trials", "seed", "functions",
        "functions-str", "methods", "methods-empty", "seeds-empty", "seeds-negative",
        "n_trials-bench", "checkpoint-over", "checkpoint-zero", "checkpoint-twice",
        "checkpoints-int", "jobs", "rows-empty", "rows-str"])
def test_bad_input_names_the_argument(call, argument):
    """Catches a bad argument failing late (a KeyError in a worker, an IndexError at a
    checkpoint past the last trial) instead of at the call, by name. Nothing runs before the
    check: these calls are instant."""
    with pytest.raises(ValueError, match=rf"^{argument} must "):
        call()


def test_the_command_line_refuses_bad_flags(capsys):
    for argv in (["--seeds", "0"], ["--functions", "sphere"], ["--jobs", "x"],
                 ["--trials", "5", "--checkpoints", "6"]):
        with pytest.raises(SystemExit):
            sb.main(argv)
    assert "checkpoints must" in capsys.readouterr().err
