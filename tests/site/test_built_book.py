"""Checks on the built HTML book (run by `make test` after `jupyter-book build -W`).

The build itself already failed on any warning; these tests check what a reader gets: every page
of the table of contents, the claims ledger filled in by the executed lessons, captioned figures,
launch buttons, and the pages as a real browser renders them: headless Chromium, driven over
the DevTools protocol by the `browser` fixture (conftest.py), reads each article and plays the
animations.
"""

import json
import re
import time
from pathlib import Path

import pytest
import yaml

from lessons_lib import _ledger, claims

ROOT = Path(__file__).resolve().parents[2]
HTML = ROOT / "_build" / "html"
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))


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


def ledger_labels(html: str) -> dict[str, list[tuple[str, str]] | None]:
    """The verdict labels (CSS class, text) in each claim's row of a built ledger (None: no row)."""
    rows = {}
    for cid in claims.catalogue():
        row = re.search(rf"<tr[^>]*>\s*<td[^>]*><p>{cid}</p></td>(.*?)</tr>", html, re.S)
        rows[cid] = row and re.findall(r'<span class="verdict (verdict-[a-z-]+)">([^<]+)</span>',
                                       row.group(1))
    return rows


def computed_kind(cid: str, lesson: str) -> str:
    """The kind of the verdict that ``lesson`` computed for ``cid``, read from its executed glue."""
    glue = (HTML.parent / "jupyter_execute" / "book" / lesson).with_suffix(".glue.json")
    computed = json.loads(glue.read_text(encoding="utf-8"))[f"claim-{cid}"]
    return _ledger.verdict_kind(computed["data"]["text/plain"])[0]


def test_ledger_shows_the_computed_verdict_for_every_recorded_claim():
    """Catches a ledger row without its claim, a verdict not pasted (or pasted from another claim),
    and a label that is not the kind of the verdict the lesson computed (read back from the
    lesson's executed glue). The page's own checks (counts, width, colours): test_appendix.py."""
    html = page("book/appendix/claims-ledger")
    where = claims.find_recordings(ROOT / "book")
    for cid, labels in ledger_labels(html).items():
        assert labels is not None, f"{cid} has no row in the ledger"
        assert len(labels) == 1, f"{cid}: one verdict label expected, found {labels}"
        [(css, kind)] = labels
        assert css == _ledger.slug(kind), f"{cid}: label {kind!r} has class {css}"
        if cid in where:
            assert kind == computed_kind(cid, where[cid]), cid
            assert f"claim-{cid}-evidence" not in html  # pasted, not left as a pending key
        else:
            assert kind == claims.NOT_COVERED, f"{cid} is recorded by no lesson but reads {kind!r}"


@pytest.mark.parametrize("doc", LESSONS)
def test_every_lesson_figure_has_a_caption(doc):
    html = page(doc)
    images = re.findall(r'<img[^>]+src="(?!data:)[^"]*_images/[^"]+\.png"', html)
    captioned = re.findall(r"<figure[^>]*>.*?<figcaption>.*?</figcaption>", html, re.S)
    assert images, f"{doc} has no figure"
    assert len(captioned) >= len(images), f"{doc}: {len(images)} images but {len(captioned)} captions"


@pytest.mark.parametrize("doc", LESSONS)
def test_every_lesson_has_launch_and_download_buttons(doc):
    """Catches: a missing button, or buttons that point elsewhere than _config.yml's repository."""
    html = page(doc).replace("&amp;", "&")
    url, branch = CONFIG["repository"]["url"].rstrip("/"), CONFIG["repository"]["branch"]
    binderhub, slug = CONFIG["launch_buttons"]["binderhub_url"], url.split("github.com/", 1)[1]
    binder = f"{binderhub}/v2/gh/{slug}/{branch}?urlpath=lab/tree/{doc}.md"
    assert binder in html, f"no Binder button to {binder}"
    assert f'href="{url}"' in html, f"no repository button to {url}"
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


def title_and_prose_words(doc: str) -> tuple[str, set[str]]:
    """The page's title (its first `# ` heading) and the distinct words of its prose."""
    text = (ROOT / f"{doc}.md").read_text(encoding="utf-8")
    title = re.search(r"^# (.+)$", text, re.M).group(1).strip()
    for pattern in (r"(?s)\A---\n.*?\n---\n",               # front matter
                    r"(?s)```.*?```",                         # code cells, fenced directives
                    r"(?s)\$\$.*?\$\$", r"\$[^$\n]+\$",       # math: shown as symbols
                    r"(?s)<!--.*?-->",                        # comments
                    r"\{[^}\n]*\}`[^`]*`",                    # roles: {glue:text}`x`, {cite}`k`
                    r"(?m)^\s*:{3,}.*$", r"(?m)^\s*:[\w-]+:.*$",  # directive fences, options
                    r"\]\([^)]*\)"):                          # link targets
        text = re.sub(pattern, " ", text)
    return title, words(text)


def words(text: str) -> set[str]:
    return {w.lower() for w in re.findall(r"[A-Za-z]{4,}", text)}


# The article as a reader sees it: the theme's <article class="bd-article">, its text and its box.
ARTICLE = """(() => {
    const article = document.querySelector("article.bd-article");
    if (!article) return null;
    const box = article.getBoundingClientRect();
    return {text: article.innerText, width: box.width, height: box.height,
            shown: getComputedStyle(article).visibility !== "hidden"};
})()"""


@pytest.mark.parametrize("doc", toc_files())
def test_pages_render_in_a_real_browser(doc, browser):
    """Catches: a page whose article is missing, empty, hidden or not its own; MathJax not run."""
    browser.open((HTML / f"{doc}.html").as_uri())
    article = browser.js(ARTICLE)
    assert article, "no <article class='bd-article'>: the theme's layout did not load"
    box_ok = article["width"] > 300 and article["height"] > 600 and article["shown"]
    assert box_ok, f"the article is not shown: {article}"
    title, prose = title_and_prose_words(doc)
    assert title.split(":")[0] in " ".join(article["text"].split()), f"no title {title!r}"
    # solutions in closed dropdowns are not in innerText: a few words are missing on every lesson
    missing = prose - words(article["text"])
    assert len(missing) <= 0.2 * len(prose), (
        f"{len(missing)} of the {len(prose)} words of {doc}.md not shown: {sorted(missing)[:20]}")
    if "MathJax" in page(doc):
        typeset = browser.wait_for("document.querySelector('mjx-container') !== null")
        assert typeset, "MathJax did not typeset"
    shots = HTML.parent / "screenshots"
    shots.mkdir(exist_ok=True)
    png = shots / (doc.replace("/", "_") + ".png")
    browser.screenshot(png)
    assert png.exists() and png.stat().st_size > 20_000, "the screenshot is empty"


def source(doc: str) -> str:
    return (ROOT / f"{doc}.md").read_text(encoding="utf-8")


# The lessons whose source makes a jshtml animation; each must come out as a working player.
ANIMATED = [doc for doc in LESSONS if ".to_jshtml()" in source(doc)]

# For each player on the page: a fingerprint (FNV-1a) of the image it shows, and its slider.
SHOWN = """[...document.querySelectorAll("div.animation")].map(player => {
    const src = player.querySelector("img").getAttribute("src") || "";
    let h = 0x811c9dc5;
    for (let i = 0; i < src.length; i++) h = Math.imul(h ^ src.charCodeAt(i), 0x01000193) >>> 0;
    return {image: src.startsWith("data:image/") ? h : null,
            slider: Number(player.querySelector("input.anim-slider").value)};
})"""


def test_some_lesson_has_an_animation():
    """Catches: the animation test below passing because it finds no lesson to check."""
    assert ANIMATED, "no lesson calls .to_jshtml(); the animation test would check nothing"


@pytest.mark.parametrize("doc", ANIMATED)
def test_the_animation_plays_in_the_browser(doc, browser):
    """Catches: an animation a reader cannot play (static markup, script not run, frames alike)."""
    browser.open((HTML / f"{doc}.html").as_uri())
    players = source(doc).count(".to_jshtml()")
    start = browser.wait_for(f"(() => {{ const s = {SHOWN}; return s.length >= {players}"
                             " && s.every(p => p.image !== null) && s; })()")
    assert start, f"{players} animation(s) expected; the page shows {browser.js(SHOWN)}"
    for i, first in enumerate(start):
        assert first["slider"] == 0, f"player {i} did not start on its first frame: {first}"
        mark = f"anim-under-test-{i}"  # an id, so that a CSS selector finds this player's buttons
        browser.js(f"document.querySelectorAll('div.animation')[{i}].id = '{mark}'")
        # "Next frame": the slider moves to 1 and the image changes
        browser.click(f"#{mark} button[title='Next frame']")
        stepped = browser.wait_for(f"(p => p.slider === 1 && p)({SHOWN}[{i}])", timeout=5)
        assert stepped and stepped["image"] != first["image"], f"'Next frame' did nothing: {stepped}"
        # "Play": within 10 s the player shows at least two more, different images
        browser.click(f"#{mark} button[title='Play']")
        seen = {stepped["image"]}
        deadline = time.monotonic() + 10
        while len(seen) < 3 and time.monotonic() < deadline:
            seen.add(browser.js(f"{SHOWN}[{i}].image"))
            time.sleep(0.05)
        browser.click(f"#{mark} button[title='Pause']")
        assert len(seen) >= 3, f"'Play' showed {len(seen) - 1} new image(s) in 10 s"
