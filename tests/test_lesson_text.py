"""House rules of the lesson text that can be checked without running anything.

A number the text reports from an experiment must be computed and asserted when the book is
built. Exercise solutions are where such numbers used to slip in as plain prose ("in our runs
...") that nothing checked: a solution that reports a measurement must be a gated solution
(``solution-start`` ... ``solution-end``) whose code cell runs the experiment.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LESSONS = sorted((ROOT / "book").glob("ch*/*.md"))
MEASURED = re.compile(r"\b(in our runs?|our runs|we measured|we got|in our experiments?)\b", re.I)


def plain_solutions(text: str) -> list[str]:
    return re.findall(r"```\{solution\}.*?\n```", text, re.S)


def gated_solutions(text: str) -> list[str]:
    return re.findall(r"```\{solution-start\}.*?```\{solution-end\}", text, re.S)


def test_the_rules_see_the_lessons():
    assert len(LESSONS) >= 12
    assert sum(len(gated_solutions(p.read_text(encoding="utf-8"))) for p in LESSONS) >= 3


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_solutions_that_report_measurements_run_them(lesson):
    text = lesson.read_text(encoding="utf-8")
    for block in plain_solutions(text):
        found = MEASURED.search(block)
        assert not found, (f"{lesson.name}: a plain solution reports a measurement "
                           f"({found.group(0)!r}); make it a gated solution with a code cell:\n"
                           f"{block[:300]}")
    for block in gated_solutions(text):
        assert "```{code-cell}" in block, f"{lesson.name}: gated solution without a code cell"
        assert "assert " in block, f"{lesson.name}: gated solution whose cell asserts nothing"


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_named_figure_is_referenced_from_the_text(lesson):
    text = lesson.read_text(encoding="utf-8")
    names = re.findall(r"^\s*name: (fig-[\w-]+)\s*$", text, re.M)
    unreferenced = [n for n in names if not re.search(rf"\{{numref\}}`([^`]*<)?{n}>?`", text)]
    assert not unreferenced, f"{lesson.name}: no {{numref}} points to {unreferenced}"


def prose_lines(text: str) -> list[tuple[int, str]]:
    """(line number, line) for every line outside code cells, fenced blocks and front matter."""
    lines, fenced = [], False
    for n, line in enumerate(text.splitlines(), 1):
        if line.startswith("```"):
            fenced = not fenced
            continue
        if not fenced:
            lines.append((n, line))
    return lines


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_no_prose_line_starts_with_a_percent_sign(lesson):
    """Catches a paragraph wrapped so that a line starts with "%": MyST reads the line as a
    comment and drops it from the page (a "… 93.1\n%), and …" once lost half a sentence)."""
    text = lesson.read_text(encoding="utf-8")
    comments = [n for n, line in prose_lines(text) if line.startswith("%")]
    assert not comments, f"{lesson.name}: lines {comments} start with % (a MyST comment)"


# One Japanese word per concept: the glossary's word, and the variants the book must not use (some
# of them are the source articles' own spelling; the book keeps the glossary's).
GLOSSARY = ROOT / "book" / "appendix" / "glossary.md"
ONE_WORD = {  # rejected variant -> the glossary's word
    "荷重減衰": "重み減衰",
    "指数関数的減衰": "指数減衰",
    "プラトー減少": "プラトー減衰",
    "スケジューラー": "スケジューラ",
    "モメンタム": "モーメンタム",
}


def rejected_terms(text: str) -> list[tuple[int, str]]:
    """(line number, variant) for every rejected Japanese variant in ``text``."""
    return [(n, variant) for n, line in enumerate(text.splitlines(), 1)
            for variant in ONE_WORD if variant in line]


def test_the_glossary_gives_every_word_the_book_keeps():
    """Catches the rule drifting from the glossary: a kept word the glossary does not list."""
    glossary = GLOSSARY.read_text(encoding="utf-8")
    assert [word for word in ONE_WORD.values() if word not in glossary] == []


def test_the_variant_rule_catches_a_planted_variant():
    """Catches a rule that cannot fail: each variant is found, the kept word alone is not
    (スケジューラ is a prefix of スケジューラー, so a plain substring test of the kept word would
    not do)."""
    for variant, word in ONE_WORD.items():
        assert rejected_terms(f"a line\n学習率の{variant}です") == [(2, variant)]
        assert rejected_terms(f"学習率の{word}です。{word}") == []


def test_no_rejected_japanese_variant_anywhere_in_the_book():
    found = {}
    for path in sorted((ROOT / "book").rglob("*")):
        if path.is_file() and "_build" not in path.parts and path.suffix in {".md", ".bib", ".yml"}:
            hits = rejected_terms(path.read_text(encoding="utf-8"))
            if hits:
                found[path.relative_to(ROOT).as_posix()] = hits
    assert not found, ("use the glossary's word (" + ", ".join(f"{w} not {v}" for v, w in
                       ONE_WORD.items()) + f"): {found}")
