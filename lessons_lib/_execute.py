"""Execute the lessons two at a time into the book's execution cache (``make execute``).

``jupyter-book build`` with ``execute_notebooks: cache`` runs every lesson whose code changed, one
after another. This module fills the same cache (``_build/.jupyter_cache``, jupyter-cache) first,
``--jobs`` lessons at a time, so that the build only reads the cached outputs: on the book's 2-core
machine two one-thread kernels side by side finish the book in a bit over half the serial time
(each lesson's first cell, ``setup(seed=0)``, pins torch and the BLAS to one thread).

The notebook is read with myst-nb's own jupyter-cache reader (``myst_nb_md``), the one the build
uses, so the cache entry it writes is the one the build looks up (matched by a hash of the code
cells and the kernelspec). A lesson that is already cached is not run again. A lesson that fails
is reported with its traceback and the command exits 1, before the build starts.

The time limit per cell is the build's own, ``execute.timeout`` in ``_config.yml`` (``--timeout``
overrides it), so a lesson that the build would stop is stopped here too.

Usage: ``python -m lessons_lib._execute [--jobs 2] [--timeout SECONDS] LESSON.md ...``
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

READER = {"type": "plugin", "name": "myst_nb_md"}  # myst-nb's jupyter-cache reader plugin


def _execute_one(path: str, timeout: int) -> tuple[str, object, float, str | None]:
    """Run one lesson in a fresh kernel, in the lesson's folder (as the build would)."""
    from jupyter_cache.executors.utils import single_nb_execution
    from myst_nb.core.read import myst_nb_reader_plugin

    nb = myst_nb_reader_plugin(path)
    result = single_nb_execution(nb, cwd=str(Path(path).parent), timeout=timeout,
                                 allow_errors=False, meta_override=True)
    return path, nb, result.time, result.exc_string


def config_timeout(config: str | Path = "_config.yml") -> int:
    """Seconds per cell that the book's build allows: ``execute.timeout`` of ``_config.yml``."""
    import yaml

    execute = (yaml.safe_load(Path(config).read_text(encoding="utf-8")) or {}).get("execute", {})
    timeout = execute.get("timeout")
    if not isinstance(timeout, int) or timeout < 1:
        raise ValueError(f"execute.timeout in {config} must be a whole number of seconds >= 1, "
                         f"got {timeout!r}")
    return timeout


def expected_seconds(times: dict[str, float]):
    """``lesson -> seconds`` from a table of measured times ('book/ch01/01-x': 16.3); a lesson
    not in the table counts as slower than every lesson in it (a new lesson starts first). Used to
    run the longest lessons first here and in the nbval run (``tests/lesson_budget.py``)."""
    slowest = max(times.values(), default=0.0) + 1

    def expected(lesson: str) -> float:
        return times.get(lesson, slowest)

    return expected


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("lessons", nargs="+", type=Path)
    parser.add_argument("--cache", default="_build/.jupyter_cache")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--timeout", type=int, default=None,
                        help="seconds per cell (default: execute.timeout in --config)")
    parser.add_argument("--config", default="_config.yml")
    parser.add_argument("--times", type=Path, default=None,
                        help="JSON of each lesson's last measured seconds ('book/ch01/01-x': 16.3), "
                             "to start the longest first (default: the longest source first)")
    args = parser.parse_args(argv)
    if args.timeout is None:
        args.timeout = config_timeout(args.config)
    if args.jobs < 1:
        parser.error(f"--jobs must be an integer >= 1, got {args.jobs}")

    from jupyter_cache import get_cache
    from jupyter_cache.base import CacheBundleIn

    cache = get_cache(args.cache)
    records = {str(p.resolve()): cache.add_nb_to_project(str(p.resolve()), read_data=READER)
               for p in args.lessons}
    todo = [r.uri for r in cache.list_unexecuted(filter_pks=[r.pk for r in records.values()])]
    # longest first, so that the queues end together: by the measured times when given, else by
    # the size of the source
    if args.times:
        expected = expected_seconds(json.loads(args.times.read_text(encoding="utf-8")))
        todo.sort(key=lambda uri: -expected(os.path.relpath(uri).removesuffix(".md")))
    else:
        todo.sort(key=lambda uri: -Path(uri).stat().st_size)
    print(f"{len(records) - len(todo)} lessons cached, {len(todo)} to execute "
          f"({args.jobs} at a time)", flush=True)
    start, failed = time.perf_counter(), []
    with ProcessPoolExecutor(max_workers=min(args.jobs, max(len(todo), 1))) as pool:
        futures = [pool.submit(_execute_one, uri, args.timeout) for uri in todo]
        for future in as_completed(futures):
            uri, nb, seconds, error = future.result()
            name = os.path.relpath(uri)
            if error:
                failed.append(name)
                print(f"FAILED {name} after {seconds:.1f} s\n{error}", flush=True)
                continue
            cache.cache_notebook_bundle(CacheBundleIn(nb, uri, data={"execution_seconds": seconds}),
                                        check_validity=False, overwrite=True)
            print(f"{seconds:6.1f} s  {name}", flush=True)
    print(f"executed {len(todo) - len(failed)} lessons in {time.perf_counter() - start:.1f} s "
          f"wall time", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
