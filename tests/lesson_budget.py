"""pytest plugin for the nbval run: each lesson's execution time and memory, against the budgets.

Budgets (the book's house rules): each lesson under 60 s, the whole book under 6 minutes, the peak
memory of a lesson's kernel under 1.5 GB. A lesson over budget fails the run. Override with
LESSON_BUDGET_S / BOOK_BUDGET_S / LESSON_MEMORY_MB for a slower machine.
"""

from __future__ import annotations

import os
import resource
from collections import defaultdict

LESSON_BUDGET_S = float(os.environ.get("LESSON_BUDGET_S", 60))
BOOK_BUDGET_S = float(os.environ.get("BOOK_BUDGET_S", 360))
LESSON_MEMORY_MB = float(os.environ.get("LESSON_MEMORY_MB", 1536))

_seconds: dict[str, float] = defaultdict(float)
_peak_mb: dict[str, float] = {}
_over: list[str] = []


def _children_peak_mb() -> float:
    # ru_maxrss is in kB on Linux: the largest resident set of any finished child (the kernels)
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def pytest_runtest_logreport(report):
    lesson = report.nodeid.split("::")[0]
    _seconds[lesson] += report.duration


def pytest_sessionfinish(session, exitstatus):
    _peak_mb["__all__"] = _children_peak_mb()
    for lesson, seconds in _seconds.items():
        if seconds > LESSON_BUDGET_S:
            _over.append(f"{lesson}: {seconds:.1f} s > {LESSON_BUDGET_S:.0f} s")
    total = sum(_seconds.values())
    if total > BOOK_BUDGET_S:
        _over.append(f"whole book: {total:.1f} s > {BOOK_BUDGET_S:.0f} s")
    if _peak_mb["__all__"] > LESSON_MEMORY_MB:
        _over.append(f"peak kernel memory {_peak_mb['__all__']:.0f} MB > {LESSON_MEMORY_MB:.0f} MB")
    if _over and session.exitstatus == 0:
        session.exitstatus = 1


def pytest_terminal_summary(terminalreporter):
    tr = terminalreporter
    tr.section("lesson execution times (budget: %.0f s each)" % LESSON_BUDGET_S)
    for lesson, seconds in sorted(_seconds.items()):
        tr.write_line(f"{seconds:7.1f} s  {lesson}")
    tr.write_line(f"{sum(_seconds.values()):7.1f} s  whole book ({len(_seconds)} lessons)")
    tr.write_line(f"peak memory of a lesson kernel: {_peak_mb.get('__all__', 0):.0f} MB")
    for line in _over:
        tr.write_line("OVER BUDGET: " + line, red=True)
