"""The Japanese notebooks: what a reader of the Japanese edition downloads or opens locally.

The Japanese pages are translated by Sphinx inside the build, on the parsed document; the source
file stays English. A Japanese reader who presses the download button (``.md`` or ``.ipynb``) would
get the English lesson. This module writes the same lesson with its prose in Japanese, from the
same page catalogue (``locales/ja/LC_MESSAGES/book/ch01/01-the-step.po``):

- the source is parsed with the book's own Markdown parser (myst-parser's ``markdown-it``, with
  the extensions ``_config.yml`` enables), which knows the lines every block came from;
- every block of prose (a paragraph, heading, list item, table cell, definition, a directive's
  title and body) is looked up by the text Sphinx's ``gettext`` builder extracted from it, that
  is its source with line breaks turned into spaces, and replaced by the catalogue's translation;
- a figure's caption in a code cell's options (``mystnb: figure: caption:``) is translated the
  same way; the code, the math and everything else stay byte for byte as they are.

So the Japanese notebook runs the very code of the English one, and a test checks it
(``tests/site/test_japanese_edition.py``). In a Japanese build the extension writes both files over
the English ones in ``_sources``, where the page's download button points.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

from lessons_lib._i18n import ROOT, _translated_messages
from lessons_lib._ledger import COUNTS_BOX

#: Directives whose argument is not prose (a file, a label, a glue key) and whose body is code or
#: data: left alone.
NOT_PROSE = {"code-cell", "literalinclude", "math", "bibliography", "solution-end", "raw",
             "glue:figure", "glue:any", "glue:math"}
#: Directives whose argument is a title to translate (the others' argument is a label or a name).
TITLED = {"margin", "admonition", "note", "tip", "warning", "important", "seealso", "dropdown",
          "topic", "sidebar"}
_DIRECTIVE = re.compile(r"^(?P<fence>`{3,}|:{3,})\{(?P<name>[\w:-]+)\}[ \t]*(?P<argument>.*)$")
_OPTION = re.compile(r"^:[\w-]+:")


@lru_cache(maxsize=1)
def _parser():
    """The ``markdown-it`` parser the book's pages are read with (``myst_enable_extensions``)."""
    import yaml
    from markdown_it.renderer import RendererHTML
    from myst_parser.config.main import MdParserConfig
    from myst_parser.parsers.mdit import create_md_parser

    config = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
    extensions = set(config["parse"]["myst_enable_extensions"])
    return create_md_parser(MdParserConfig(enable_extensions=extensions), RendererHTML)


def message(text: str) -> str:
    """The message Sphinx extracts from a block of source: its lines joined by spaces."""
    return text.replace("\n", " ").strip()


def translate_markdown(source: str, lookup: Callable[[str], str | None]) -> tuple[str, list[str]]:
    """``source`` (a MyST page) with its prose replaced by ``lookup(message)`` wherever that is not
    ``None``. Returns the new source and the messages with words that ``lookup`` did not know."""
    missing: list[str] = []
    lines = source.split("\n")
    return "\n".join(_translate_lines(lines, lookup, missing)), missing


def _has_words(text: str) -> bool:
    """Prose, not only a number, a symbol, math or a reference (a glued text, a label)."""
    return bool(re.search(r"[A-Za-z]{2,}", re.sub(r"\$[^$]*\$|\{[\w:-]+\}`[^`]*`", "", text)))


def _translate(text: str, lookup, missing: list[str]) -> str | None:
    key = message(text)
    translated = lookup(key)
    if translated is None and _has_words(key):
        missing.append(key)
    return translated


def _translate_lines(lines: list[str], lookup, missing: list[str]) -> list[str]:
    tokens = _parser().parse("\n".join(lines) + "\n")
    out = list(lines)  # a line becomes None when a paragraph folds into its first line
    cursor: dict[int, int] = {}  # where on a line the next cell's text is searched (tables)
    for i, token in enumerate(tokens):
        if token.map is None:
            continue
        start, end = token.map
        if token.type == "inline":
            content, translated = token.content, _translate(token.content, lookup, missing)
            if translated is None:
                continue
            if tokens[i - 1].type in ("th_open", "td_open"):  # a cell: its | stay escaped
                content, translated = content.replace("|", r"\|"), translated.replace("|", r"\|")
            if not _replace(out, start, max(end, start + 1), content, translated, cursor):
                missing.append(message(token.content))  # not where the parser said: left as is
        elif token.type in ("fence", "colon_fence"):
            block = _translate_directive(lines[start:end], lookup, missing)
            out[start:end] = ["\n".join(block)] + [None] * (end - start - 1)
    return [line for line in out if line is not None]


def _replace(out: list, start: int, end: int, content: str, translated: str, cursor) -> bool:
    """Put ``translated`` where ``content`` stood on lines ``start``..``end``: in place on one line
    (a heading, a table cell, a one-line paragraph), else on the first line after the block's
    prefix (a list marker, ``> ``), the other lines dropped. False, and nothing changed, when the
    text is not found there."""
    first = content.split("\n")[0]
    line = out[start]
    at = -1 if line is None else line.find(first, cursor.get(start, 0))
    if at < 0:
        return False
    if end - start == 1 and "\n" not in content:
        out[start] = line[:at] + translated + line[at + len(first):]
        cursor[start] = at + len(translated)
        return True
    out[start] = line[:at] + translated
    for k in range(start + 1, end):
        out[k] = None
    return True


def _translate_directive(block: list[str], lookup, missing: list[str]) -> list[str]:
    """A fenced block (opening line, body, closing line): a code cell's figure caption, a
    directive's title and its body's prose; code and data unchanged."""
    match = _DIRECTIVE.match(block[0])
    if not match:  # a plain code block
        return block
    name, argument = match["name"], match["argument"].strip()
    closed = len(block) > 1 and block[-1].strip().startswith(match["fence"][:3])
    body = block[1:-1] if closed else block[1:]
    tail = block[-1:] if closed else []
    opening = block[0]
    if name == "code-cell":
        return [opening] + _translate_cell_options(body, lookup, missing) + tail
    if name in NOT_PROSE or (name == "container" and argument == COUNTS_BOX):
        return block  # code, data, or the ledger's counts, which the build writes
    if argument and name in TITLED:
        translated = _translate(argument, lookup, missing)
        if translated is not None:
            opening = block[0][: block[0].rfind(argument)] + translated
    options, content = _split_options(body)
    return [opening] + options + _translate_lines(content, lookup, missing) + tail


def _split_options(body: list[str]) -> tuple[list[str], list[str]]:
    """A directive's options (``:key: value`` lines, or a ``---`` YAML block) and its content."""
    if body and body[0].strip() == "---":
        end = next((k for k in range(1, len(body)) if body[k].strip() == "---"), None)
        if end is not None:
            return body[: end + 1], body[end + 1:]
    k = 0
    while k < len(body) and _OPTION.match(body[k]):
        k += 1
    return body[:k], body[k:]


def _translate_cell_options(body: list[str], lookup, missing: list[str]) -> list[str]:
    """A code cell with its figure caption (``mystnb: figure: caption:``) translated; the code and
    every other option unchanged."""
    import yaml

    options, code = _split_options(body)
    if not options or options[0].strip() != "---":
        return body
    data = yaml.safe_load("\n".join(options[1:-1])) or {}
    figure = (data.get("mystnb") or {}).get("figure") or {}
    caption = figure.get("caption")
    if not caption:
        return body
    translated = _translate(caption, lookup, missing)
    if translated is None:
        return body
    figure["caption"] = translated
    dumped = yaml.safe_dump(data, allow_unicode=True, sort_keys=False, width=10**6)
    return ["---", *dumped.rstrip("\n").split("\n"), "---", *code]


# --- the page catalogues --------------------------------------------------------------------

def catalogue_lookup(po: Path) -> Callable[[str], str | None]:
    """``lookup(message)`` for a page's catalogue: its translation (``None`` if it has none or it
    is fuzzy)."""
    return dict(_translated_messages(po)).get


def translate_page(source: Path, po: Path) -> tuple[str, list[str]]:
    """The page ``source`` with the prose its catalogue ``po`` translates in the other language."""
    return translate_markdown(source.read_text(encoding="utf-8"), catalogue_lookup(po))


def notebook(markdown: str) -> str:
    """The ``.ipynb`` of a MyST notebook's source, as the download button offers it."""
    import jupytext

    return jupytext.writes(jupytext.reads(markdown, fmt="md:myst"), fmt="ipynb")


def write_translated_sources(app, exception) -> None:
    """After a translated build: every page's ``_sources/<page>.md`` (and ``.ipynb``, where the
    build wrote one) in the edition's language, from the page catalogues."""
    language = app.config.language or "en"
    if exception is not None or language == "en" or app.builder.format != "html":
        return
    locales = Path(app.srcdir) / app.config.locale_dirs[0] / language / "LC_MESSAGES"
    sources = Path(app.outdir) / "_sources"
    for docname in sorted(app.env.found_docs):
        path = Path(app.env.doc2path(docname))
        po = locales / f"{docname}.po"
        if path.suffix != ".md" or not po.exists():
            continue
        translated, _ = translate_page(path, po)
        markdown, ipynb = sources / f"{docname}.md", sources / f"{docname}.ipynb"
        markdown.parent.mkdir(parents=True, exist_ok=True)
        markdown.write_text(translated, encoding="utf-8")
        if ipynb.exists():
            ipynb.write_text(notebook(translated), encoding="utf-8")
