"""A benchmark of hyperparameter search on standard test functions: random search, our
Bayesian optimisation (:func:`lessons_lib.search.bayes_opt`), Optuna's TPE sampler and
scikit-optimize's ``gp_minimize``.

``make bench-search`` (``python -m lessons_lib.search_bench``) runs every method on every test
function below, 10 seeds, 30 trials each, and prints for each function and method the **simple
regret** after 10, 20 and 30 trials,

    regret(n) = (best value among the first n trials) − (the function's global minimum),

as its median over the seeds and its interquartile range [25th, 75th percentile], and the seconds
per trial (wall clock, median over the seeds, measured inside the process that ran the search,
objective included; it costs microseconds). It also prints the CPU seconds per trial: on a shared
machine the wall clock counts the time other processes held the cores. Then a verdict per
function: is our BO's median regret at the last checkpoint at or below the best of Optuna TPE and
``gp_minimize``, and does it take under 0.5 s per trial?

The test functions (all minimised over a box; formulas and minima from S. Surjanovic and
D. Bingham, *Virtual Library of Simulation Experiments: Test Functions and Datasets*,
https://www.sfu.ca/~ssurjano/optimization.html):

- ``branin``      2-D, x1 in [−5, 10], x2 in [0, 15], f* = 0.397887 at (±π, 12.275 / 2.275) and
  (9.42478, 2.475);
- ``hartmann3``   3-D, [0, 1]^3, f* = −3.86278 at (0.114614, 0.555649, 0.852547);
- ``rosenbrock4`` 4-D, [−2, 2]^4 (the library's usual box is [−5, 10]^d; the smaller one keeps
  the valley in view), f* = 0 at (1, 1, 1, 1);
- ``hartmann6``   6-D, [0, 1]^6, f* = −3.32237 at (0.20169, 0.150011, 0.476874, 0.275332,
  0.311652, 0.6573).

Each :class:`Problem` stores its minimum to full precision (the value at the minimiser, polished
by a local search), so that a method which finds the minimum scores a regret of 0, not −1e-6.

The methods, each with its library's defaults:

- ``"random"``:      :func:`lessons_lib.search.random_search`;
- ``"bayes_opt"``:   :func:`lessons_lib.search.bayes_opt` (EI, 10 Latin-hypercube points at 30
  trials);
- ``"tpe"``:         ``optuna.samplers.TPESampler(seed=seed)`` (10 random start-up trials; in
  Optuna 5 the multivariate TPE by default), ``study.optimize(objective, n_trials)``;
- ``"gp_minimize"``: ``skopt.gp_minimize(f, bounds, n_calls=n_trials, random_state=seed)``
  (10 random initial points, ``acq_func="gp_hedge"``, ``acq_optimizer="lbfgs"``,
  ``noise="gaussian"``); with fewer than 10 trials, ``n_initial_points = n_trials``.

Every search is one job, (function, method, seed), run with one BLAS/OpenMP thread;
``--jobs 2`` (the default of the command line) runs two jobs at a time in worker processes.

The table measured on the book's 2-core machine (10 seeds, 30 trials) is in the book's session
note; the lesson prints a table measured live on a reduced budget.

Bad arguments raise ``ValueError`` naming the argument and the values allowed.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import os
import platform
import sys
import time
import warnings
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from numbers import Integral
from typing import Callable, NamedTuple

import numpy as np

from lessons_lib import search
from lessons_lib._checks import _describe, check_choice, check_int, check_seed

__all__ = [
    "Problem",
    "FUNCTIONS",
    "METHODS",
    "RIVALS",
    "Run",
    "Row",
    "Verdict",
    "branin",
    "hartmann3",
    "hartmann6",
    "rosenbrock",
    "run_method",
    "benchmark",
    "format_table",
    "verdict",
    "format_verdicts",
    "main",
]

#: The methods, in the order of the table.
METHODS = ("random", "bayes_opt", "tpe", "gp_minimize")
#: The methods our BO is measured against in :func:`verdict`.
RIVALS = ("tpe", "gp_minimize")
#: The target of :func:`verdict`: our BO's wall-clock seconds per trial.
SECONDS_PER_TRIAL_TARGET = 0.5
_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


# --------------------------------------------------------------------------------------------
# The test functions (Surjanovic & Bingham, Virtual Library of Simulation Experiments)
# --------------------------------------------------------------------------------------------


def branin(x) -> float:
    """Branin-Hoo: a (x2 − b x1² + c x1 − r)² + s (1 − t) cos x1 + s, with a = 1,
    b = 5.1 / (4π²), c = 5 / π, r = 6, s = 10, t = 1 / (8π). Three global minima, 0.397887."""
    x1, x2 = x
    b, c, t = 5.1 / (4 * math.pi**2), 5 / math.pi, 1 / (8 * math.pi)
    return float((x2 - b * x1**2 + c * x1 - 6) ** 2 + 10 * (1 - t) * math.cos(x1) + 10)


_HARTMANN_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])
_HARTMANN3_A = np.array([[3.0, 10, 30], [0.1, 10, 35], [3.0, 10, 30], [0.1, 10, 35]])
_HARTMANN3_P = 1e-4 * np.array([[3689, 1170, 2673], [4699, 4387, 7470],
                                [1091, 8732, 5547], [381, 5743, 8828]])
_HARTMANN6_A = np.array([[10, 3, 17, 3.5, 1.7, 8], [0.05, 10, 17, 0.1, 8, 14],
                         [3, 3.5, 1.7, 10, 17, 8], [17, 8, 0.05, 10, 0.1, 14]])
_HARTMANN6_P = 1e-4 * np.array([[1312, 1696, 5569, 124, 8283, 5886],
                                [2329, 4135, 8307, 3736, 1004, 9991],
                                [2348, 1451, 3522, 2883, 3047, 6650],
                                [4047, 8828, 8732, 5743, 1091, 381]])


def _hartmann(x, A, P) -> float:
    """−Σ_i α_i exp(−Σ_j A_ij (x_j − P_ij)²)."""
    x = np.asarray(x, dtype=float)
    return float(-_HARTMANN_ALPHA @ np.exp(-np.sum(A * (x - P) ** 2, axis=1)))


def hartmann3(x) -> float:
    """Hartmann 3-D on [0, 1]^3: four Gaussian-like wells, the deepest −3.86278."""
    return _hartmann(x, _HARTMANN3_A, _HARTMANN3_P)


def hartmann6(x) -> float:
    """Hartmann 6-D on [0, 1]^6: four wells, the deepest −3.32237."""
    return _hartmann(x, _HARTMANN6_A, _HARTMANN6_P)


def rosenbrock(x) -> float:
    """Rosenbrock: Σ_i 100 (x_{i+1} − x_i²)² + (x_i − 1)², a curved valley, minimum 0 at 1."""
    x = np.asarray(x, dtype=float)
    return float(np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (x[:-1] - 1.0) ** 2))


@dataclass(frozen=True)
class Problem:
    """A test function to minimise over a box: its name, the (low, high) bounds of each
    coordinate, the function of an array, its global minimum and a point where it is reached."""

    name: str
    bounds: tuple
    function: Callable
    minimum: float
    argmin: tuple

    @property
    def dim(self) -> int:
        return len(self.bounds)

    def __call__(self, x) -> float:
        return float(self.function(np.asarray(x, dtype=float)))

    def space(self) -> dict:
        """The search space of :mod:`lessons_lib.search`: ``x0``, ``x1``, ... uniform in the box."""
        return {f"x{i}": search.Uniform(low, high) for i, (low, high) in enumerate(self.bounds)}

    def on_params(self, params: dict) -> float:
        """The function of a dict ``{"x0": ..., "x1": ...}`` (what the searches call)."""
        return self([params[f"x{i}"] for i in range(self.dim)])


#: The benchmark's functions by name. ``minimum`` is the value at ``argmin`` after a local
#: polish (Nelder-Mead from the published minimiser): it agrees with the published value to the
#: digits published (0.397887, −3.86278, 0, −3.32237).
FUNCTIONS = {
    p.name: p
    for p in (
        Problem("branin", ((-5.0, 10.0), (0.0, 15.0)), branin,
                0.39788735772973816, (math.pi, 2.275)),
        Problem("hartmann3", ((0.0, 1.0),) * 3, hartmann3, -3.862779787332663,
                (0.11458888122541287, 0.5556488954739371, 0.8525469842172746)),
        Problem("rosenbrock4", ((-2.0, 2.0),) * 4, rosenbrock, 0.0, (1.0, 1.0, 1.0, 1.0)),
        Problem("hartmann6", ((0.0, 1.0),) * 6, hartmann6, -3.3223680114155147,
                (0.20168950909365746, 0.15001069354111374, 0.4768739729250998,
                 0.2753324275220782, 0.3116516172395686, 0.6573005345536702)),
    )
}


# --------------------------------------------------------------------------------------------
# One search: a method on a function with a seed
# --------------------------------------------------------------------------------------------


class Run(NamedTuple):
    """The running best value after each trial, and the wall-clock and CPU seconds per trial."""

    best_so_far: np.ndarray
    seconds_per_trial: float
    cpu_seconds_per_trial: float


def _problem(name: str, value) -> Problem:
    if isinstance(value, Problem):
        return value
    if not isinstance(value, str):
        raise ValueError(f"{name} must be one of {sorted(FUNCTIONS)!r} or a Problem, "
                         f"got {_describe(value)}")
    return FUNCTIONS[check_choice(name, value, FUNCTIONS)]


def _method(name: str, value) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{name} must be one of {sorted(METHODS)!r}, got {_describe(value)}")
    return check_choice(name, value, METHODS)


def _values_ours(method: str, problem: Problem, n_trials: int, seed: int) -> np.ndarray:
    run = search.random_search if method == "random" else search.bayes_opt
    result = run(problem.on_params, problem.space(), n_trials, seed=seed)
    return np.array([trial.value for trial in result.trials], dtype=float)


def _values_tpe(problem: Problem, n_trials: int, seed: int) -> np.ndarray:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)

    def objective(trial):
        return problem([trial.suggest_float(f"x{i}", low, high)
                        for i, (low, high) in enumerate(problem.bounds)])

    study = optuna.create_study(direction="minimize", sampler=optuna.samplers.TPESampler(seed=seed))
    study.optimize(objective, n_trials=n_trials)
    return np.array([trial.value for trial in study.trials], dtype=float)


def _values_gp_minimize(problem: Problem, n_trials: int, seed: int) -> np.ndarray:
    import skopt

    with warnings.catch_warnings():
        # skopt warns when it proposes a point twice ("The objective has been evaluated at
        # point ... before"); scikit-learn may warn that a GP length scale hit its bound.
        warnings.simplefilter("ignore", UserWarning)
        warnings.filterwarnings("ignore", module="sklearn")
        result = skopt.gp_minimize(problem, dimensions=[tuple(b) for b in problem.bounds],
                                   n_calls=n_trials, n_initial_points=min(10, n_trials),
                                   random_state=seed)
    return np.asarray(result.func_vals, dtype=float)


def run_method(method: str, function, n_trials: int, seed: int) -> Run:
    """Run one ``method`` (one of :data:`METHODS`) for ``n_trials`` trials on ``function`` (a
    name of :data:`FUNCTIONS` or a :class:`Problem`) with ``seed``; time it in this process.

    Returns a :class:`Run`: ``best_so_far[i]`` is the lowest value among trials 0..i.
    """
    _method("method", method)
    problem = _problem("function", function)
    n_trials = check_int("n_trials", n_trials, low=1)
    seed = check_seed("seed", seed)
    start, cpu_start = time.perf_counter(), time.process_time()
    if method in ("random", "bayes_opt"):
        values = _values_ours(method, problem, n_trials, seed)
    elif method == "tpe":
        values = _values_tpe(problem, n_trials, seed)
    else:
        values = _values_gp_minimize(problem, n_trials, seed)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    if len(values) != n_trials or not np.isfinite(values).all():
        raise RuntimeError(f"{method} on {problem.name} (seed {seed}) returned {len(values)} "
                           f"values for {n_trials} trials, finite: {np.isfinite(values).all()}")
    return Run(np.minimum.accumulate(values), wall / n_trials, cpu / n_trials)


# --------------------------------------------------------------------------------------------
# The benchmark: every (function, method, seed), summarised
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """One function, method and checkpoint: the median simple regret over the seeds and its
    25th and 75th percentiles; the median wall-clock and CPU seconds per trial of the runs."""

    function: str
    method: str
    checkpoint: int
    median: float
    q25: float
    q75: float
    seconds_per_trial: float
    cpu_seconds_per_trial: float


def _limit_threads() -> None:
    """Worker initialiser: one thread for every BLAS / OpenMP library, those loaded now (NumPy's,
    SciPy's, scikit-learn's) and those loaded later (the environment variables)."""
    for variable in _THREAD_VARIABLES:
        os.environ[variable] = "1"
    import optuna  # noqa: F401  (load the libraries and their thread pools now)
    import skopt  # noqa: F401
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1)


def _job(problem: Problem, method: str, n_trials: int, seed: int):
    return problem.name, method, seed, run_method(method, problem, n_trials, seed)


def _names(name: str, value, allowed) -> list:
    if isinstance(value, str | bytes) or not hasattr(value, "__iter__"):
        raise ValueError(f"{name} must be a list of names from {list(allowed)}, "
                         f"got {_describe(value)}")
    value = list(value)
    if not value:
        raise ValueError(f"{name} must name at least one of {list(allowed)}, got an empty list")
    return value


def _check_checkpoints(checkpoints, n_trials: int) -> tuple:
    if isinstance(checkpoints, str | bytes) or not hasattr(checkpoints, "__iter__"):
        raise ValueError(f"checkpoints must be a list of trial counts in [1, {n_trials}], "
                         f"got {_describe(checkpoints)}")
    checkpoints = list(checkpoints)
    if not checkpoints:
        raise ValueError("checkpoints must hold at least one trial count, got an empty list")
    for c in checkpoints:
        if isinstance(c, bool) or not isinstance(c, Integral) or not 1 <= c <= n_trials:
            raise ValueError(f"checkpoints must be trial counts in [1, n_trials={n_trials}], "
                             f"got {checkpoints!r} (bad value: {c!r})")
    if len(set(checkpoints)) != len(checkpoints):
        raise ValueError(f"checkpoints must be distinct, got {checkpoints!r}")
    return tuple(sorted(int(c) for c in checkpoints))


def _check_seeds(seeds) -> tuple:
    if isinstance(seeds, str | bytes) or not hasattr(seeds, "__iter__"):
        raise ValueError(f"seeds must be a list of integers >= 0, got {_describe(seeds)}")
    seeds = [check_seed("seeds", s) for s in seeds]
    if not seeds:
        raise ValueError("seeds must hold at least one seed, got an empty list")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct, got {seeds!r}")
    return tuple(seeds)


def benchmark(functions=None, methods=METHODS, seeds=range(10), n_trials: int = 30,
              checkpoints=(10, 20, 30), jobs: int = 1,
              progress: Callable | None = None) -> list[Row]:
    """Run every method on every function with every seed and summarise the simple regret.

    ``functions``: names of :data:`FUNCTIONS` or :class:`Problem` objects (default: all);
    ``methods``: names of :data:`METHODS`; ``seeds``: distinct integers >= 0; ``checkpoints``:
    the trial counts at which the regret is read, each in [1, ``n_trials``].
    ``jobs``: 1 runs the searches here, one after the other (with one BLAS thread); more runs
    them in that many worker processes (one thread each). ``progress(done, total, function,
    method, seed, run)``, if given, is called after each search.

    Returns one :class:`Row` per function, method and checkpoint, in that order.
    """
    problems = [_problem("functions", f)
                for f in _names("functions", FUNCTIONS if functions is None else functions,
                                FUNCTIONS)]
    if len({p.name for p in problems}) != len(problems):
        raise ValueError(f"functions must be distinct, got {[p.name for p in problems]}")
    methods = [_method("methods", m) for m in _names("methods", methods, METHODS)]
    if len(set(methods)) != len(methods):
        raise ValueError(f"methods must be distinct, got {methods!r}")
    seeds = _check_seeds(seeds)
    n_trials = check_int("n_trials", n_trials, low=1)
    checkpoints = _check_checkpoints(checkpoints, n_trials)
    jobs = check_int("jobs", jobs, low=1)
    progress = progress or (lambda *args: None)

    # the slow methods first, so that the workers' queues end together
    tasks = [(p, m, s) for m in sorted(methods, key=lambda m: m in ("random", "tpe"))
             for p in problems for s in seeds]
    runs = {}
    if jobs == 1:
        import optuna  # noqa: F401  (load the libraries and their thread pools before limiting)
        import skopt  # noqa: F401
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=1):
            for p, m, s in tasks:
                runs[p.name, m, s] = run_method(m, p, n_trials, s)
                progress(len(runs), len(tasks), p.name, m, s, runs[p.name, m, s])
    else:
        context = multiprocessing.get_context("spawn")  # a fresh interpreter: no forked threads
        with ProcessPoolExecutor(max_workers=min(jobs, len(tasks)), mp_context=context,
                                 initializer=_limit_threads) as pool:
            futures = [pool.submit(_job, p, m, n_trials, s) for p, m, s in tasks]
            for future in as_completed(futures):
                name, m, s, run = future.result()
                runs[name, m, s] = run
                progress(len(runs), len(tasks), name, m, s, run)

    rows = []
    for p in problems:
        for m in methods:
            mine = [runs[p.name, m, s] for s in seeds]
            regret = np.array([r.best_so_far for r in mine]) - p.minimum  # (seeds, n_trials)
            wall = float(np.median([r.seconds_per_trial for r in mine]))
            cpu = float(np.median([r.cpu_seconds_per_trial for r in mine]))
            for c in checkpoints:
                q25, median, q75 = np.percentile(regret[:, c - 1], [25, 50, 75])
                rows.append(Row(p.name, m, c, float(median), float(q25), float(q75), wall, cpu))
    return rows


def _check_rows(rows) -> list:
    if isinstance(rows, str | bytes) or not hasattr(rows, "__iter__"):
        raise ValueError(f"rows must be the list of Row that benchmark() returns, "
                         f"got {_describe(rows)}")
    rows = list(rows)
    if not rows or not all(isinstance(r, Row) for r in rows):
        raise ValueError("rows must be a non-empty list of Row (what benchmark() returns)")
    return rows


def _regret(median, q25, q75) -> str:
    return f"{median:.3g} [{q25:.3g}, {q75:.3g}]"


def format_table(rows) -> str:
    """A fixed-width text table: one line per function and method, a column "regret after n
    trials: median [q25, q75]" per checkpoint, then the wall-clock and CPU seconds per trial."""
    rows = _check_rows(rows)
    checkpoints = sorted({r.checkpoint for r in rows})
    lines = {}
    for r in rows:
        lines.setdefault((r.function, r.method), {})[r.checkpoint] = r
    cells = [[function, method,
              *(_regret(by[c].median, by[c].q25, by[c].q75) if c in by else "-"
                for c in checkpoints),
              f"{next(iter(by.values())).seconds_per_trial:.3f}",
              f"{next(iter(by.values())).cpu_seconds_per_trial:.3f}"]
             for (function, method), by in lines.items()]
    header = ["function", "method", *(f"regret @ {c}" for c in checkpoints), "s/trial",
              "cpu s/trial"]
    widths = [max(len(str(row[i])) for row in [header, *cells]) for i in range(len(header))]

    def line(row):
        text = [f"{row[0]:<{widths[0]}}", f"{row[1]:<{widths[1]}}"]
        text += [f"{cell:>{w}}" for cell, w in zip(row[2:], widths[2:])]
        return "  ".join(text).rstrip()

    out = [line(header), "  ".join("-" * w for w in widths)]
    previous = None
    for row in cells:
        if previous is not None and row[0] != previous:
            out.append("")
        out.append(line(row))
        previous = row[0]
    return "\n".join(out)


@dataclass(frozen=True)
class Verdict:
    """Our BO against its rivals on one function, at the last checkpoint: its median regret, the
    best rival and its median regret, and whether BO is at or below it and under the time
    target (wall-clock seconds per trial < :data:`SECONDS_PER_TRIAL_TARGET`)."""

    function: str
    checkpoint: int
    bayes_opt_regret: float
    best_rival: str
    rival_regret: float
    seconds_per_trial: float
    regret_ok: bool
    speed_ok: bool

    @property
    def ok(self) -> bool:
        return self.regret_ok and self.speed_ok


def verdict(rows) -> list[Verdict]:
    """Per function, at its last checkpoint: is our BO's median regret ≤ the lower of Optuna
    TPE's and ``gp_minimize``'s, and is its seconds per trial below 0.5? The rows must hold the
    three methods."""
    rows = _check_rows(rows)
    out = []
    for function in dict.fromkeys(r.function for r in rows):
        last = max(r.checkpoint for r in rows if r.function == function)
        at = {r.method: r for r in rows if r.function == function and r.checkpoint == last}
        missing = [m for m in ("bayes_opt", *RIVALS) if m not in at]
        if missing:
            raise ValueError(f"rows must hold bayes_opt, tpe and gp_minimize for every function; "
                             f"{function} lacks {missing}")
        rival = min(RIVALS, key=lambda m: at[m].median)
        ours = at["bayes_opt"]
        out.append(Verdict(function, last, ours.median, rival, at[rival].median,
                           ours.seconds_per_trial, ours.median <= at[rival].median,
                           ours.seconds_per_trial < SECONDS_PER_TRIAL_TARGET))
    return out


def format_verdicts(verdicts) -> str:
    """One line per function: BO's regret against the best rival's, and its seconds per trial."""
    lines = []
    for v in verdicts:
        sign = "<=" if v.regret_ok else ">"
        speed = "<" if v.speed_ok else ">="
        lines.append(f"{v.function}: bayes_opt {v.bayes_opt_regret:.3g} {sign} {v.best_rival} "
                     f"{v.rival_regret:.3g} at {v.checkpoint} trials "
                     f"({'met' if v.regret_ok else 'missed'}); {v.seconds_per_trial:.3f} s/trial "
                     f"{speed} {SECONDS_PER_TRIAL_TARGET} ({'met' if v.speed_ok else 'missed'})")
    met = all(v.ok for v in verdicts)
    lines.append(f"target {'MET' if met else 'NOT MET'}: our BO at or below the best of TPE and "
                 f"gp_minimize on every function, under {SECONDS_PER_TRIAL_TARGET} s per trial")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# The command line
# --------------------------------------------------------------------------------------------


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {value}")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=_positive, default=10, help="seeds 0..N-1 (default 10)")
    parser.add_argument("--trials", type=_positive, default=30, help="trials per search (30)")
    parser.add_argument("--checkpoints", type=_positive, nargs="+", default=None,
                        help="trial counts to report (default: a third, two thirds, all)")
    parser.add_argument("--functions", nargs="+", choices=list(FUNCTIONS), default=None)
    parser.add_argument("--methods", nargs="+", choices=list(METHODS), default=list(METHODS))
    parser.add_argument("--jobs", type=_positive, default=2,
                        help="searches run at a time, one process and one thread each (2)")
    args = parser.parse_args(argv)
    checkpoints = args.checkpoints or sorted({max(1, args.trials // 3),
                                              max(1, 2 * args.trials // 3), args.trials})
    functions = args.functions or list(FUNCTIONS)
    try:
        load = "load average %.1f %.1f %.1f" % os.getloadavg()
    except OSError:
        load = "load average unknown"
    print(f"search benchmark: {len(functions)} functions x {len(args.methods)} methods x "
          f"{args.seeds} seeds, {args.trials} trials, {args.jobs} job(s) at a time; "
          f"{platform.machine()}, {os.cpu_count()} cores, {load}", flush=True)

    def report(done, total, function, method, seed, run):
        print(f"[{done}/{total}] {function} {method} seed {seed}: "
              f"{run.seconds_per_trial:.3f} s/trial", file=sys.stderr, flush=True)

    start = time.perf_counter()
    try:
        rows = benchmark(functions, args.methods, range(args.seeds), args.trials, checkpoints,
                         jobs=args.jobs, progress=report)
    except ValueError as error:
        parser.error(str(error))
    print(f"\nsimple regret, median [25th, 75th percentile] over {args.seeds} seeds; seconds per "
          f"trial: median wall clock (and CPU) per run\n", flush=True)
    print(format_table(rows))
    if set(RIVALS) | {"bayes_opt"} <= set(args.methods):
        print()
        print(format_verdicts(verdict(rows)))
    print(f"\n{time.perf_counter() - start:.0f} s in all", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
