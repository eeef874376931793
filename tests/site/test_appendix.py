"""The appendix pages that paste what the lessons measured, as built and as a browser shows them.

- The claims ledger: one coloured label per claim whose class is its text, the count per verdict
  adding up to the catalogue, the table inside the article's width in Chromium, the labels
  coloured by the extension's CSS, and the evidence one click away.
- "So what rate do I pick?": every paste resolved, every figure pasted from its lesson with its
  image on disk and drawn by the browser, and no number typed on it but those the articles state.
"""

import json
import re
from pathlib import Path

import pytest

from lessons_lib import _ledger, claims

ROOT = Path(__file__).resolve().parents[2]
HTML = ROOT / "_build" / "html"
LEDGER = "book/appendix/claims-ledger"
WHICH_RATE = "book/appendix/which-rate"
LABEL = re.compile(r'<span class="verdict (verdict-[a-z-]+)">([^<]+)</span>')


def html(doc: str) -> str:
    return (HTML / f"{doc}.html").read_text(encoding="utf-8")


def counts_box(page: str) -> dict[str, int]:
    """The counts the extension wrote into the ledger's box: kind -> number."""
    box = re.search(r'<div class="ledger-counts[^"]*"[^>]*>(.*?)</div>', page, re.S)
    assert box, "no ledger-counts box on the ledger page"
    pairs = re.findall(r'<span class="verdict verdict-[a-z-]+">([^<]+)</span>'
                       r'<span class="verdict-count">(\d+)</span>', box.group(1))
    return {kind: int(n) for kind, n in pairs}


def test_the_ledger_counts_add_up_to_the_catalogue_and_match_the_labels():
    """Catches a count box left unfilled or filled before the pastes were resolved, a kind missing
    from it, and counts that disagree with the labels in the tables."""
    page = html(LEDGER)
    counts = counts_box(page)
    assert list(counts) == list(claims.MEANINGS), counts
    assert sum(counts.values()) == len(claims.catalogue()) == 63
    tables = "".join(re.findall(r'<table class="[^"]*ledger-table.*?</table>', page, re.S))
    in_tables = [kind for css, kind in LABEL.findall(tables) if css == _ledger.slug(kind)]
    assert {k: in_tables.count(k) for k in counts} == counts
    assert f"{len(claims.catalogue())} claims" in page


def test_every_label_names_its_kind_and_its_class():
    """Catches a label whose CSS class is another kind's (the colour would lie)."""
    labels = LABEL.findall(html(LEDGER))
    assert labels
    for css, kind in labels:
        assert kind in claims.MEANINGS and css == _ledger.slug(kind), (css, kind)


def test_the_ledger_evidence_is_pasted_under_each_table():
    """Catches the evidence missing from the dropdowns: each recorded claim's evidence, as its
    lesson glued it, is on the page."""
    page = re.sub(r"\s+", " ", html(LEDGER))
    for cid, lesson in claims.find_recordings(ROOT / "book").items():
        glue = (ROOT / "_build" / "jupyter_execute" / "book" / lesson).with_suffix(".glue.json")
        evidence = json.loads(glue.read_text(encoding="utf-8"))[f"claim-{cid}-evidence"]
        text = " ".join(evidence["data"]["text/plain"].split())
        escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        assert escaped in page or text in page, f"{cid}: evidence not pasted"


# The article's width, each ledger table's box and overflow, and a label's colours, in the browser.
GEOMETRY = """(() => {
    const article = document.querySelector("article.bd-article");
    const a = article.getBoundingClientRect();
    const tables = [...document.querySelectorAll("table.ledger-table")].map(t => {
        const r = t.getBoundingClientRect(), box = t.parentElement;
        return {left: r.left, right: r.right, width: r.width,
                overflow: box.scrollWidth - box.clientWidth};
    });
    const labels = [...document.querySelectorAll("table.ledger-table span.verdict")].map(s => {
        const c = getComputedStyle(s);
        return {kind: s.textContent, background: c.backgroundColor, color: c.color};
    });
    return {left: a.left, right: a.right, width: a.width, tables, labels};
})()"""


def rgb(colour: str) -> str:
    return "rgb({}, {}, {})".format(*(int(colour[i:i + 2], 16) for i in (1, 3, 5)))


@pytest.mark.parametrize("width", [1280, 900])
def test_the_ledger_table_fits_the_article_in_a_real_browser(browser, width):
    """Catches the table overflowing the page (its columns cut off or scrolled sideways) at a
    desktop and a narrow window, and labels left uncoloured (the CSS not served)."""
    browser.send("Emulation.setDeviceMetricsOverride", width=width, height=1000,
                 deviceScaleFactor=1, mobile=False)
    try:
        browser.open((HTML / f"{LEDGER}.html").as_uri())
        geometry = browser.js(GEOMETRY)
    finally:
        browser.send("Emulation.clearDeviceMetricsOverride")
    assert len(geometry["tables"]) == len({c.chapter for c in claims.catalogue().values()})
    for table in geometry["tables"]:
        assert table["overflow"] <= 0, f"a ledger table scrolls sideways at {width} px: {table}"
        assert geometry["left"] - 1 <= table["left"] and table["right"] <= geometry["right"] + 1, (
            f"a ledger table leaves the article ({geometry['left']}–{geometry['right']}): {table}")
    for label in geometry["labels"]:
        background, text = _ledger.COLOURS[label["kind"]]
        if background != "transparent":
            assert label["background"] == rgb(background), label
            assert label["color"] == rgb(text), label


def test_the_evidence_is_one_click_away(browser):
    """Catches evidence that a reader cannot open: the dropdown under chapter 1 is closed at first
    and shows the first claim's evidence after one click on its title."""
    browser.open((HTML / f"{LEDGER}.html").as_uri())
    first = next(iter(claims.find_recordings(ROOT / "book")))
    shown = """(() => {
        const box = [...document.querySelectorAll("div.admonition.dropdown")]
            .find(d => d.querySelector(".admonition-title").textContent.startsWith("Chapter 1:"));
        const dd = box && box.querySelector("dd");  // hidden: visibility hidden, no innerText
        return box && {visible: dd.innerText.trim().length > 0, text: dd.innerText};
    })()"""
    closed = browser.wait_for(f"document.querySelector('button.toggle-button') && {shown}")
    assert closed and not closed["visible"], f"no dropdown, or open at first: {closed}"
    # togglebutton has given the box an id that its click handler looks up: use it, keep it
    box_id = browser.js("""[...document.querySelectorAll("div.admonition.dropdown")]
        .find(d => d.querySelector(".admonition-title").textContent.startsWith("Chapter 1:")).id""")
    browser.click(f"#{box_id} > .admonition-title")
    opened = browser.wait_for(f"(s => s.visible && s)({shown})", timeout=5)
    assert opened, f"one click did not show the evidence of {first}"


# -- "So what rate do I pick?" -------------------------------------------------------------------
def test_the_checklist_pastes_everything_it_states():
    """Catches a paste left unresolved, a verdict shown without its label (or with another kind's),
    a figure whose image is not on disk, and a figure without its caption."""
    page = html(WHICH_RATE)
    source = (ROOT / f"{WHICH_RATE}.md").read_text(encoding="utf-8")
    verdicts = re.findall(r"\{glue:text\}`([^`]*)::claim-[A-Z]{2}-\d+:s`", source)
    labels = LABEL.findall(page)
    assert len(labels) == len(verdicts) > 5
    assert all(css == _ledger.slug(kind) for css, kind in labels)
    assert source.count("{glue:text}") - len(verdicts) == page.count('class="pasted-text"') > 5
    figures = re.findall(r"```\{glue:figure\} (\S+)::(\S+)", source)
    assert len(figures) >= 4
    shown = [re.search(r'<img[^>]+src="([^"]+)".*?<figcaption>(.*?)</figcaption>', f, re.S).groups()
             for f in re.findall(r"<figure[^>]*>.*?</figure>", page, re.S)]
    assert len(shown) == len(figures), f"{len(figures)} figures pasted, {len(shown)} shown"
    for src, caption in shown:
        assert (HTML / "book" / "appendix" / src).resolve().is_file(), f"no image at {src}"
        assert re.sub(r"<[^>]+>", "", caption).strip(), f"{src} has an empty caption"


def test_the_checklist_types_no_number_but_the_articles():
    """Catches a measured number typed on the checklist: outside the pastes, every number on the
    page (settings and chapter numbers aside) is one the source articles state, as the claims
    catalogue quotes them."""
    source = (ROOT / f"{WHICH_RATE}.md").read_text(encoding="utf-8")
    prose = re.sub(r"\{[^}\n]*\}`[^`]*`|```\{glue:figure\}.*|:[\w-]+:.*|\([\w-]+\)=", " ", source)
    prose = re.sub(r"\b(chapter|claim|[A-Z]{2}-)\s*\d+", " ", prose)  # chapter 6, claim LR-8
    quoted = " ".join(c.text for c in claims.catalogue().values())
    for number in re.findall(r"(?<![\w.])\d+(?:\.\d+)?", prose):
        assert re.search(rf"(?<![\w.]){re.escape(number)}(?![\w]|\.\d)", quoted), (
            f"{number} is typed on the checklist but quoted in no claim: paste it from its lesson")


def test_the_checklist_figures_load_in_a_real_browser(browser):
    """Catches a pasted figure that the browser cannot draw (a broken or empty image)."""
    browser.open((HTML / f"{WHICH_RATE}.html").as_uri())
    images = browser.wait_for("""(() => {
        const imgs = [...document.querySelectorAll("article.bd-article figure img")];
        return imgs.length && imgs.every(i => i.complete) &&
            imgs.map(i => ({src: i.getAttribute("src"), w: i.naturalWidth, h: i.naturalHeight}));
    })()""")
    assert images and len(images) >= 4, f"the figures did not load: {images}"
    for image in images:
        assert image["w"] > 100 and image["h"] > 50, f"an empty image: {image}"
