"""The Japanese edition: one book, two languages, the same executed lessons.

The pages are translated the way Sphinx projects do it: ``make po`` extracts every message of the
built book (the ``gettext`` builder) and merges it into ``locales/ja/LC_MESSAGES/book/**.po``; a
build with ``language: ja`` reads those catalogues. Two things a page catalogue cannot hold are
handled here, in a Sphinx extension (``_config.yml`` lists it):

1. **Glued numbers inside translated paragraphs.** Sphinx parses each translated message on its
   own, outside the notebook it came from, where myst-nb's glue roles find no data. Every local
   glue reference of a translated fragment is rewritten to name the page
   (``{glue:text}`01-the-step.md::best_lr:.2g```), which myst-nb resolves from the page's saved
   glue data. Both editions paste the numbers of the same executed notebooks.
2. **Text the lessons compute.** A lesson glues words as well as numbers: verdicts and their
   conditions, evidence sentences (``claims.record``), phrases chosen by an outcome
   (``*_words``), and it displays a claim box. Their Japanese lives in one more catalogue,
   ``locales/ja/LC_MESSAGES/computed.po``, whose messages are *templates*: each number of the
   English text replaced by a numbered slot ``⟨0⟩, ⟨1⟩, …``. In the Japanese build every pasted
   text and every claim box is looked up by its template and the lesson's own numbers are put
   back into the translated template's slots, so a number can change without the translation
   going stale. In every build the claim boxes are marked untranslatable, so that their numbers
   never reach the page catalogues.

   A sentence the catalogue does not translate is shown in English and listed at the end of the
   build (not a warning: the build stays green). That happens for two reasons, which the site tests
   tell apart with :func:`lesson_codes`: a lesson whose code changed since ``make po`` (the tests
   fail: run ``make po`` and translate), or an outcome this machine computed and the translator's
   did not (a timing, or a number rounded the other way on another processor, picked another
   phrase); the lesson is unchanged, so this is allowed when its text has a translation of some
   outcome, and reported.
3. **The files a reader downloads.** The ``.md`` and ``.ipynb`` behind a Japanese page's download
   button are the lesson with its prose translated from the same catalogue
   (:mod:`lessons_lib._i18n_notebooks`), so a Japanese reader also runs the lesson in Japanese.

Verdicts are translated by kind (:data:`KINDS_JA`, the labels of the claims ledger too) followed
by the translated condition or interval.

Command line (``make po`` and ``make html-ja`` call it):

- ``python -m lessons_lib._i18n pot OUT.pot``: the computed text's template, from the executed
  lessons (``_build/jupyter_execute``) and the claims catalogue;
- ``python -m lessons_lib._i18n merge POT_DIR PO_DIR``: the catalogues updated from the templates
  (``msgmerge``'s rules, with Babel, so that no GNU gettext is needed);
- ``python -m lessons_lib._i18n config OUT.yml [LANGUAGE]``: the ``_config.yml`` of a build
  beside the main one (the Japanese edition; ``en`` for the message extraction), which reads the
  main build's execution cache.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import sys
from ast import literal_eval
from pathlib import Path

from lessons_lib.claims import MEANINGS, NOT_SHOWN, catalogue

ROOT = Path(__file__).resolve().parent.parent
LOCALES = ROOT / "locales"
COMPUTED = "computed"  # the computed text's catalogue: locales/<lang>/LC_MESSAGES/computed.po

#: A number as the lessons print it: 12, 0.05, 1,626, 1e-3, -0.4, +32.9, −0.5. A sign counts only
#: after a space or an opening bracket (so that "TR-5" keeps its hyphen), and digits glued to a
#: letter (L2, ch07) are not numbers.
NUMBER = re.compile(r"(?:(?<=^)|(?<=[\s(\[{:=,;/×]))[−+-]?\d+(?:[.,]\d+)*(?:e[−+-]?\d+)?"
                    r"|(?<![\w.−+-])\d+(?:[.,]\d+)*(?:e[−+-]?\d+)?")
SLOT = re.compile(r"⟨(\d+)⟩")

#: The verdict kinds as the Japanese edition names them (the ledger's labels, the claim boxes).
KINDS_JA = {
    "holds": "成り立つ",
    "holds only when": "条件付きで成り立つ",
    "does not hold here": "ここでは成り立たない",
    NOT_SHOWN: "この規模では示されず",
    "shown": "実演で確認",
    "explained": "解説済み",
    "not yet covered": "未検証",
}
TITLES = {"ja": "学習率を手を動かして学ぶ"}  # the site's title in each edition (the landing page's)
ACTIONS_JA = {"demo": "実演", "test": "検証", "explain": "解説", "explain+demo": "解説＋実演",
              "explain+test": "解説＋検証"}
CLAIM_BOX = re.compile(r"\*\*Claim (?P<id>[A-Z]{2}-\d+)\*\* \((?P<action>[\w+]+)\) — \*(?P<text>.*?)\*"
                       r"  \nVerdict: \*\*(?P<verdict>.*?)\*\*\. (?P<evidence>.*)\Z", re.S)


def template(text: str) -> tuple[str, list[str]]:
    """``text`` with its numbers replaced by slots ``⟨0⟩, ⟨1⟩, …``, and the numbers in order.

    >>> template("gain +32.9 points at k = 1")
    ('gain ⟨0⟩ points at k = ⟨1⟩', ['+32.9', '1'])
    """
    numbers: list[str] = []

    def slot(match: re.Match) -> str:
        numbers.append(match.group(0))
        return f"⟨{len(numbers) - 1}⟩"

    return NUMBER.sub(slot, text), numbers


def fill(translated: str, numbers: list[str]) -> str:
    """Put ``numbers`` back into the slots of a translated template (in any order)."""
    def number(match: re.Match) -> str:
        i = int(match.group(1))
        if i >= len(numbers):
            raise ValueError(f"the translation has slot ⟨{i}⟩, the text only {len(numbers)} numbers")
        return numbers[i]

    return SLOT.sub(number, translated)


def has_words(text: str) -> bool:
    """Whether ``text`` (a template) has anything to translate: a Latin letter outside its slots."""
    return re.search(r"[A-Za-z]", SLOT.sub("", text)) is not None


def verdict_kind(text: str) -> tuple[str, str, str] | tuple[None, None, None]:
    """``(kind, name, rest)`` of a verdict's text: the kind it starts with (the longest that fits),
    in English or by its Japanese name (:data:`KINDS_JA`), the name it was written with, and the
    rest: ``"holds only when η < 2/λ"`` → ``("holds only when", "holds only when", "η < 2/λ")``;
    a "not shown" verdict's interval loses its brackets. ``(None, None, None)`` if no kind fits."""
    text = " ".join(text.split())
    names = [(kind, kind) for kind in KINDS_JA] + list(KINDS_JA.items())
    for kind, name in sorted(names, key=lambda pair: len(pair[1]), reverse=True):
        if text == name:
            return kind, name, ""
        for separator in (" ", "：", "（"):
            if text.startswith(name + separator):
                rest = text[len(name) + len(separator):]
                if separator == "（" or (kind == NOT_SHOWN and rest.startswith("(")
                                         and rest.endswith(")")):
                    rest = rest[1:-1] if separator != "（" else rest.removesuffix("）")
                return kind, name, rest
    return None, None, None


def split_verdict(text: str) -> tuple[str, str] | None:
    """``(kind, rest)`` of an English verdict's text (see :func:`verdict_kind`), or None."""
    kind, name, rest = verdict_kind(text)
    return (kind, rest) if kind is not None and name == kind else None


class MissingTranslation(LookupError):
    """A computed text whose template the catalogue does not translate (the template, the
    reason)."""


class Computed:
    """The translations of computed text: ``{template: translated template}``."""

    def __init__(self, table: dict[str, str], missing: dict | None = None):
        self.table = table
        #: where a claim box records a part it leaves in English (``{template: (text, reason)}``);
        #: None: the box raises :class:`MissingTranslation` instead
        self.missing = missing

    @classmethod
    def load(cls, language: str, locales: Path = LOCALES) -> Computed:
        """The catalogue ``locales/<language>/LC_MESSAGES/computed.po``: its translated,
        non-fuzzy messages."""
        path = locales / language / "LC_MESSAGES" / f"{COMPUTED}.po"
        return cls(dict(_translated_messages(path)) if path.exists() else {})

    def phrase(self, text: str) -> str:
        """A computed phrase or sentence, translated with its own numbers."""
        tmpl, numbers = template(text)
        if not has_words(tmpl):
            return text
        if tmpl not in self.table:
            raise MissingTranslation(tmpl, "not in the catalogue")
        try:
            return fill(self.table[tmpl], numbers)
        except ValueError as error:  # a translation with a slot the text has no number for
            raise MissingTranslation(tmpl, str(error)) from None

    def verdict(self, text: str) -> str:
        """A verdict: the kind's Japanese name, then the translated condition or interval."""
        split = split_verdict(text)
        if split is None:
            return self.phrase(text)
        kind, rest = split
        if not rest:
            return KINDS_JA[kind]
        rest = self.phrase(rest)
        return f"{KINDS_JA[kind]}（{rest}）" if kind == NOT_SHOWN else f"{KINDS_JA[kind]}：{rest}"

    def claim_box(self, markdown: str) -> str:
        """The Markdown of :class:`lessons_lib.claims.Record`, in Japanese."""
        box = CLAIM_BOX.match(markdown)
        if box is None:
            return self.phrase(markdown)
        action = ACTIONS_JA.get(box["action"], box["action"])
        text, verdict, evidence = (self._or_english(translate, box[part]) for translate, part in
                                   ((self.phrase, "text"), (self.verdict, "verdict"),
                                    (self.phrase, "evidence")))
        return f"**主張 {box['id']}**（{action}）— *{text}*  \n判定：**{verdict}**。{evidence}"

    def _or_english(self, translate, text: str) -> str:
        """``translate(text)``; a part without a translation stays English (and is recorded in
        :attr:`missing`), so that one new sentence does not leave the whole box in English."""
        try:
            return translate(text)
        except MissingTranslation as missing:
            if self.missing is None:
                raise
            self.missing.setdefault(missing.args[0], (text, missing.args[1]))
            return text


def _translated_messages(path: Path):
    from babel.messages.pofile import read_po

    with open(path, "rb") as f:
        for message in read_po(f):
            if message.id and message.string and not message.fuzzy:
                yield message.id, message.string


# --- extraction -------------------------------------------------------------------------------

def text_glues(executed: Path) -> set[str]:
    """Every place that computes a text, whatever its outcome here: each ``page.md::key`` glued
    as a string by an executed lesson, and ``claim ID`` for each claim."""
    found = {f"claim {claim.id}" for claim in catalogue().values()}
    for glue_file in sorted(Path(executed).rglob("*.glue.json")):
        page = glue_file.relative_to(executed).as_posix().removesuffix(".glue.json") + ".md"
        for key, output in json.loads(glue_file.read_text(encoding="utf-8")).items():
            if _glued_text(output.get("data", {})) is not None:
                found.add(f"{page}::{key}")
    return found


def computed_texts(executed: Path) -> dict[str, list[str]]:
    """Every template to translate, with where it comes from (``page::key`` or ``claim ID``):
    the text glues of the executed lessons (``executed/**/*.glue.json``; a verdict contributes its
    condition or interval) and the claims' own texts (the claim boxes show them)."""
    found: dict[str, list[str]] = {}

    def add(text: str, where: str) -> None:
        tmpl, _ = template(" ".join(text.split()))
        if has_words(tmpl):
            found.setdefault(tmpl, []).append(where)

    for glue_file in sorted(Path(executed).rglob("*.glue.json")):
        page = glue_file.relative_to(executed).as_posix().removesuffix(".glue.json") + ".md"
        for key, output in json.loads(glue_file.read_text(encoding="utf-8")).items():
            text = _glued_text(output.get("data", {}))
            if text is None:
                continue
            split = split_verdict(text)
            add(split[1] if split else text, f"{page}::{key}")
    for claim in catalogue().values():
        add(claim.text, f"claim {claim.id}")
    return found


def _glued_text(data: dict) -> str | None:
    """The string a glue pastes with ``{glue:text}``, or None if it is a number or a picture."""
    if "text/plain" not in data or any(k.startswith("image/") for k in data):
        return None
    try:
        value = literal_eval(data["text/plain"])
    except (SyntaxError, ValueError):
        value = data["text/plain"]
    return value if isinstance(value, str) else None


def write_pot(executed: Path, out: Path) -> int:
    """Write the computed text's template catalogue; return the number of messages."""
    from babel.messages.catalog import Catalog
    from babel.messages.pofile import write_po

    pot = Catalog(project="The Learning Rate, Hands On", charset="utf-8", fuzzy=False)
    for tmpl, where in computed_texts(executed).items():
        message = pot.add(tmpl, auto_comments=[f"from: {', '.join(sorted(set(where)))}"])
        message.flags -= {"python-format", "python-brace-format"}  # "%", "{" are text here
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "wb") as f:
        write_po(f, pot, width=0, omit_header=False)
    return len(pot)


def merge(pots: Path, catalogues: Path, language: str = "ja",
          live: set[str] | None = None) -> dict[str, int]:
    """Bring the catalogues under ``catalogues`` (``**/*.po``) up to date with the templates under
    ``pots`` (``**/*.pot``), as ``msgmerge`` does: a new message is added untranslated, a changed
    one keeps its old translation marked fuzzy (with the old English as ``#| msgid``), a message
    no page has any more is dropped, and so is the catalogue of a page that is gone; a translated
    alternative outcome is kept while ``live`` (:func:`text_glues`; by default the templates'
    own ``from:``) has every place it names. Returns the count of messages per state over all
    catalogues."""
    from babel.messages.catalog import Catalog
    from babel.messages.pofile import read_po, write_po

    counts = {"messages": 0, "translated": 0, "fuzzy": 0, "untranslated": 0}
    wanted = set()
    for pot_path in sorted(Path(pots).rglob("*.pot")):
        po_path = Path(catalogues) / pot_path.relative_to(pots).with_suffix(".po")
        wanted.add(po_path)
        with open(pot_path, "rb") as f:
            pot = read_po(f)
        if po_path.exists():
            with open(po_path, "rb") as f:
                catalogue_ = read_po(f, locale=language)
        else:
            catalogue_ = Catalog(locale=language, project=pot.project, fuzzy=False)
        catalogue_.update(pot, update_header_comment=False)
        catalogue_.fuzzy = False
        _keep_alternatives(catalogue_, live if live is not None
                           else set().union(*(sources(m) for m in pot if m.id)))
        for message in catalogue_:  # Babel guesses it from "% i"; a "%" here is a per cent sign
            message.flags -= {"python-format", "python-brace-format"}
            message.user_comments = _without_previous_id(message.user_comments)
        po_path.parent.mkdir(parents=True, exist_ok=True)
        with open(po_path, "wb") as f:
            write_po(f, catalogue_, width=0, ignore_obsolete=True, include_previous=True)
        for message in catalogue_:
            if not message.id:
                continue
            counts["messages"] += 1
            state = "fuzzy" if message.fuzzy else "translated" if message.string else "untranslated"
            counts[state] += 1
    for stale in set(Path(catalogues).rglob("*.po")) - wanted:
        stale.unlink()
    return counts


ALTERNATIVE = "alternative outcome"  # the translator's comment on a kept alternative


def sources(message) -> set[str]:
    """Where a computed template came from (its ``from:`` comment): ``page.md::key`` or
    ``claim ID``."""
    text = " ".join(message.auto_comments)  # a catalogue's writer may break a long comment
    if not text.startswith("from: "):
        return set()
    return {source.strip() for source in text.removeprefix("from: ").split(",") if source.strip()}


def _without_previous_id(comments: list[str]) -> list[str]:
    """Babel writes a long ``#| msgid`` (the English of a fuzzy message before it changed) over
    several lines that it reads back as translator comments; once the translation is checked,
    they are noise. They come last, after the translator's own."""
    for i, comment in enumerate(comments):
        if comment.startswith("| msgid"):
            return comments[:i]
    return comments


def _keep_alternatives(catalogue_, live: set[str]) -> None:
    """Keep the translation of another outcome of a text the lessons still compute. A lesson may
    pick another phrase on another machine (a timing, say); a translator who foresees it adds the
    phrase, translated, with the comment ``# alternative outcome`` and the ``#. from:`` of the
    text it replaces. The merge keeps it while every place it names still computes a text."""
    for msgid, message in list(catalogue_.obsolete.items()):
        if (ALTERNATIVE in message.user_comments and message.string and sources(message)
                and sources(message) <= live):
            del catalogue_.obsolete[msgid]
            catalogue_[msgid] = message


def write_config(source: Path, out: Path, language: str = "ja") -> None:
    """The ``_config.yml`` of the ``language`` edition: the book's own, with ``language`` set and
    the execution cache named by its absolute path, so that the second edition reads the lessons
    the first one executed and runs none of them."""
    import yaml

    config = yaml.safe_load(source.read_text(encoding="utf-8"))
    config["sphinx"]["config"]["language"] = language
    config["title"] = TITLES.get(language, config["title"])
    config["execute"]["cache"] = str((source.parent / config["execute"]["cache"]).resolve())
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=False), encoding="utf-8")


# --- the Sphinx extension -------------------------------------------------------------------

_GLUE_ROLE = re.compile(r"\{(glue(?::[a-z]+)?)\}`([^`]+)`")


def name_the_page(text: str, page: str) -> str:
    """Rewrite the local glue references of ``text`` (``key`` or ``key:format``) to
    ``page::key:format``; references to another page (``path::key``) are left alone. A
    ``{glue:text}`` without a format gets ``:s``, since myst-nb reads the last ``:`` as the start
    of the format."""
    def rewrite(match: re.Match) -> str:
        role, content = match.group(1), match.group(2)
        if "::" in content:
            return match.group(0)
        key, colon, fmt = content.partition(":")
        if not colon and role == "glue:text":
            colon, fmt = ":", "s"
        return f"{{{role}}}`{page}::{key}{colon}{fmt}`"

    return _GLUE_ROLE.sub(rewrite, text)


_state: dict[str, object] = {"computed": None, "untranslated": {}}


def translate_computed(text: str, how: str = "verdict") -> str:
    """``text`` in the edition's language (unchanged in the English edition). A text the catalogue
    does not translate stays English and is listed at the end of the build (:func:`_report`)."""
    computed = _state["computed"]
    if computed is None:
        return text
    try:
        return computed.claim_box(text) if how == "box" else computed.verdict(text)
    except MissingTranslation as missing:
        _state["untranslated"].setdefault(missing.args[0], (text, missing.args[1]))
        return text


def _report(app, exception) -> None:
    """Name, at the end of a translated build, every computed text shown in English."""
    from sphinx.util import logging

    untranslated = _state["untranslated"]
    if exception is not None or not untranslated:
        return
    log = logging.getLogger(__name__)
    log.info(f"{len(untranslated)} computed texts have no translation in "
             f"locales/{app.config.language}/LC_MESSAGES/{COMPUTED}.po and are shown in English "
             f"(a lesson changed: run `make po` and translate; or this machine computed another "
             f"outcome than the translator's, which tests/site/test_japanese_edition.py reports):",
             color="darkred")
    for tmpl, (text, reason) in sorted(untranslated.items()):
        log.info(f"  {text[:100]!r} ({reason})", color="darkred")


def lesson_codes(book: Path = ROOT / "book") -> dict[str, str]:
    """``{page: SHA-256 of its code cells}`` for every lesson (``book/ch01/01-the-step.md``): what
    a lesson computes depends on its code only. ``make po`` records it beside the computed
    catalogue (:data:`CODES`), so that the tests can tell a lesson changed since its text was
    translated (an untranslated text is an error) from a lesson that computed another outcome here
    (allowed, reported)."""
    import hashlib

    import jupytext

    codes = {}
    for path in sorted(Path(book).rglob("*.md")):
        source = path.read_text(encoding="utf-8")
        if not source.startswith("---") or "\nkernelspec:" not in source.split("\n---", 1)[0]:
            continue
        cells = [c.source for c in jupytext.reads(source, fmt="md:myst").cells
                 if c.cell_type == "code"]
        digest = hashlib.sha256("\n\0".join(cells).encode("utf-8")).hexdigest()
        codes[path.relative_to(Path(book).parent).as_posix()] = digest
    return codes


CODES = "computed-lessons.json"  # beside computed.po: the lessons' code when it was last merged


def _wrap_format_plain_text(module) -> None:
    original = module.format_plain_text
    if getattr(original, "_translates", False):
        return

    def format_plain_text(text: str, fmt_spec: str) -> str:
        formatted = original(text, fmt_spec)
        return translate_computed(formatted) if _glued_text({"text/plain": text}) else formatted

    format_plain_text._translates = True
    module.format_plain_text = format_plain_text


def _wrap_render_markdown(renderer_class) -> None:
    original = renderer_class.render_markdown
    if getattr(original, "_translates", False):
        return

    def render_markdown(self, data):
        if _state["computed"] is not None:
            data = dataclasses.replace(data, content=translate_computed(data.string, "box"))
        rendered = original(self, data)
        for node in rendered:  # computed text: never in the page catalogues
            for element in node.findall():
                if hasattr(element, "attributes"):
                    element["translatable"] = False
        return rendered

    render_markdown._translates = True
    renderer_class.render_markdown = render_markdown


def _language_switch(app, pagename, templatename, context, doctree) -> None:
    """A link to the same page in the other edition, at the top of every page. The English
    edition is ``_build/html``, the Japanese one ``_build/html/ja``."""
    if "body" not in context:
        return
    depth = pagename.count("/")
    if app.config.language == "ja":
        href, hreflang, text = "../" * (depth + 1) + pagename + ".html", "en", "English"
    else:
        href, hreflang, text = "../" * depth + "ja/" + pagename + ".html", "ja", "日本語"
    link = (f'<p class="language-switch"><a href="{href}" hreflang="{hreflang}" '
            f'lang="{hreflang}">{text}</a></p>\n')
    context["body"] = link + context["body"]


FONT_CSS = """\
/* The Japanese edition: fonts that have the kana and kanji, then the theme's. */
html[lang="ja"] body {
  font-family: "Noto Sans CJK JP", "Noto Sans JP", "Hiragino Sans", "Hiragino Kaku Gothic ProN",
    "Yu Gothic", "Meiryo", system-ui, sans-serif;
  line-break: strict;
}
.language-switch { text-align: right; margin: 0 0 0.5em; font-size: 0.9em; }
"""


def add_static_css(app, name: str, text) -> None:
    """Link ``_static/<name>`` from every HTML page and write it, ``text()``, after the build."""
    def write(app, exception) -> None:
        if exception is None and app.builder.format == "html":
            static = Path(app.outdir) / "_static"
            static.mkdir(parents=True, exist_ok=True)
            (static / name).write_text(text(), encoding="utf-8")

    app.connect("build-finished", write)
    app.add_css_file(name)


def translate_toc_captions(app, doctree) -> None:
    """The captions of the sidebar's parts ("1. What the learning rate is") in the edition's
    language. sphinx-external-toc inserts the toctrees after Sphinx translated the page, so their
    captions are looked up here, in the root page's catalogue, before the table of contents is
    collected from them."""
    from sphinx import addnodes
    from sphinx.locale import init as init_catalogue
    from sphinx.util.i18n import docname_to_domain

    if (app.config.language or "en") == "en":
        return
    toctrees = [t for t in doctree.findall(addnodes.toctree) if t.get("caption")]
    if not toctrees:
        return
    dirs = [os.path.join(app.srcdir, d) for d in app.config.locale_dirs]
    domain = docname_to_domain(app.env.docname, app.config.gettext_compact)
    catalogue_, _ = init_catalogue(dirs, app.config.language, domain)
    for toctree in toctrees:
        toctree["caption"] = catalogue_.gettext(toctree["caption"])


def reread_when_the_computed_catalogue_changes(app, env, added, changed, removed) -> list[str]:
    """Every page again after ``computed.po`` changed: Sphinx tracks the page catalogues but not
    this one, so an incremental build would keep a page's old (or English) computed text."""
    if (app.config.language or "en") == "en":
        return []
    import hashlib

    path = LOCALES / app.config.language / "LC_MESSAGES" / f"{COMPUTED}.po"
    digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None
    if getattr(env, "i18n_computed_catalogue", None) == digest:
        return []
    env.i18n_computed_catalogue = digest  # pickled with the environment
    return sorted(set(env.found_docs) - set(added) - set(changed))


def _builder_inited(app) -> None:
    language = app.config.language or "en"
    _state["untranslated"] = {}
    _state["computed"] = None if language == "en" else Computed.load(language)
    if _state["computed"] is not None:
        _state["computed"].missing = _state["untranslated"]


def setup(app):
    from myst_nb.core.render import NbElementRenderer
    from myst_nb.ext.glue import crossref, roles
    from myst_nb.sphinx_ import Parser

    from lessons_lib._i18n_notebooks import write_translated_sources  # it builds on this module

    parse = Parser.parse

    def parse_translated(self, inputstring, document):
        source = document.current_source or ""
        if source.endswith("<translated>"):
            page = os.path.basename(source.split(":", 1)[0])
            inputstring = name_the_page(inputstring, page)
        return parse(self, inputstring, document)

    if not getattr(parse, "_names_the_page", False):
        parse_translated._names_the_page = True
        Parser.parse = parse_translated
    _wrap_format_plain_text(roles)
    _wrap_format_plain_text(crossref)
    _wrap_render_markdown(NbElementRenderer)
    app.connect("builder-inited", _builder_inited)
    app.connect("env-get-outdated", reread_when_the_computed_catalogue_changes)
    app.connect("doctree-read", translate_toc_captions, priority=400)  # before the toc collector
    app.connect("html-page-context", _language_switch)
    app.connect("build-finished", _report)
    app.connect("build-finished", write_translated_sources)  # the download buttons' files
    add_static_css(app, "i18n.css", lambda: FONT_CSS)
    return {"parallel_read_safe": True, "parallel_write_safe": True}


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "pot":
        n = write_pot(ROOT / "_build" / "jupyter_execute", Path(argv[1]))
        print(f"wrote {argv[1]}: {n} computed texts")
        return 0
    if len(argv) == 3 and argv[0] == "merge":
        counts = merge(Path(argv[1]), Path(argv[2]),
                       live=text_glues(ROOT / "_build" / "jupyter_execute"))
        (Path(argv[2]) / CODES).write_text(json.dumps(lesson_codes(), indent=1) + "\n",
                                           encoding="utf-8")
        print(", ".join(f"{n} {state}" for state, n in counts.items()))
        return 0
    if len(argv) in (2, 3) and argv[0] == "config":
        write_config(ROOT / "_config.yml", Path(argv[1]), *argv[2:])
        return 0
    print("usage: python -m lessons_lib._i18n pot OUT.pot | merge POT_DIR PO_DIR | config OUT.yml [LANG]",
          file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
