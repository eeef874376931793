"""The Japanese edition (`make html-ja`, `make pot`): complete catalogues, every page in both
languages, each page linked to itself in the other edition, verdicts in Japanese, and Japanese
text that a browser can render.

The Japanese build itself already failed on any warning (``-W``). A computed text (verdict,
evidence, phrase) without a translation in ``locales/ja/LC_MESSAGES/computed.po`` is not a
warning: it is shown in English, and the test of the computed catalogue below decides whether that
is a stale catalogue (an error) or another outcome of an unchanged lesson (reported).
"""

import json
import re
import warnings
from pathlib import Path

import pytest
import yaml
from babel.messages.pofile import read_po

from lessons_lib import _i18n, _i18n_notebooks, _ledger, claims

from test_built_book import HTML, LESSONS, ROOT, computed_kind, ledger_labels, toc_files

JA = HTML / "ja"
POT = ROOT / "_build" / "pot" / "_build" / "gettext"  # `make pot`
PO = ROOT / "locales" / "ja" / "LC_MESSAGES"
TEMPLATES = sorted(POT.rglob("*.pot"))
PAGE_TEMPLATES = [p for p in TEMPLATES if p.stem != _i18n.COMPUTED]


def read(path: Path):
    with open(path, "rb") as f:
        return read_po(f)


def test_every_page_has_a_catalogue_template():
    """`make pot` extracted one template per page of the book, plus the computed text's."""
    names = {p.relative_to(POT).with_suffix("").as_posix() for p in TEMPLATES}
    assert set(toc_files()) <= names, sorted(set(toc_files()) - names)
    assert _i18n.COMPUTED in names


@pytest.mark.parametrize("pot", PAGE_TEMPLATES, ids=lambda p: p.relative_to(POT).as_posix())
def test_every_message_is_translated_and_none_is_fuzzy(pot):
    """The check of `msgfmt --statistics` (0 untranslated, 0 fuzzy), against a fresh extraction
    of the book, so that a catalogue that missed a changed lesson (`make po` not run) fails too."""
    po = PO / pot.relative_to(POT).with_suffix(".po")
    assert po.exists(), f"no catalogue {po.relative_to(ROOT)}: run `make po` and translate it"
    translations = {m.id: m for m in read(po) if m.id}
    untranslated, fuzzy = [], []
    for message in read(pot):
        if not message.id:
            continue
        found = translations.get(message.id)
        if found is None or not found.string:
            untranslated.append(message.id)
        elif found.fuzzy:
            fuzzy.append(message.id)
    assert not untranslated, (f"{len(untranslated)} untranslated in {po.name} (run `make po`, then "
                              f"translate): {[m[:70] for m in untranslated[:5]]}")
    assert not fuzzy, f"{len(fuzzy)} fuzzy in {po.name}: {[m[:70] for m in fuzzy[:5]]}"


def test_every_computed_text_is_translated_or_another_outcome_of_an_unchanged_lesson():
    """The computed catalogue is complete (0 untranslated, 0 fuzzy), and so is its coverage of what
    the lessons computed in this build, with one allowance. A text it lacks is an error when its
    lesson's code changed since `make po` (``computed-lessons.json``), when it is a claim's
    statement, or when nothing from the same glue was ever translated; it is only reported when
    an unchanged lesson computed another outcome here than on the translator's machine (a timing,
    or a number rounded the other way on another processor, picking another phrase): the Japanese
    page then shows that sentence in English."""
    catalogue = [m for m in read(PO / f"{_i18n.COMPUTED}.po") if m.id]
    incomplete = [m.id for m in catalogue if not m.string or m.fuzzy]
    assert not incomplete, f"{len(incomplete)} untranslated or fuzzy in computed.po: {incomplete[:5]}"
    translated = {m.id for m in catalogue}
    covered = set().union(*(_i18n.sources(m) for m in catalogue))
    recorded = json.loads((PO / _i18n.CODES).read_text(encoding="utf-8"))
    codes = _i18n.lesson_codes()
    errors, other_outcomes = [], []
    for message in read(POT / f"{_i18n.COMPUTED}.pot"):
        if not message.id or message.id in translated:
            continue
        for source in sorted(_i18n.sources(message)):
            page = source.split("::")[0]
            if source.startswith("claim "):
                errors.append(f"{source}: its statement is not translated")
            elif recorded.get(page) != codes.get(page):
                errors.append(f"{page} changed since `make po`: {message.id[:70]!r}")
            elif source not in covered:
                errors.append(f"{source} is new: {message.id[:70]!r}")
            else:
                other_outcomes.append(f"{source}: {message.id[:100]!r}")
    assert not errors, "run `make po` and translate:\n" + "\n".join(errors)
    if other_outcomes:
        warnings.warn(f"{len(other_outcomes)} computed texts are another outcome than the "
                      f"translator's and are shown in English:\n" + "\n".join(other_outcomes))


def test_the_recorded_lesson_codes_name_every_lesson():
    assert set(json.loads((PO / _i18n.CODES).read_text(encoding="utf-8"))) == set(_i18n.lesson_codes())


MARKUP = re.compile(r"\{[a-z:]+\}`[^`]*`|\(\w[\w-]*\)=|`[^`]+`|\$[^$]+\$")


def _markup(text: str) -> list[str]:
    return sorted(MARKUP.findall(text.replace("\\n", " ")))


@pytest.mark.parametrize("po", sorted(PO.rglob("*.po")), ids=lambda p: p.relative_to(PO).as_posix())
def test_translations_keep_the_markup_and_the_slots(po):
    """A translation pastes the same glued numbers, cross-references, code and mathematics as the
    English (a lost ``{glue:text}`` would drop a number), and fills the same slots."""
    for message in read(po):
        if not message.id or not message.string:
            continue
        if po.stem == _i18n.COMPUTED:
            slots = sorted(_i18n.SLOT.findall(message.id))
            assert sorted(_i18n.SLOT.findall(message.string)) == slots, message.id[:80]
        else:
            glued = sorted(re.findall(r"\{glue[a-z:]*\}`[^`]*`", message.id))
            assert sorted(re.findall(r"\{glue[a-z:]*\}`[^`]*`", message.string)) == glued, (
                f"{po.name}: the translation of {message.id[:80]!r} pastes other glue")
            roles = sorted(re.findall(r"\{(?:numref|ref|doc|eq|cite:\w+|term)\}`[^`]*`",
                                      message.id))
            got = sorted(re.findall(r"\{(?:numref|ref|doc|eq|cite:\w+|term)\}`[^`]*`",
                                    message.string))
            assert len(got) == len(roles), f"{po.name}: cross-references of {message.id[:80]!r}"


@pytest.mark.parametrize("doc", toc_files())
def test_every_page_is_in_both_editions_and_links_to_the_other(doc):
    english, japanese = HTML / f"{doc}.html", JA / f"{doc}.html"
    assert japanese.exists(), f"{doc} is missing from the Japanese edition (_build/html/ja)"
    en, ja = english.read_text(encoding="utf-8"), japanese.read_text(encoding="utf-8")
    assert re.search(r'<html[^>]* lang="ja"', ja), "the Japanese page does not declare lang=ja"
    assert re.search(r'<html[^>]* lang="en"', en)
    for html, page, lang in ((en, english, "ja"), (ja, japanese, "en")):
        link = re.search(rf'<p class="language-switch"><a href="([^"]+)" hreflang="{lang}"', html)
        assert link, f"{page.relative_to(HTML)}: no link to the {lang} edition"
        target = (page.parent / link.group(1)).resolve()
        assert target == (japanese if lang == "ja" else english).resolve(), link.group(1)
    assert "i18n.css" in ja


def letters(text: str) -> tuple[int, int]:
    """How many kana and kanji, and how many Latin letters, ``text`` has."""
    return (len(re.findall(r"[\u3040-\u30ff\u4e00-\u9fff]", text)),
            len(re.findall(r"[A-Za-z]", text)))


def article_text(html: str) -> str:
    """The article's prose: no code, outputs, mathematics or bibliography."""
    body = html.split('<article class="bd-article"', 1)[-1].split("</article>", 1)[0]
    body = re.sub(r"<(pre|script|style|math|mjx-container)[^>]*>.*?</\1>", " ", body, flags=re.S)
    body = re.sub(r"\\\(.*?\\\)|\\\[.*?\\\]|\$\$.*?\$\$", " ", body, flags=re.S)
    return re.sub(r"<[^>]+>", " ", body)


@pytest.mark.parametrize("doc", [d for d in toc_files() if not d.endswith("references")])
def test_japanese_pages_read_in_japanese(doc):
    """No paragraph left in English: most of the letters of the prose are kana or kanji (code,
    outputs and mathematics excluded; names like SGD or Adam stay in Latin letters)."""
    japanese, latin = letters(article_text((JA / f"{doc}.html").read_text(encoding="utf-8")))
    assert japanese > latin, f"{doc}: {japanese} kana/kanji, {latin} Latin letters"


def test_japanese_ledger_shows_each_verdict_in_japanese():
    """Each row's label names, in Japanese, the kind of the verdict the lesson computed."""
    where = claims.find_recordings(ROOT / "book")
    html = (JA / "book" / "appendix" / "claims-ledger.html").read_text(encoding="utf-8")
    for cid, labels in ledger_labels(html).items():
        kind = computed_kind(cid, where[cid])
        assert labels == [(_ledger.slug(kind), _i18n.KINDS_JA[kind])], f"{cid}: {labels}"
    assert f"全 {len(claims.catalogue())} 件の主張" in html


def test_japanese_claim_boxes_keep_the_lessons_numbers():
    """A claim box of the Japanese edition is built from the same record as the English one: the
    numbers of its evidence, every one, around Japanese words."""
    doc = "book/ch07/01-pretrain-and-fine-tune"
    boxes = {}
    for lang, root, start in (("en", HTML, "ClaimTR-4(demo)—"), ("ja", JA, "主張TR-4（実演）—")):
        html = (root / f"{doc}.html").read_text(encoding="utf-8")
        text = re.sub(r"\s+", "", article_text(html))  # the tags leave spaces between words
        assert start in text, f"no claim box of TR-4 in the {lang} edition"
        boxes[lang] = text[text.index(start):][:3000]
    kind = computed_kind("TR-4", claims.find_recordings(ROOT / "book")["TR-4"])
    assert f"判定：{_i18n.KINDS_JA[kind]}" in boxes["ja"]
    evidence = boxes["en"].split("Verdict:", 1)[1]  # the verdict's own numbers, then the evidence
    numbers = re.findall(r"[−+-]?\d+(?:\.\d+)?", evidence[:evidence.index("CKAclean")])
    assert len(numbers) > 20
    shown = re.findall(r"[−+-]?\d+(?:\.\d+)?", boxes["ja"])
    for number in set(numbers):
        assert shown.count(number) >= numbers.count(number), number


RENDERS_JAPANESE = """(() => {
    const draw = (text) => {
        const canvas = document.createElement("canvas");
        canvas.width = 64; canvas.height = 64;
        const context = canvas.getContext("2d");
        context.font = "48px " + getComputedStyle(document.body).fontFamily;
        context.fillText(text, 4, 52);
        return canvas.toDataURL();
    };
    return {lang: document.documentElement.lang,
            family: getComputedStyle(document.body).fontFamily,
            kanji: draw("\u5b66"), other_kanji: draw("\u7387"), missing: draw("\ue000")};
})()"""


@pytest.mark.parametrize("doc", toc_files())
def test_japanese_pages_render_in_a_real_browser(doc, browser):
    """The page's language is ja, its font list starts with a CJK font, and that font is there:
    two kanji draw as two different glyphs, not as the box of a character no font has."""
    browser.open((JA / f"{doc}.html").as_uri())
    page = browser.js(RENDERS_JAPANESE)
    assert page["lang"] == "ja"
    assert "CJK JP" in page["family"].split(",")[0], page["family"]
    assert page["kanji"] != page["other_kanji"] and page["kanji"] != page["missing"], (
        "kanji render as empty boxes: no Japanese font (make browser installs fonts-noto-cjk)")
    shots = HTML.parent / "screenshots" / "ja"
    shots.mkdir(parents=True, exist_ok=True)
    png = shots / (doc.replace("/", "_") + ".png")
    browser.screenshot(png)
    assert png.exists() and png.stat().st_size > 20_000, "the screenshot is empty"


def test_the_japanese_sidebar_names_the_parts_in_japanese():
    """The parts' captions come from _toc.yml through sphinx-external-toc, after Sphinx has
    translated the page; `_i18n.translate_toc_captions` translates them from the root page's
    catalogue."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))
    root = toc["root"]
    translated = {m.id: m.string for m in read(PO / f"{root}.po") if m.id}
    html = (JA / f"{root}.html").read_text(encoding="utf-8")
    for part in toc["parts"]:
        caption = part["caption"]
        assert translated.get(caption), f"no translation of the part {caption!r}"
        assert f'<p aria-level="2" class="caption" role="heading"><span class="caption-text">{translated[caption]}</span>' in html, caption


def _prose_is_japanese(markdown: str) -> tuple[int, int]:
    """Kana and kanji, Latin letters, in the prose of Markdown (no code, math, roles or options)."""
    return letters(re.sub(r"```.*?```|\$\$.*?\$\$|\$[^$\n]*\$|\{[\w:-]+\}`[^`]*`|`[^`]*`|^:[\w-]+:.*$",
                          " ", markdown, flags=re.S | re.M))


@pytest.mark.parametrize("doc", toc_files())
def test_the_japanese_download_is_the_page_in_japanese(doc):
    """The file behind a Japanese page's download button (``_sources/<page>.md``) is the page with
    its prose translated from the page's catalogue: no block of prose left in English, and every
    translation of the catalogue in it."""
    downloaded = (JA / "_sources" / f"{doc}.md").read_text(encoding="utf-8")
    text, missing = _i18n_notebooks.translate_page(ROOT / f"{doc}.md", PO / f"{doc}.po")
    assert downloaded == text, "the download is not the page translated from its catalogue"
    assert missing == [], f"{doc}: prose without a translation: {missing[:3]}"
    escaped = downloaded.replace("\\|", "|")  # a table cell escapes its bars
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))
    captions = {part["caption"] for part in toc["parts"]}  # the sidebar's, not the page's
    for message in read(PO / f"{doc}.po"):
        if message.id and message.id not in captions and message.string != message.id:
            assert message.string in downloaded or message.string in escaped, f"{doc}: not in the download: {message.string[:80]!r}"
    japanese, latin = _prose_is_japanese(downloaded)
    assert japanese > latin, f"{doc}: {japanese} kana/kanji, {latin} Latin letters"


@pytest.mark.parametrize("doc", LESSONS)
def test_the_japanese_notebook_runs_the_english_lessons_code(doc):
    """The ``.ipynb`` a Japanese reader downloads has the English lesson's cells, code cell for code
    cell the same source and tags, with the prose in Japanese."""
    import jupytext

    english = jupytext.read(ROOT / f"{doc}.md")
    japanese = json.loads((JA / "_sources" / f"{doc}.ipynb").read_text(encoding="utf-8"))
    cells = japanese["cells"]
    assert [c["cell_type"] for c in cells] == [c.cell_type for c in english.cells]
    for en, ja in zip(english.cells, cells):
        if en.cell_type == "code":
            assert "".join(ja["source"]) == en.source
            assert ja["metadata"].get("tags") == en.metadata.get("tags")
    prose = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
    japanese_letters, latin = _prose_is_japanese(prose)
    assert japanese_letters > latin, f"{doc}: {japanese_letters} kana/kanji, {latin} Latin letters"
