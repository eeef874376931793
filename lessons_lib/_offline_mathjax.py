"""Sphinx extension: serve MathJax 3 from the built book instead of a CDN.

The HTML then shows its formulas with no internet connection (a laptop offline, or the test
machine that opens the built pages in headless Chromium). MathJax 3.2.2 comes from the pinned
``django-static-mathjax`` wheel (Apache-2.0, no dependencies). ``_config.yml`` lists this module
under ``sphinx.extra_extensions``; it sets ``mathjax_path`` to the local copy and, after the
build, copies the combined TeX + MathML component and the files it loads on demand (the fonts,
TeX extensions and the menu) into ``_static/mathjax``.
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

ENTRY = "tex-mml-chtml.js"
ON_DEMAND = ("output", "input", "ui", "a11y", "adaptors")


def mathjax_es5() -> Path:
    """The folder of MathJax's ready-to-serve (``es5``) files inside the installed wheel."""
    spec = importlib.util.find_spec("mathjax")
    folder = Path(spec.origin).parent / "static" / "mathjax" / "es5" if spec and spec.origin else None
    if folder is None or not (folder / ENTRY).is_file():
        raise RuntimeError("MathJax 3 not found: install django-static-mathjax (requirements.txt)")
    return folder


def _copy(app, exception) -> None:
    if exception is not None or app.builder.format != "html":
        return
    source, target = mathjax_es5(), Path(app.outdir) / "_static" / "mathjax"
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source / ENTRY, target / ENTRY)
    for name in ON_DEMAND:
        if (source / name).is_dir():
            shutil.copytree(source / name, target / name, dirs_exist_ok=True)


def setup(app):
    mathjax_es5()  # fail at once, with the fix, if the wheel is missing
    app.config.mathjax_path = f"mathjax/{ENTRY}"
    app.connect("build-finished", _copy)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
