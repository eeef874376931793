"""Checks on the built HTML book (run by `make test` after `jupyter-book build -W`).

The build itself already failed on any warning; these tests check what a reader gets: every page
of the table of contents, the claims ledger filled in by the executed lessons, captioned figures,
launch buttons, and the pages as a real browser (headless Chromium) renders them.
"""

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from lessons_lib import claims

ROOT = Path(__file__).resolve().parents[2]
HTML = ROOT / "_build" / "html"


def toc_files():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))
    files = [toc["root"]]
    for part in toc.get("parts", []):
        files += [chapter["file"] for chapter in part["chapters"]]
    return files


LESSONS = [f for f in toc_files() if (ROOT / f"{f}.md").read_text(encoding="utf-8").find("kernelspec:") >= 0]


def page(doc: str) -> str:
    return (HTML / f"{doc}.html").read_text(encoding="utf-8")


@pytest.mark.parametrize("doc", toc_files())
def test_every_toc_page_was_built(doc):
    assert (ROOT / f"{doc}.md").exists(), f"{doc}.md is listed in _toc.yml but missing"
    assert (HTML / f"{doc}.html").exists(), f"{doc} is missing from _build/html"


def test_ledger_shows_the_computed_verdict_for_every_recorded_claim():
    html = page("book/appendix/claims-ledger")
    where = claims.find_recordings(ROOT / "book")
    verdict_pattern = r"(holds|holds only when [^<]+|does not hold here|explained)"
    for cid in claims.catalogue():
        row = re.search(rf"<tr[^>]*>\s*<td[^>]*><p>{cid}</p></td>(.*?)</tr>", html, re.S)
        assert row, f"{cid} has no row in the ledger"
        pasted = re.findall(r'<span class="pasted-text">(.*?)</span>', row.group(1), re.S)
        if cid in where:
            assert len(pasted) == 2, f"{cid}: verdict and evidence were not pasted from {where[cid]}"
            assert re.fullmatch(verdict_pattern, pasted[0]), f"{cid}: unexpected verdict {pasted[0]!r}"
            assert pasted[1].strip(), f"{cid}: empty evidence"
        else:
            assert "not yet covered" in row.group(1)


@pytest.mark.parametrize("doc", LESSONS)
def test_every_lesson_figure_has_a_caption(doc):
    html = page(doc)
    images = re.findall(r'<img[^>]+src="(?!data:)[^"]*_images/[^"]+\.png"', html)
    captioned = re.findall(r"<figure[^>]*>.*?<figcaption>.*?</figcaption>", html, re.S)
    assert images, f"{doc} has no figure"
    assert len(captioned) >= len(images), f"{doc}: {len(images)} images but {len(captioned)} captions"


@pytest.mark.parametrize("doc", LESSONS)
def test_every_lesson_has_launch_and_download_buttons(doc):
    html = page(doc)
    assert "mybinder.org/v2/gh/" in html and f"urlpath=lab/tree/{doc}.md" in html
    name = doc.rsplit("/", 1)[-1]
    assert f"_sources/{doc}.ipynb" in html or f"{name}.ipynb" in html, "no .ipynb download button"
    assert (HTML / "_sources" / f"{doc}.ipynb").exists(), "the executed .ipynb was not published"


@pytest.mark.parametrize("doc", LESSONS)
def test_lesson_starts_with_the_setup_cell_and_ends_with_exercises(doc):
    text = (ROOT / f"{doc}.md").read_text(encoding="utf-8")
    first_code = text.split("```{code-cell} ipython3\n", 1)[1].split("```", 1)[0]
    assert first_code.strip() == "from lessons_lib import setup\n\nsetup(seed=0)", first_code
    assert "## What to remember" in text and "## Exercises" in text
    assert "{solution}" in text or "{solution-start}" in text


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    raise AssertionError("no Chromium found: `make test` installs the Debian package chromium")


def render(url: str, *extra: str) -> subprocess.CompletedProcess:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--virtual-time-budget=8000", f"--user-data-dir={HTML.parent / '.chromium'}"]
    return subprocess.run([chromium(), *flags, *extra, url], capture_output=True, text=True,
                          timeout=120)


@pytest.mark.parametrize("doc", LESSONS[:1] + ["book/appendix/claims-ledger"])
def test_pages_render_in_a_real_browser(doc):
    result = render((HTML / f"{doc}.html").as_uri(), "--dump-dom")
    dom = result.stdout
    assert result.returncode == 0, result.stderr[-2000:]
    assert "<mjx-container" in dom or "MathJax" not in page(doc), "MathJax did not typeset"
    assert 'class="bd-article' in dom or "bd-content" in dom, "the theme's layout did not load"
    shots = HTML.parent / "screenshots"
    shots.mkdir(exist_ok=True)
    png = shots / (doc.replace("/", "_") + ".png")
    render((HTML / f"{doc}.html").as_uri(), f"--screenshot={png}", "--window-size=1280,2400")
    assert png.exists() and png.stat().st_size > 20_000, "the screenshot is empty"


def test_the_animation_is_interactive_in_the_browser():
    dom = render((HTML / f"{LESSONS[0]}.html").as_uri(), "--dump-dom").stdout
    assert re.search(r'class="anim-buttons"', dom), "the jshtml animation's controls are missing"
