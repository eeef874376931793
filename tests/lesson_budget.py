"""pytest plugin for the nbval run: each lesson's execution time and memory, against the budgets.

Budgets (the book's house rules): each lesson under 60 s, the whole book under 6 minutes of wall
time, the peak memory of a lesson's kernel under 1.5 GB. A lesson over budget fails the run.
Override with LESSON_BUDGET_S / BOOK_BUDGET_S / LESSON_MEMORY_MB for a slower machine.

Longest lessons first: the items are ordered by each lesson's time in ``tests/lesson_times.json``
(a lesson not listed counts as the slowest), so that the two queues of ``-n 2 --dist loadfile``
end together instead of one worker starting a long lesson while the other sits idle. The table
only orders the run; refresh it from the summary below when the lessons change much.

Works with and without pytest-xdist: a lesson's time is the sum of its cells' durations (the
reports reach the controller), the book's time is the wall time of the whole session (lessons run
side by side under ``-n 2``), and each worker sends the peak resident memory of its kernels (its
children) to the controller when it finishes.
"""

from __future__ import annotations

import json
import os
import resource
import time
from collections import defaultdict
from pathlib import Path

LESSON_BUDGET_S = float(os.environ.get("LESSON_BUDGET_S", 60))
BOOK_BUDGET_S = float(os.environ.get("BOOK_BUDGET_S", 360))
LESSON_MEMORY_MB = float(os.environ.get("LESSON_MEMORY_MB", 1536))

_seconds: dict[str, float] = defaultdict(float)
_peak_mb: list[float] = []
_over: list[str] = []
_start = time.perf_counter()


def _children_peak_mb() -> float:
    # ru_maxrss is in kB on Linux: the largest resident set of any finished child (the kernels)
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def _measured_times() -> dict[str, float]:
    path = Path(__file__).with_name("lesson_times.json")
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def _lesson_key(nodeid: str) -> str:
    """'_build/jupyter_execute/book/ch05/01-x.ipynb::Cell 3' → 'book/ch05/01-x'."""
    path = nodeid.split("::")[0]
    path = path[path.find("book/"):] if "book/" in path else path
    return path.removesuffix(".ipynb")


def pytest_collection_modifyitems(session, config, items):
    """Longest lessons first (stable: a lesson's cells keep their order)."""
    from lessons_lib._execute import expected_seconds

    expected = expected_seconds(_measured_times())
    items.sort(key=lambda item: -expected(_lesson_key(item.nodeid)))


def pytest_sessionstart(session):
    global _start
    _start = time.perf_counter()


def pytest_runtest_logreport(report):
    lesson = report.nodeid.split("::")[0]
    _seconds[lesson] += report.duration


def pytest_testnodedown(node, error):
    """On the xdist controller: a worker reports its kernels' peak memory."""
    peak = getattr(node, "workeroutput", {}).get("kernel_peak_mb")
    if peak is not None:
        _peak_mb.append(peak)


def pytest_sessionfinish(session, exitstatus):
    config = session.config
    if hasattr(config, "workeroutput"):  # an xdist worker: hand the number to the controller
        config.workeroutput["kernel_peak_mb"] = _children_peak_mb()
        return
    _peak_mb.append(_children_peak_mb())
    for lesson, seconds in _seconds.items():
        if seconds > LESSON_BUDGET_S:
            _over.append(f"{lesson}: {seconds:.1f} s > {LESSON_BUDGET_S:.0f} s")
    wall = time.perf_counter() - _start
    if wall > BOOK_BUDGET_S:
        _over.append(f"whole book: {wall:.1f} s wall time > {BOOK_BUDGET_S:.0f} s")
    if max(_peak_mb) > LESSON_MEMORY_MB:
        _over.append(f"peak kernel memory {max(_peak_mb):.0f} MB > {LESSON_MEMORY_MB:.0f} MB")
    if _over and session.exitstatus == 0:
        session.exitstatus = 1


def pytest_terminal_summary(terminalreporter):
    if hasattr(terminalreporter.config, "workeroutput"):
        return
    tr = terminalreporter
    tr.section("lesson execution times (budget: %.0f s each)" % LESSON_BUDGET_S)
    for lesson, seconds in sorted(_seconds.items()):
        tr.write_line(f"{seconds:7.1f} s  {lesson}")
    tr.write_line(f"{sum(_seconds.values()):7.1f} s  all lessons, one after another "
                  f"({len(_seconds)} lessons)")
    tr.write_line(f"{time.perf_counter() - _start:7.1f} s  whole book, wall time "
                  f"(budget {BOOK_BUDGET_S:.0f} s)")
    tr.write_line(f"peak memory of a lesson kernel: {max(_peak_mb, default=0):.0f} MB")
    for line in _over:
        tr.write_line("OVER BUDGET: " + line, red=True)
