"""Sphinx extension for the Japanese edition: glued numbers inside translated paragraphs.

Sphinx translates a page by parsing each translated message on its own, outside the notebook it
came from; myst-nb's glue roles in it (``{glue:text}`best_lr:.2g```) then find no glue data and
paste nothing. In a translated fragment of a notebook page, every glue reference to the page's
own data is rewritten to name the page (``{glue:text}`01-the-step.md::best_lr:.2g```), the form
myst-nb resolves from the page's saved glue data after all pages are read. The numbers of both
editions therefore come from the same executed notebooks.
"""

from __future__ import annotations

import os
import re

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


def setup(app):
    from myst_nb.sphinx_ import Parser

    parse = Parser.parse

    def parse_translated(self, inputstring, document):
        source = document.current_source or ""
        if source.endswith("<translated>"):
            page = os.path.basename(source.split(":", 1)[0])
            inputstring = name_the_page(inputstring, page)
        return parse(self, inputstring, document)

    Parser.parse = parse_translated
    return {"parallel_read_safe": True, "parallel_write_safe": True}
