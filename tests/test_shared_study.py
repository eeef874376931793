"""lessons_lib.shared_study: several worker processes, one Optuna study, one worker killed.

The claim of chapter 5 ("when one machine is not enough"): every trial is recorded exactly once,
and a worker killed in the middle of a trial loses nothing: its trial is marked FAIL, its
parameters are run again by a retry, and the study goes on. It is checked against SQLite (a file)
and against a real PostgreSQL server that the ``postgres_url`` fixture starts and stops. The
PostgreSQL test never skips: without PostgreSQL installed it fails and says how to get it
(``make postgres``).

The accounting that every scenario checks, with W workers asked for n trials each, worker 0
killed inside its trial k + 1 after completing k trials:

- workers 1 .. W−1 complete n trials each, (W − 1)·n in all (a retry they happen to pick from
  the queue is one of their n);
- worker 0 completes k trials; its trial k + 1 is FAIL (it never learns it was killed);
- the study goes on: one more ``optimize`` (recorded as worker W) runs the n − k trials worker 0
  did not finish, the retry among them if no other worker took it first;
- so W·n trials are COMPLETE, 1 is FAIL, none RUNNING or WAITING, and the storage holds W·n + 1
  records numbered 0 .. W·n, each number once.
"""

from __future__ import annotations

import glob
import os
import pwd
import re
import shlex
import shutil
import socket
import subprocess
import tempfile
from collections import Counter
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from lessons_lib import shared_study as ss

HOW_TO_GET_POSTGRES = ("PostgreSQL is needed for this test and was not found (no initdb on PATH "
                       "nor under /usr/lib/postgresql/*/bin). Install it with `make postgres` "
                       "(Debian's postgresql package) or `apt-get install postgresql`.")


# --- the checks both storages share ---------------------------------------------------------------


def _check_nothing_lost(url: str, report: ss.SharedStudyReport, n_workers: int, n: int):
    """Read the study back from the storage and check the accounting of the module docstring."""
    study = optuna.load_study(study_name=report.study_name, storage=url)
    trials = study.get_trials(deepcopy=False)
    numbers = [t.number for t in trials]
    assert sorted(numbers) == list(range(n_workers * n + 1)), "each trial number once, none lost"
    assert report.numbers_unique
    states = Counter(t.state for t in trials)
    assert states == {TrialState.COMPLETE: n_workers * n, TrialState.FAIL: 1}, states
    assert (report.n_trials, report.n_complete, report.n_fail, report.n_running,
            report.n_waiting) == (n_workers * n + 1, n_workers * n, 1, 0, 0)

    killed = trials[report.killed_trial]
    assert killed.number == report.killed_trial
    assert killed.state == TrialState.FAIL and killed.user_attrs["worker"] == 0
    assert set(killed.params) == {"lr", "momentum"}, "killed after its parameters were drawn"
    retries = [t for t in trials if t.system_attrs.get("failed_trial") == killed.number]
    assert len(retries) == 1, "exactly one retry of the killed trial"
    (retry,) = retries
    assert retry.number == report.retry_trial != killed.number
    assert retry.state == TrialState.COMPLETE
    assert retry.params == killed.params, "the retry re-runs the very same point"
    assert retry.value == ss.loss(**killed.params)

    by_worker = Counter(t.user_attrs["worker"] for t in trials if t.state == TrialState.COMPLETE)
    k = by_worker[0]
    assert 0 <= k < n
    expected = Counter({0: k, **{w: n for w in range(1, n_workers)}, n_workers: n - k})
    assert by_worker == +expected  # unary +: drops worker 0 when k = 0
    complete_values = [t.value for t in trials if t.state == TrialState.COMPLETE]
    assert report.best_value == min(complete_values) == study.best_value
    assert report.best_params == study.best_params
    return trials


def _workers_still_running(url: str) -> list[str]:
    """Command lines of worker processes of ``url`` that are still alive (Linux /proc)."""
    alive = []
    for path in glob.glob("/proc/[0-9]*/cmdline"):
        try:
            cmd = Path(path).read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if "lessons_lib.shared_study" in cmd and url in cmd:
            alive.append(cmd)
    return alive


# --- SQLite ---------------------------------------------------------------------------------------


def test_sqlite_killed_worker_loses_nothing(tmp_path, monkeypatch):
    """3 workers × 3 trials on an SQLite file; worker 0 is killed (SIGKILL) inside a trial.
    Afterwards no worker process is left, nor the directory of the markers."""
    url = f"sqlite:///{tmp_path / 'study.db'}"
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))  # where run_study's goes
    report = ss.run_study(url, n_workers=3, n_trials_per_worker=3, kill_one_after=0.2, seed=0)
    assert report.killed_trial is not None, "worker 0 was caught inside a trial"
    _check_nothing_lost(url, report, n_workers=3, n=3)
    if os.path.isdir("/proc"):
        assert _workers_still_running(url) == [], "no worker left running"
    assert list((tmp_path / "tmp").iterdir()) == [], "the markers' directory is removed"


def test_sqlite_without_a_kill_every_trial_completes(tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    report = ss.run_study(url, n_workers=2, n_trials_per_worker=1, seed=3, duration=0.0)
    assert (report.n_trials, report.n_complete, report.n_fail, report.killed_trial,
            report.retry_trial, report.numbers_unique) == (2, 2, 0, None, None, True)


# --- PostgreSQL: a throw-away server --------------------------------------------------------------


def _postgres_bin_dir(which=shutil.which,
                      pattern: str = "/usr/lib/postgresql/*/bin/initdb") -> Path | None:
    """The directory holding ``initdb`` and ``pg_ctl``: from PATH, else the newest of Debian's
    /usr/lib/postgresql/<version>/bin (not on PATH there)."""
    found = which("initdb")
    if found:
        return Path(found).resolve().parent
    candidates = glob.glob(pattern)

    def version(path: str) -> tuple[int, ...]:
        v = Path(path).parent.parent.name
        return tuple(int(x) for x in re.findall(r"\d+", v)) or (0,)

    return Path(max(candidates, key=version)).parent if candidates else None


def test_postgres_bin_dir_finder(tmp_path):
    """The finder prefers PATH, else takes the highest version (15 after 9.6, numerically)."""
    assert _postgres_bin_dir(lambda _: None, str(tmp_path / "*/bin/initdb")) is None
    for v in ("9.6", "15", "13"):
        (tmp_path / v / "bin").mkdir(parents=True)
        (tmp_path / v / "bin" / "initdb").touch()
    assert _postgres_bin_dir(lambda _: None, str(tmp_path / "*/bin/initdb")) == \
        tmp_path / "15" / "bin"
    assert _postgres_bin_dir(lambda _: str(tmp_path / "9.6/bin/initdb"),
                             str(tmp_path / "*/bin/initdb")) == tmp_path / "9.6" / "bin"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def postgres_url():
    """A PostgreSQL server of its own: ``initdb`` into a temporary directory, ``pg_ctl start`` on
    127.0.0.1 and a free port (its socket in that directory too), one database ``optuna``; yields
    the SQLAlchemy URL, then ``pg_ctl stop -m immediate`` and the directory is removed.

    PostgreSQL refuses to run as root: as root, the commands run as the ``postgres`` system user
    (created by Debian's package), which owns the directory.
    """
    bin_dir = _postgres_bin_dir()
    if bin_dir is None or not (bin_dir / "pg_ctl").exists():
        pytest.fail(HOW_TO_GET_POSTGRES, pytrace=False)
    as_user: list[str] = []
    owner = None
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            pytest.fail("running as root, and PostgreSQL refuses to run as root, but there is no "
                        "`postgres` user to run it as; " + HOW_TO_GET_POSTGRES, pytrace=False)
        as_user = (["runuser", "-u", "postgres", "--"] if shutil.which("runuser")
                   else ["su", "postgres", "-s", "/bin/sh", "-c"])
    root = Path(tempfile.mkdtemp(prefix="pg-shared-study-"))
    if owner is not None:
        os.chown(root, owner.pw_uid, owner.pw_gid)
    data, log = root / "data", root / "server.log"

    def run(*args: str) -> subprocess.CompletedProcess:
        cmd = [str(a) for a in args]
        if as_user and as_user[0] == "su":  # su takes one command string
            cmd = [*as_user, shlex.join(cmd)]
        else:
            cmd = [*as_user, *cmd]
        return subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=120)

    started = False
    try:
        out = run(bin_dir / "initdb", "-D", data, "-A", "trust", "-U", "postgres", "-E", "UTF8",
                  "--no-sync")
        assert out.returncode == 0, f"initdb failed:\n{out.stdout}\n{out.stderr}"
        for _attempt in range(3):  # another program may take the free port first
            port = _free_port()
            options = (f"-h 127.0.0.1 -p {port} -k {root} "
                       "-c fsync=off -c full_page_writes=off -c synchronous_commit=off")
            out = run(bin_dir / "pg_ctl", "-D", data, "-l", log, "-w", "-t", "60",
                      "-o", options, "start")
            if out.returncode == 0:
                started = True
                break
        assert started, (f"pg_ctl start failed:\n{out.stdout}\n{out.stderr}\n"
                         f"{log.read_text() if log.exists() else ''}")
        import psycopg2

        conn = psycopg2.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres")
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("CREATE DATABASE optuna")
        conn.close()
        yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}/optuna"
    finally:
        if started:
            run(bin_dir / "pg_ctl", "-D", data, "-m", "immediate", "-w", "stop")
        shutil.rmtree(root, ignore_errors=True)


def test_postgres_killed_worker_loses_nothing(postgres_url):
    """4 workers × 3 trials on PostgreSQL; worker 0 is killed (SIGKILL) inside a trial.

    To compare with a serial run, the points are fixed: 12 parameter sets are queued
    (``study.enqueue_trial``) before the workers start, one per trial, so every trial evaluates
    one of them whatever the timing (a seeded sampler per worker would not do: which worker draws
    how many points, and what TPE has seen when it draws, depend on timing and on where the kill
    lands). The killed point is evaluated by its retry. So the COMPLETE trials are exactly the 12
    points, each once, and the best value is the best of evaluating the list one by one, here and
    with a serial Optuna study in memory.
    """
    points = ss.fixed_points(12, seed=1)
    report = ss.run_study(postgres_url, n_workers=4, n_trials_per_worker=3, kill_one_after=0.3,
                          seed=0, points=points)
    assert report.killed_trial is not None, "worker 0 was caught inside a trial"
    trials = _check_nothing_lost(postgres_url, report, n_workers=4, n=3)

    key = lambda p: (p["lr"], p["momentum"])  # noqa: E731
    evaluated = Counter(key(t.params) for t in trials if t.state == TrialState.COMPLETE)
    assert evaluated == Counter(key(p) for p in points), "each queued point completed once"
    serial_best = min(ss.loss(**p) for p in points)
    assert report.best_value == serial_best

    serial = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for p in points:
        serial.enqueue_trial(p)
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        serial.optimize(ss.Objective(duration=0.0), n_trials=len(points))
    finally:
        optuna.logging.set_verbosity(verbosity)
    assert serial.best_value == report.best_value
    assert serial.best_params == report.best_params


# --- bad input ------------------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs, message", [
    (dict(n_workers=0), r"^n_workers must be an integer >= 1, got 0$"),
    (dict(n_workers=2.0), r"^n_workers must be an integer >= 1, got 2\.0$"),
    (dict(n_trials_per_worker=0), r"^n_trials_per_worker must be an integer >= 1, got 0$"),
    (dict(kill_one_after=-1),
     r"^kill_one_after must be a finite number in \[0, inf\), got -1\.0$"),
    (dict(kill_one_after="1"), r"^kill_one_after must be a real number, got the string '1'$"),
    (dict(seed=-1), r"^seed must be an integer >= 0, got -1$"),
    (dict(study_name=""), r"^study_name must be a non-empty string, got the string ''$"),
    (dict(points=[{"lr": 0.1, "momentum": 0.9}]),
     r"^points must hold n_workers \* n_trials_per_worker = 20 parameter sets"),
    (dict(n_workers=1, n_trials_per_worker=1, points=[{"lr": 0.1}]),
     r"^points\[0\] must be a dict with keys 'lr' and 'momentum'"),
    (dict(n_workers=1, n_trials_per_worker=1, points=[{"lr": 5.0, "momentum": 0.9}]),
     r"^points\[0\]\['lr'\] must be a finite number in \[0\.0001, 1\.0\], got 5\.0$"),
    (dict(kill_one_after=1, duration=0), r"^duration must be > 0 when a worker is killed"),
    (dict(heartbeat_interval=0), r"^heartbeat_interval must be an integer >= 1, got 0$"),
    (dict(grace_period=1), r"^grace_period must be an integer > heartbeat_interval \(1\)"),
    (dict(max_retry=-1), r"^max_retry must be an integer >= 0, got -1$"),
])
def test_run_study_refuses_bad_arguments(tmp_path, kwargs, message):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    with pytest.raises(ValueError, match=message):
        ss.run_study(url, **kwargs)
    assert not (tmp_path / "study.db").exists(), "refused before the storage is touched"


@pytest.mark.parametrize("url, message", [
    (None, r"^url must be a non-empty string, an SQLAlchemy URL such as 'sqlite:///study\.db', "
           r"got None$"),
    ("", r"^url must be a non-empty string"),
    (42, r"^url must be a non-empty string.*got 42$"),
    ("study.db", r"^url must be an SQLAlchemy URL such as 'sqlite:///study\.db'.*"
                 r"got the string 'study\.db'$"),
    ("sqlite:///:memory:", r"^url must name a database that other processes can open"),
    ("sqlite://", r"^url must name a database that other processes can open"),
])
def test_bad_url_is_refused(url, message):
    with pytest.raises(ValueError, match=message):
        ss.run_study(url)
    with pytest.raises(ValueError, match=message):
        ss.make_storage(url)


def test_existing_study_name_is_refused(tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    optuna.create_study(storage=url, study_name="taken")
    with pytest.raises(ValueError, match=r"^study_name 'taken' already exists in sqlite:///"):
        ss.run_study(url, study_name="taken")


def test_make_storage_sets_heartbeat_and_retry(tmp_path):
    storage = ss.make_storage(f"sqlite:///{tmp_path / 'study.db'}", heartbeat_interval=2,
                              grace_period=5, max_retry=1)
    try:
        assert isinstance(storage, optuna.storages.RDBStorage)
        assert (storage.heartbeat_interval, storage.grace_period) == (2, 5)
        callback = storage.heartbeat_stale_trial_callback
        assert type(callback) is optuna.storages.RetryHeartbeatStaleTrialCallback
        assert callback._max_retry == 1
    finally:
        storage.engine.dispose()


def test_fixed_points_and_loss():
    a, b = ss.fixed_points(5, seed=2), ss.fixed_points(5, seed=2)
    assert a == b and a != ss.fixed_points(5, seed=3)
    assert all(1e-4 <= p["lr"] <= 1 and 0 <= p["momentum"] <= 0.99 for p in a)
    assert ss.loss(0.01, 0.9) == pytest.approx(0.0, abs=1e-24)
    assert ss.loss(0.1, 0.9) == pytest.approx(1.0)  # effective rate 1: one decade too high
    with pytest.raises(ValueError, match=r"^n must be an integer >= 1, got 0$"):
        ss.fixed_points(0)
