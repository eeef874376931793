"""When one machine is not enough: one Optuna study, several worker processes, one shared storage.

A *worker* is an ordinary process that opens the study by name and calls ``study.optimize``.
The workers do not talk to each other: everything they share lives in the *storage*, a database
every worker connects to (an SQLite file on one machine, a PostgreSQL server on a cluster).
Each ``optimize`` step asks the storage for a new trial (or takes one waiting in the queue),
evaluates the objective and writes the result back::

    url = "sqlite:///study.db"                                   # or postgresql+psycopg2://...
    report = run_study(url, n_workers=4, n_trials_per_worker=5, kill_one_after=0.5)
    report.n_complete, report.killed_trial, report.retry_trial  # 20, e.g. 3, e.g. 21

A worker killed in the middle of a trial cannot say so; its trial would stay RUNNING for ever.
The *heartbeat* is how the others find out: while a trial runs, a thread of its worker writes
the time into the storage every ``heartbeat_interval`` seconds. A RUNNING trial whose last beat
is older than ``grace_period`` seconds is *stale*: its worker is gone. Before each new trial,
``optimize`` fails the stale trials, and a callback puts a copy of each (same parameters) back
in the queue, where the next ``ask`` of any worker picks it up. Nothing is lost: the killed
trial is recorded once, as FAIL, and its parameters are evaluated once more, by the retry.

What Optuna 5.0 does (read in ``optuna/`` of the installed package, line numbers of 5.0.0)
------------------------------------------------------------------------------------------
- ``storages/_rdb/storage.py``: ``RDBStorage(url, *, heartbeat_interval, grace_period,
  heartbeat_stale_trial_callback)`` (l. 206-219); the old name ``failed_trial_callback`` still
  works but warns (deprecated in 4.9.0, removed in 6.0.0; l. 234-241). ``grace_period=None``
  means ``2 * heartbeat_interval`` (l. 1056-1057). A trial is stale when it is RUNNING and the
  database clock minus its last beat exceeds ``grace_period`` (l. 1061-1083); a RUNNING trial
  with no beat at all is never stale (l. 1078-1079). SQLite's clock there counts whole seconds.
- ``storages/_callbacks.py``: ``RetryHeartbeatStaleTrialCallback(max_retry)`` (l. 17) adds a
  WAITING copy of the failed trial with the same params, distributions and user attrs and the
  system attr ``failed_trial`` (l. 71-93); ``retried_trial_number(trial)`` reads it back
  (l. 97). ``RetryFailedTrialCallback`` is its deprecated alias since 4.9.0 (l. 130-135).
- ``storages/_heartbeat.py``: ``fail_stale_trials(study)`` sets each stale trial to FAIL and
  calls the callback only for the trials this process itself failed (l. 156-192); the beat
  thread writes its first beat as soon as it starts (l. 138-144). A worker killed after
  ``ask`` but before that first beat reaches the storage leaves a trial that stays RUNNING for
  ever: on this book's busy 2-core machine that happened (the first beat came more than 0.1 s
  late), so the demonstration's objective stores one beat itself before it announces that it is
  inside a trial (:class:`Objective`).
- ``study/_optimize.py``: ``optimize`` calls ``fail_stale_trials`` before every trial when the
  storage has a heartbeat (l. 191-195), then ``ask``, and runs the objective inside the beat
  thread (l. 204). ``study/study.py``: ``ask`` first takes a WAITING trial from the queue
  (l. 590, ``_pop_waiting_trial_id`` l. 1071), so a retry is run by the next ``optimize`` step
  of any worker.
- ``storages/journal/_storage.py``: ``JournalStorage(BaseStorage)`` (l. 55) is not a
  ``BaseHeartbeat``: the journal (file) storage has no heartbeat in 5.0, so a trial of a killed
  worker stays RUNNING there. The RDB storage is the one that keeps "a killed worker loses
  nothing".
- ``storages/_rdb/models.py``: trial numbers have no unique constraint (l. 176-179); they are
  made unique by locking the study row while a trial is created (``storage.py`` l. 503-507).
  The row locks are ``SELECT ... FOR UPDATE``, which "SQLite3 doesn't support"
  (``models.py`` l. 309-310).

SQLite and several processes
----------------------------
Without row locks, two SQLite workers can both read that a queued trial is WAITING and both run
it (seen here with plain ``RDBStorage("sqlite:///...")``: 4 workers popping 200 queued trials,
two ran the same trial and one of them then crashed with ``UpdateFinishedTrialError``), and two
workers that fail the same stale trial at the same moment could both queue a retry.
:func:`make_storage` therefore makes every SQLite transaction ``BEGIN IMMEDIATE`` (the recipe of
SQLAlchemy's SQLite documentation): one transaction at a time holds the database, so each
read-then-write of Optuna is atomic (the same run: 200 trials, each once). It also turns on the
write-ahead log with ``synchronous=NORMAL``, so that a commit does not wait for the disk: one
trial costs ~0.07 s of storage work instead of ~0.2 s here. PostgreSQL needs none of this.
SQLite is for the workers of one machine; a cluster shares a server. The heartbeat and the stale
check are marked experimental in Optuna; this module silences that one warning where it uses
them.

Determinism
-----------
With several workers, *which* points are tried depends on timing: the sampler of each worker
(TPE, seeded with ``seed + worker``) sees whatever trials the others have finished by then, and
where the killed worker dies decides how many of its trials it ran. What does not depend on
timing is the bookkeeping: the number of trial records and their states (see
:func:`run_study`). To make the evaluated points fixed as well, queue them beforehand
(``points=``, :func:`fixed_points`): every trial then takes one from the queue, and the best value
equals the best of a serial evaluation of the same list.

Workers are started with ``subprocess`` as ``python -m lessons_lib.shared_study worker ...``: a
fresh interpreter (no forked threads or torch state, nothing to pickle), which works the same
from a script, from pytest and from a Jupyter kernel, and is what one would type on each machine
of a cluster. Bad arguments raise ``ValueError`` naming the argument and the values allowed.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import optuna
from optuna.trial import TrialState

from lessons_lib._checks import _describe, check_int, check_real, check_seed

#: The search space of :class:`Objective` (``lr`` on a log scale).
LR_RANGE = (1e-4, 1.0)
MOMENTUM_RANGE = (0.0, 0.99)

#: How long :func:`run_study` waits for the workers (and for the kill) before it gives up.
WAIT_LIMIT_S = 300.0


# --- the objective --------------------------------------------------------------------------------


def loss(lr: float, momentum: float) -> float:
    """A stand-in for a validation loss: a bowl in (log10 of the effective rate, momentum).

    With momentum β, SGD moves about lr / (1 − β) per step, so the effective rate, not lr alone,
    decides; the bowl is lowest (0) at an effective rate of 0.1 and β = 0.9, i.e. lr = 0.01.
    """
    return (math.log10(lr / (1.0 - momentum)) + 1.0) ** 2 + (momentum - 0.9) ** 2


class Objective:
    """What each trial evaluates: ``loss(lr, momentum)``, after sleeping ``duration`` seconds
    (the stand-in for training, long enough to kill a worker in the middle of it).

    The trial records which worker ran it (user attr ``worker``). With ``marker_dir``, the file
    ``worker-<worker>.trial`` holds the number of the trial this worker is evaluating, from just
    after the parameters are drawn until just before the value is returned: proof, for
    :func:`run_study`, that the worker is inside a trial. An instance is picklable.
    """

    def __init__(self, duration: float = 0.2, worker: int = 0, marker_dir: str | None = None):
        self.duration = check_real("duration", duration, low=0)
        self.worker = check_int("worker", worker, low=0)
        self.marker_dir = marker_dir

    def __call__(self, trial: optuna.Trial) -> float:
        lr = trial.suggest_float("lr", *LR_RANGE, log=True)
        momentum = trial.suggest_float("momentum", *MOMENTUM_RANGE)
        trial.set_user_attr("worker", self.worker)
        marker = None if self.marker_dir is None else _marker_path(self.marker_dir, self.worker)
        if marker is not None:
            # Optuna's beat thread starts with the trial, but on a busy machine its first beat
            # can come late, and a worker killed before that leaves a trial that is never found
            # stale. One beat written here makes the marker mean "and the storage has a beat"
            # (Optuna has no public name for the trial's id in the storage: _trial_id).
            trial.storage.record_heartbeat(trial._trial_id)
            tmp = marker.with_suffix(".tmp")
            tmp.write_text(str(trial.number))
            os.replace(tmp, marker)  # atomic: a reader sees the whole number or no file
        try:
            time.sleep(self.duration)
            return loss(lr, momentum)
        finally:
            if marker is not None:
                marker.unlink(missing_ok=True)


def fixed_points(n: int, *, seed: int = 0) -> list[dict[str, float]]:
    """``n`` parameter sets drawn once (lr log-uniform, momentum uniform) with ``random.Random
    (seed)``, to queue with ``run_study(points=...)``: the same list for the same seed."""
    n = check_int("n", n, low=1)
    rng = random.Random(check_seed("seed", seed))
    lo, hi = math.log10(LR_RANGE[0]), math.log10(LR_RANGE[1])
    return [{"lr": 10 ** rng.uniform(lo, hi), "momentum": rng.uniform(*MOMENTUM_RANGE)}
            for _ in range(n)]


# --- the shared storage ---------------------------------------------------------------------------


def _check_url(url) -> str:
    if not isinstance(url, str) or not url:
        raise ValueError("url must be a non-empty string, an SQLAlchemy URL such as "
                         f"'sqlite:///study.db', got {_describe(url)}")
    if "://" not in url:
        raise ValueError(f"url must be an SQLAlchemy URL such as 'sqlite:///study.db' or "
                         f"'postgresql+psycopg2://user@host/db', got {_describe(url)}")
    if url.startswith("sqlite") and (":memory:" in url or url.rstrip("/") in ("sqlite:",)):
        raise ValueError(f"url must name a database that other processes can open (an SQLite "
                         f"file or a server); {url!r} lives inside one process")
    return url


def make_storage(url: str, *, heartbeat_interval: int = 1, grace_period: int = 3,
                 max_retry: int = 2) -> optuna.storages.RDBStorage:
    """The storage every worker opens: an ``RDBStorage`` with a heartbeat every
    ``heartbeat_interval`` seconds; a RUNNING trial silent for more than ``grace_period`` seconds
    is failed and queued again, at most ``max_retry`` times (``RetryHeartbeatStaleTrialCallback``).

    ``grace_period`` must exceed ``heartbeat_interval``, or a live trial would look stale (SQLite's
    clock counts whole seconds, so leave a second or two more). For SQLite, every transaction is
    ``BEGIN IMMEDIATE`` (see the module docstring).
    """
    url = _check_url(url)
    heartbeat_interval = check_int("heartbeat_interval", heartbeat_interval, low=1)
    grace_period = check_int("grace_period", grace_period, low=1)
    if grace_period <= heartbeat_interval:
        raise ValueError(f"grace_period must be an integer > heartbeat_interval "
                         f"({heartbeat_interval}), or a live trial counts as stale; "
                         f"got {grace_period}")
    max_retry = check_int("max_retry", max_retry, low=0)
    sqlite = url.startswith("sqlite")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        storage = optuna.storages.RDBStorage(
            url,
            # SQLite: wait up to 60 s for the database instead of failing after the default 5 s
            engine_kwargs={"connect_args": {"timeout": 60}} if sqlite else None,
            heartbeat_interval=heartbeat_interval,
            grace_period=grace_period,
            heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(
                max_retry=max_retry),
        )
    if storage.engine.dialect.name == "sqlite":
        _serialize_sqlite(storage.engine)
    return storage


def _serialize_sqlite(engine) -> None:
    """SQLAlchemy's recipe: the driver stops opening transactions by itself, and each one starts
    with ``BEGIN IMMEDIATE``, which takes the database's write lock (waiting for it if needed).

    Also: write-ahead log with ``synchronous=NORMAL``, so that a commit does not wait for the
    disk (3× faster per trial here). A commit still survives the death of its process (what the
    lesson does to a worker); only a power cut could undo the last ones.
    """
    from sqlalchemy import event

    @event.listens_for(engine, "connect")
    def _no_driver_begin(dbapi_connection, connection_record):
        dbapi_connection.isolation_level = None
        dbapi_connection.execute("PRAGMA journal_mode=WAL")
        dbapi_connection.execute("PRAGMA synchronous=NORMAL")

    @event.listens_for(engine, "begin")
    def _begin_immediate(connection):
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    engine.dispose()  # the connections opened so far lack the "connect" setting


# --- one worker -----------------------------------------------------------------------------------


def run_worker(url: str, study_name: str, n_trials: int, *, seed: int, worker: int = 0,
               duration: float = 0.2, marker_dir: str | None = None, heartbeat_interval: int = 1,
               grace_period: int = 3, max_retry: int = 2) -> None:
    """What one worker does: open the study ``study_name`` in the storage at ``url`` and run
    ``n_trials`` trials of :class:`Objective` with its own sampler (TPE, seeded ``seed``).

    This is the whole worker; run it in as many processes (or machines) as you like, with the
    same ``url``, ``study_name`` and storage settings, each with its own ``seed``. From a shell:
    ``python -m lessons_lib.shared_study worker URL STUDY --n-trials 5 --seed 1``.
    """
    n_trials = check_int("n_trials", n_trials, low=1)
    seed = check_seed("seed", seed)
    objective = Objective(duration, worker, marker_dir)
    storage = make_storage(url, heartbeat_interval=heartbeat_interval,
                           grace_period=grace_period, max_retry=max_retry)
    study = optuna.load_study(study_name=_check_name(study_name), storage=storage,
                              sampler=optuna.samplers.TPESampler(seed=seed))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.optimize(objective, n_trials=n_trials)


def _check_name(study_name) -> str:
    if not isinstance(study_name, str) or not study_name:
        raise ValueError(f"study_name must be a non-empty string, got {_describe(study_name)}")
    return study_name


def _marker_path(marker_dir: str, worker: int) -> Path:
    return Path(marker_dir) / f"worker-{worker}.trial"


def _read_marker(path: Path) -> int | None:
    try:
        return int(path.read_text())
    except (FileNotFoundError, ValueError):
        return None


# --- the study: several workers, one of them killed -----------------------------------------------


@dataclass(frozen=True)
class SharedStudyReport:
    """What :func:`run_study` found in the storage at the end.

    ``n_trials`` counts the trial records; ``killed_trial`` is the number of the trial whose
    worker was killed (None when no worker was killed), ``retry_trial`` the number of the trial
    that re-ran its parameters (``RetryHeartbeatStaleTrialCallback.retried_trial_number`` of that
    trial is ``killed_trial``; None when there is none). ``numbers_unique``: the trial numbers are
    exactly 0, 1, ..., n_trials − 1, each once.
    """

    study_name: str
    n_workers: int
    n_trials_per_worker: int
    n_trials: int
    n_complete: int
    n_fail: int
    n_running: int
    n_waiting: int
    killed_trial: int | None
    retry_trial: int | None
    numbers_unique: bool
    best_value: float | None
    best_params: dict | None
    wall_seconds: float


def _check_points(points, total: int) -> list[dict[str, float]]:
    if isinstance(points, str | bytes | Mapping) or not isinstance(points, Sequence):
        raise ValueError(f"points must be None or a list of {total} dicts with keys 'lr' and "
                         f"'momentum', got {_describe(points)}")
    if len(points) != total:
        raise ValueError(f"points must hold n_workers * n_trials_per_worker = {total} parameter "
                         f"sets (one per trial), got {len(points)}")
    checked = []
    for i, p in enumerate(points):
        if not isinstance(p, Mapping) or set(p) != {"lr", "momentum"}:
            raise ValueError(f"points[{i}] must be a dict with keys 'lr' and 'momentum', "
                             f"got {_describe(p)}")
        checked.append({"lr": check_real(f"points[{i}]['lr']", p["lr"], low=LR_RANGE[0],
                                         high=LR_RANGE[1]),
                        "momentum": check_real(f"points[{i}]['momentum']", p["momentum"],
                                               low=MOMENTUM_RANGE[0], high=MOMENTUM_RANGE[1])})
    return checked


def _start_worker(url, study_name, n_trials, seed, worker, duration, marker_dir, settings, log):
    """``python -m lessons_lib.shared_study worker ...`` in a new process, output to ``log``."""
    command = [sys.executable, "-m", "lessons_lib.shared_study", "worker", url, study_name,
               "--n-trials", str(n_trials), "--seed", str(seed), "--worker", str(worker),
               "--duration", repr(duration), "--marker-dir", marker_dir,
               "--heartbeat-interval", str(settings["heartbeat_interval"]),
               "--grace-period", str(settings["grace_period"]),
               "--max-retry", str(settings["max_retry"])]
    env = dict(os.environ)  # this copy of lessons_lib first, installed or not
    root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join([root, *filter(None, [env.get("PYTHONPATH")])])
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)


def _kill_inside_trial(proc: subprocess.Popen, marker: Path, deadline: float) -> int | None:
    """SIGKILL ``proc`` while it is inside a trial; return that trial's number (None if the
    worker finished first).

    As soon as the worker's marker names a trial (its parameters are drawn, a beat is stored, the
    objective is running), freeze the worker (SIGSTOP) and kill it if the marker still names that
    trial; else (the trial ended in between) let it go on (SIGCONT) and wait for its next trial.
    Frozen, it cannot finish the trial between the check and the kill.
    """
    can_pause = hasattr(signal, "SIGSTOP")  # not on Windows
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return None
        number = _read_marker(marker)
        if number is None:
            time.sleep(0.01)
            continue
        if can_pause:
            proc.send_signal(signal.SIGSTOP)
        if _read_marker(marker) == number:
            proc.kill()  # SIGKILL: no clean-up, no last word to the storage
            proc.wait()
            return number
        if can_pause:
            proc.send_signal(signal.SIGCONT)
    raise RuntimeError(f"worker 0 was not seen inside a trial within {WAIT_LIMIT_S} s")


def _log_tail(path: Path, n: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-n:]
    except OSError:
        return "(no output)"


def _state(study, number: int) -> TrialState:
    return next(t.state for t in study.get_trials(deepcopy=False) if t.number == number)


def _report(study, killed_trial, n_workers, n_trials_per_worker, t0) -> SharedStudyReport:
    """Count what the storage holds now."""
    trials = study.get_trials(deepcopy=False)
    count = {s: sum(t.state == s for t in trials) for s in TrialState}
    retry_trial = None
    if killed_trial is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            retries = [t.number for t in trials if t.number != killed_trial and
                       optuna.storages.RetryHeartbeatStaleTrialCallback.retried_trial_number(t)
                       == killed_trial]
        retry_trial = min(retries, default=None)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    best = min(complete, key=lambda t: t.value) if complete else None
    return SharedStudyReport(
        study_name=study.study_name, n_workers=n_workers, n_trials_per_worker=n_trials_per_worker,
        n_trials=len(trials), n_complete=count[TrialState.COMPLETE],
        n_fail=count[TrialState.FAIL], n_running=count[TrialState.RUNNING],
        n_waiting=count[TrialState.WAITING], killed_trial=killed_trial, retry_trial=retry_trial,
        numbers_unique=sorted(t.number for t in trials) == list(range(len(trials))),
        best_value=None if best is None else best.value,
        best_params=None if best is None else dict(best.params),
        wall_seconds=time.perf_counter() - t0,
    )


def run_study(url: str, *, n_workers: int = 4, n_trials_per_worker: int = 5,
              kill_one_after: float | None = None, seed: int = 0,
              study_name: str = "shared-study", points: Sequence[Mapping] | None = None,
              duration: float = 0.2, heartbeat_interval: int = 1, grace_period: int = 3,
              max_retry: int = 2) -> SharedStudyReport:
    """Create the study ``study_name`` in the storage at ``url``, run ``n_workers`` worker
    processes of ``n_trials_per_worker`` trials each, optionally kill one, and report.

    1. The study is created (it must not exist yet in that storage); with ``points`` (exactly
       ``n_workers * n_trials_per_worker`` dicts with ``lr`` and ``momentum``, e.g.
       :func:`fixed_points`), they are queued first (``study.enqueue_trial``) so that every
       trial evaluates one of them.
    2. Worker ``k`` runs :func:`run_worker` with seed ``seed + k`` in its own process.
    3. With ``kill_one_after`` (seconds), worker 0 is killed with SIGKILL at the first moment
       after that time when it is inside a trial: that trial stays RUNNING, its beats stop.
    4. When the other workers are done, this process calls ``fail_stale_trials`` until the killed
       trial is FAIL (about ``grace_period`` seconds after the kill, unless a worker did it
       first); the callback has queued its retry. Then the study goes on: one more
       ``study.optimize`` here runs the trials the killed worker did not finish, the queued retry
       among them unless a worker took it already (``ask`` takes queued trials first).

    The accounting, with W workers of n trials and a kill: the killed worker completed some k
    trials and died in trial k + 1; the others completed (W − 1)·n; the last ``optimize`` runs
    n − k more, the retry among them. So W·n trials are COMPLETE, one is FAIL, and there are
    W·n + 1 records. Without a kill: W·n records, all COMPLETE.

    ``duration`` is the time one trial takes (seconds). Returns a :class:`SharedStudyReport`.
    """
    t0 = time.perf_counter()
    url = _check_url(url)
    n_workers = check_int("n_workers", n_workers, low=1)
    n_trials_per_worker = check_int("n_trials_per_worker", n_trials_per_worker, low=1)
    if kill_one_after is not None:
        kill_one_after = check_real("kill_one_after", kill_one_after, low=0)
    seed = check_seed("seed", seed)
    study_name = _check_name(study_name)
    total = n_workers * n_trials_per_worker
    if points is not None:
        points = _check_points(points, total)
    duration = check_real("duration", duration, low=0)
    if kill_one_after is not None and duration <= 0:
        raise ValueError(f"duration must be > 0 when a worker is killed (it must be caught "
                         f"inside a trial), got {duration!r}")
    settings = dict(heartbeat_interval=heartbeat_interval, grace_period=grace_period,
                    max_retry=max_retry)
    storage = make_storage(url, **settings)  # checks the three settings

    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # no timestamped log lines in a lesson
    workdir = None
    procs: list[subprocess.Popen] = []
    killed_trial = None
    try:
        try:
            study = optuna.create_study(storage=storage, study_name=study_name,
                                        sampler=optuna.samplers.TPESampler(seed=seed))
        except optuna.exceptions.DuplicatedStudyError:
            raise ValueError(f"study_name {study_name!r} already exists in {url}; pass another "
                             f"study_name or a fresh storage") from None
        for p in points or ():
            study.enqueue_trial(p)

        workdir = tempfile.mkdtemp(prefix="shared-study-")
        logs = [Path(workdir) / f"worker-{k}.log" for k in range(n_workers)]
        for k in range(n_workers):
            with open(logs[k], "wb") as log:
                procs.append(_start_worker(url, study_name, n_trials_per_worker, seed + k, k,
                                           duration, workdir, settings, log))
        start = time.monotonic()
        if kill_one_after is not None:
            time.sleep(max(0.0, start + kill_one_after - time.monotonic()))
            killed_trial = _kill_inside_trial(procs[0], _marker_path(workdir, 0),
                                              deadline=start + WAIT_LIMIT_S)
        for k, proc in enumerate(procs):
            try:
                proc.wait(timeout=max(1.0, start + WAIT_LIMIT_S - time.monotonic()))
            except subprocess.TimeoutExpired:
                raise RuntimeError(f"worker {k} did not finish within {WAIT_LIMIT_S} s; its "
                                   f"output:\n{_log_tail(logs[k])}") from None
            if proc.returncode != 0 and not (k == 0 and killed_trial is not None):
                raise RuntimeError(f"worker {k} exited with code {proc.returncode}; its "
                                   f"output:\n{_log_tail(logs[k])}")

        if killed_trial is not None:
            # Wait for the heartbeat to declare the killed trial stale (what optimize does first).
            limit = time.monotonic() + grace_period + 2 * heartbeat_interval + 60
            while _state(study, killed_trial) == TrialState.RUNNING:
                if time.monotonic() > limit:
                    raise RuntimeError(
                        f"trial {killed_trial} of the killed worker is still RUNNING "
                        f"{grace_period + 2 * heartbeat_interval + 60} s after the kill: it has "
                        f"no heartbeat (the worker died before its first beat)")
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                    optuna.storages.fail_stale_trials(study)
                time.sleep(0.25)
        n_missing = total - len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
        if n_missing > 0:  # the study goes on: the killed worker's unfinished trials, retry first
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                study.optimize(Objective(duration, worker=n_workers), n_trials=n_missing)
        return _report(study, killed_trial, n_workers, n_trials_per_worker, t0)
    finally:
        optuna.logging.set_verbosity(verbosity)
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        if workdir is not None:
            shutil.rmtree(workdir, ignore_errors=True)
        storage.engine.dispose()  # close this process's connections to the database


# --- command line ---------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m lessons_lib.shared_study worker URL STUDY --n-trials N --seed S`` runs one
    worker; ``python -m lessons_lib.shared_study demo URL`` runs :func:`run_study` with a kill and
    prints the report."""
    parser = argparse.ArgumentParser(prog="python -m lessons_lib.shared_study")
    sub = parser.add_subparsers(dest="command", required=True)
    w = sub.add_parser("worker", help="run one worker of an existing study")
    w.add_argument("url")
    w.add_argument("study_name")
    w.add_argument("--n-trials", type=int, required=True)
    w.add_argument("--seed", type=int, required=True)
    w.add_argument("--worker", type=int, default=0)
    w.add_argument("--duration", type=float, default=0.2)
    w.add_argument("--marker-dir", default=None)
    d = sub.add_parser("demo", help="create a study, run 4 workers, kill one, print the report")
    d.add_argument("url")
    d.add_argument("--study-name", default="shared-study")
    for p in (w, d):
        p.add_argument("--heartbeat-interval", type=int, default=1)
        p.add_argument("--grace-period", type=int, default=3)
        p.add_argument("--max-retry", type=int, default=2)
    args = parser.parse_args(argv)
    settings = dict(heartbeat_interval=args.heartbeat_interval, grace_period=args.grace_period,
                    max_retry=args.max_retry)
    if args.command == "worker":
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        run_worker(args.url, args.study_name, args.n_trials, seed=args.seed, worker=args.worker,
                   duration=args.duration, marker_dir=args.marker_dir, **settings)
    else:
        print(run_study(args.url, study_name=args.study_name, kill_one_after=0.5, **settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
