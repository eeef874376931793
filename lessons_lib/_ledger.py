"""Sphinx extension for the pages that paste what the lessons measured (the appendix's).

What happens here can only happen once every lesson has run, at build time:

1. **Verdicts as coloured labels.** A ``{glue:text}`` paste of a claim's verdict (key
   ``claim-<ID>``, glued by :func:`lessons_lib.claims.record`) is wrapped, before myst-nb resolves
   it, in a span that is turned on ``doctree-resolved`` into a label coloured by the verdict's kind,
   followed by the rest of the verdict (its condition or interval). A paste of the evidence
   (``claim-<ID>-evidence``) is wrapped too, so that it reads as plain text. A verdict that is none
   of the kinds is a warning (an error under ``-W``).
2. **The claims ledger's table and counts.** On a page with a ``ledger-counts`` box (the ledger,
   written by ``make ledger``), each cell of a table's "verdict" column becomes the label alone
   (the full verdict and the evidence sit in the chapter's dropdown under the table), and the box
   is filled with the count per kind.
3. **Pastes kept fresh.** A page that pastes from another (``path::key``) is read again whenever
   any page changed, so an incremental build never shows a lesson's old verdict.
4. **Figures glued in another lesson.** myst-nb 1.4's ``{glue:figure}`` pastes only from its own
   notebook, and its cross-document ``{glue}`` makes an ``<img>`` whose file it never writes.
   Here ``{glue:figure}`` also takes ``path/to/lesson.md::key``: the paste is resolved from the
   lesson's ``.glue.json`` before myst-nb's own post-transform, the PNG is written into the HTML's
   ``_images``, and the figure keeps its ``:name:`` (for ``{numref}``) and caption.

``_config.yml`` lists this module under ``sphinx.extra_extensions``; the labels' CSS (Okabe & Ito's
colour-blind-safe palette, text at a WCAG AA contrast of 4.5:1 or more) is written to
``_static/ledger.css`` after the build.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
from pathlib import Path

from docutils import nodes
from myst_nb.ext.glue.crossref import read_glue_cache
from myst_nb.ext.glue.directives import PasteFigureDirective
from myst_nb.ext.glue.utils import (
    PendingGlueReference,
    PendingGlueReferenceError,
    create_pending_glue_ref,
    glue_warning,
)
from sphinx.transforms.post_transforms import SphinxPostTransform
from sphinx.util import logging

from lessons_lib import _i18n
from lessons_lib._i18n import KINDS_JA
from lessons_lib.claims import MEANINGS

logger = logging.getLogger(__name__)

VERDICT_KEY = re.compile(r"claim-[A-Z]{2}-\d+")  # claims.record glues the verdict under it
VERDICT_PASTE, EVIDENCE_PASTE = "claim-verdict", "claim-evidence"  # the wrappers' classes
COUNTS_BOX = "ledger-counts"  # the class of the ledger's placeholder (a {container})
VERDICT_HEADERS = ("verdict", "判定")  # the header of the column that holds the verdicts (en, ja)
KINDS = tuple(MEANINGS)  # the verdict kinds and "not yet covered", in the order they are counted
#: background, text colour: Okabe & Ito (2008), "Color Universal Design"; every pair has a
#: contrast ratio of 4.5:1 or more, and the label's text names the kind, so colour is never alone.
COLOURS = {
    "holds": ("#009E73", "#000000"),  # bluish green
    "holds only when": ("#56B4E9", "#000000"),  # sky blue
    "does not hold here": ("#D55E00", "#000000"),  # vermillion
    "not shown at this scale": ("#F0E442", "#000000"),  # yellow
    "shown": ("#CC79A7", "#000000"),  # reddish purple
    "explained": ("#0072B2", "#FFFFFF"),  # blue
    "not yet covered": ("transparent", "inherit"),  # outlined, see CSS
}


def slug(kind: str) -> str:
    """The CSS class of a kind: ``verdict-holds-only-when``."""
    return "verdict-" + "-".join(kind.split())


def verdict_kind(text: str) -> tuple[str, str] | tuple[None, None]:
    """The kind a verdict's text starts with (the longest that fits, in English or by its Japanese
    name) and the name it was written with, or ``(None, None)`` (:func:`_i18n.verdict_kind`)."""
    kind, name, _ = _i18n.verdict_kind(text)
    return kind, name


def _language(app) -> str:
    """The edition's language (``app`` may be None: English)."""
    return getattr(getattr(app, "config", None), "language", None) or "en"


def label(kind: str, language: str = "en") -> nodes.inline:
    name = KINDS_JA[kind] if language == "ja" else kind
    return nodes.inline(name, name, classes=["verdict", slug(kind)])


def _verdict_column(table: nodes.table) -> int | None:
    head = next(table.findall(nodes.thead), None)
    if head is None:
        return None
    titles = [entry.astext().strip().lower() for entry in head.findall(nodes.entry)]
    return next((titles.index(h) for h in VERDICT_HEADERS if h in titles), None)


def label_the_ledger(app, doctree: nodes.document, docname: str) -> None:
    """Labels in the verdict cells and the counts in the box, once the pastes are resolved."""
    boxes = [n for n in doctree.findall(nodes.container) if COUNTS_BOX in n["classes"]]
    if not boxes:
        return
    counts = dict.fromkeys(KINDS, 0)
    language = _language(app)
    found = False
    for table in list(doctree.findall(nodes.table)):
        column = _verdict_column(table)
        if column is None:
            continue
        found = True
        table["classes"].append("ledger-table")
        for body in table.findall(nodes.tbody):
            for row in body.children:
                cell = row.children[column]
                kind, _ = verdict_kind(cell.astext())
                if kind is None:
                    logger.warning(f"claims ledger: the verdict of {row.children[0].astext()} "
                                   f"reads {cell.astext()!r}, none of {KINDS}", location=cell)
                    continue
                counts[kind] += 1
                cell.children = []
                cell += nodes.paragraph("", "", label(kind, language))
    if not found:
        logger.warning(f"claims ledger: no table has a column headed {VERDICT_HEADERS}",
                       location=boxes[0])
    line = nodes.paragraph("", "", classes=["ledger-count-line"])
    for kind, n in counts.items():
        number = nodes.inline(str(n), str(n), classes=["verdict-count"])
        line += nodes.inline("", "", label(kind, language), number, classes=["ledger-count"])
    total = (f"全 {sum(counts.values())} 件の主張" if language == "ja"
             else f"{sum(counts.values())} claims in all")
    line += nodes.inline(total, total, classes=["ledger-total"])
    for box in boxes:
        box.children = []
        box += line.deepcopy()


def label_pasted_verdicts(app, doctree: nodes.document, docname: str) -> None:
    """Each pasted verdict outside the ledger's table: its kind as a label, then the rest."""
    for paste in list(doctree.findall(nodes.inline)):
        if VERDICT_PASTE not in paste["classes"]:
            continue
        text = " ".join(paste.astext().split())
        kind, name = verdict_kind(text)
        if kind is None:
            logger.warning(f"a pasted verdict reads {text!r}, none of {KINDS}", location=paste)
            continue
        paste.children = [label(kind, _language(app))]
        if text[len(name):]:
            paste += nodes.Text(text[len(name):])


class PasteFigure(PasteFigureDirective):
    """``{glue:figure}`` that also pastes from another lesson: ``../ch01/lesson.md::key``."""

    def run(self):
        if "::" not in self.arguments[0]:
            return super().run()
        doc, key = self.arguments[0].split("::", 1)
        try:
            ref = create_pending_glue_ref(self.document, self.source, self.line, doc.strip(),
                                          key.strip(), gtype="figure")
        except PendingGlueReferenceError as exc:
            return [glue_warning(str(exc), self.document, self.line)]
        for option in ("alt", "width", "height"):
            if option in self.options:
                ref[option] = self.options[option]
        figure = nodes.figure("", ref, classes=self.options.get("figclass") or [])
        if "align" in self.options:
            figure["align"] = self.options["align"]
        self.set_source_info(figure)
        self.add_name(figure)
        if self.content:
            holder = nodes.Element()
            self.state.nested_parse(self.content, self.content_offset, holder)
            first = holder[0]
            if not isinstance(first, nodes.paragraph):
                return [figure, glue_warning("the caption must be a paragraph", self.document,
                                             self.line)]
            figure += nodes.caption(first.rawsource, "", *first.children)
            ref.setdefault("alt", " ".join(first.astext().split()))
            if len(holder) > 1:
                figure += nodes.legend("", *holder[1:])
        return [figure]


class AppendixPastes(SphinxPostTransform):
    """Before myst-nb resolves the pastes: wrap each claim's verdict and evidence paste in a span
    (the labels find them there), and resolve each cross-lesson figure into an image whose PNG is
    in ``_images``."""

    default_priority = 4  # before myst-nb's ReplacePendingGlueReferences (5)

    def apply(self, **kwargs) -> None:
        for ref in list(self.document.findall(PendingGlueReference)):
            if ref.gtype == "figure":
                self.paste_figure(ref)
            elif VERDICT_KEY.fullmatch(ref.key.removesuffix("-evidence")):
                evidence = ref.key.endswith("-evidence")
                wrapper = nodes.inline(classes=[EVIDENCE_PASTE if evidence else VERDICT_PASTE])
                ref.replace_self(wrapper)
                wrapper += ref

    def paste_figure(self, ref: PendingGlueReference) -> None:
        output = read_glue_cache(self.env.mystnb_config.output_folder, ref.refdoc).get(ref.key)
        png = (output or {}).get("data", {}).get("image/png")
        if png is None:
            logger.warning(f"no figure glued as {ref.key!r} in {ref.refdoc!r}", location=ref)
            ref.parent.remove(ref)
            return
        data = base64.b64decode(png)
        outdir = Path(self.app.builder.outdir)
        target = outdir / self.app.builder.imagedir / f"{hashlib.sha256(data).hexdigest()}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists():
            target.write_bytes(data)
        uri = Path(os.path.relpath(target, (outdir / self.env.docname).parent)).as_posix()
        image = nodes.image(uri=uri, candidates={"*": uri}, alt=ref.get("alt", ref.key))
        for option in ("width", "height"):
            if option in ref:
                image[option] = ref[option]
        ref.replace_self(image)


#: A paste from another page: {glue:text}`../ch01/lesson.md::key` or ```{glue:figure} ...::key
CROSS_PASTE = re.compile(r"\{glue(:\w+)?\}`[^`\n]*::|^`{3,}\{glue(:\w+)?\}[ \t]+\S*::", re.M)


def pages_that_paste(env, docnames) -> list[str]:
    """The pages among ``docnames`` whose source pastes from another page."""
    return [doc for doc in sorted(docnames)
            if CROSS_PASTE.search(Path(env.doc2path(doc)).read_text(encoding="utf-8"))]


def repaste_when_a_page_changes(app, env, added, changed, removed) -> list[str]:
    """Read the pasting pages again whenever a page changed: Sphinx knows no dependency of the
    ledger on the lessons, so after a lesson's verdict changed, an incremental build would keep
    the old verdict on a ledger whose own source did not change."""
    if not (added or changed or removed):
        return []
    return pages_that_paste(env, set(env.found_docs) - set(added) - set(changed))


def _css() -> str:
    rules = [".verdict { display: inline-block; padding: 0.05em 0.5em; border-radius: 0.8em;"
             " font-size: 0.85em; font-weight: 600; line-height: 1.5; white-space: nowrap; }"]
    for kind, (background, text) in COLOURS.items():
        rules.append(f".{slug(kind)} {{ background: {background}; color: {text}; }}")
    rules += [
        ".verdict-not-yet-covered { border: 1px solid currentColor; font-weight: 400; }",
        ".ledger-count-line { display: flex; flex-wrap: wrap; gap: 0.4em 1em; }",
        ".verdict-count { margin-left: 0.3em; font-weight: 600; }",
        f".{EVIDENCE_PASTE} .pasted-text {{ font-weight: inherit; }}",  # myst-nb makes it bold
        "table.ledger-table { width: 100%; table-layout: fixed; font-size: 0.92em; }",
        "table.ledger-table :is(td, th) { overflow-wrap: anywhere; vertical-align: top; }",
        "table.ledger-table th:nth-child(1) { width: 4.2em; }",
        "table.ledger-table th:nth-child(3) { width: 10.5em; }",
        "table.ledger-table th:nth-child(4) { width: 24%; }",
        "table.ledger-table .verdict { white-space: normal; }",
    ]
    return "\n".join(rules) + "\n"


def setup(app):
    app.setup_extension("myst_nb")  # the glue domain must exist before its directive is replaced
    app.add_directive_to_domain("glue", "figure", PasteFigure, override=True)
    app.add_post_transform(AppendixPastes)
    app.connect("env-get-outdated", repaste_when_a_page_changes)
    app.connect("doctree-resolved", label_the_ledger)  # the table's cells first, then the rest
    app.connect("doctree-resolved", label_pasted_verdicts)
    _i18n.add_static_css(app, "ledger.css", _css)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
