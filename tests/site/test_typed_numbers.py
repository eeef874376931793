"""No measured number typed twice: a lesson's prose must paste what its own glue variables hold.

A number that a run produced reaches the text through myst-nb's ``{glue:text}``; typed, it stays
behind when the experiment changes. This test reads what each executed lesson glued (the build
writes it to ``_build/jupyter_execute/book/chNN/NAME.glue.json``, hence a site test: it runs after
``make book``) and rejects a typed decimal number in the lesson's prose that one of those numeric
glue variables also holds.

What counts, decided here:

- **Where.** Every paragraph of Markdown, including exercise text and solutions of both kinds
  (a plain ``{solution}`` and the Markdown between ``solution-start`` and ``solution-end``),
  headings, lists, tables, captions and margin notes. Not code cells, directive options, inline
  code, roles (a ``{glue:text}`` paste is the point), comments, link targets, and not **math**:
  ``$…$`` holds formulas, definitions and settings, and a paste cannot stand inside math, so a
  measured number belongs in the prose next to it, where this test sees it.
- **Which numbers.** Decimals (``0.31``, ``15.3``): whole numbers are mostly counts and settings
  (steps, seeds, layers) and collide by chance. Against glue variables whose value is a number
  (``glue("best", 0.3127)``); the numbers inside glued sentences (a verdict's evidence) are not
  compared, since those sentences interpolate settings as well as results.
- **Match.** At the precision typed: ``0.31`` matches a glued 0.3127 (0.31 at two decimals), not
  0.3172; the sign is ignored (the text says "fell by 0.02" for a glued -0.02).
- **Settings are not copies.** A typed number that the lesson's code also types as a literal
  (a grid ``[0.1, 0.2, 0.4]``, a default ``lr=1e-3``, a correlation ``0.5``; literals inside
  ``assert`` statements do not count) is a setting: the text may name it. Without this rule the
  check drowned in settings that a glued result happens to equal (the best of a grid is a grid
  point; Adam's default is glued as a measured step). The price: a sentence that types the
  *winning* grid point ("the best fixed rate was 0.4") is not caught; paste it all the same.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXECUTED = ROOT / "_build" / "jupyter_execute"
LESSONS = sorted(p for p in (ROOT / "book").glob("ch*/*.md")
                 if "\nkernelspec:" in p.read_text(encoding="utf-8"))
DECIMAL = re.compile(r"(?<![\w.])(\d+\.\d+)(?!\.?\d)")
NOT_PROSE = [
    r"(?s)\A---\n.*?\n---\n",                        # front matter
    r"(?ms)^(`{3,})\{code-cell\}.*?^\1[ \t]*$",     # code cells
    r"(?m)^[ \t]*(`{3,}|:{3,}).*$",                  # directive fences (their Markdown stays)
    r"(?m)^[ \t]*:[\w-]+:.*$",                       # directive options
    r"(?s)<!--.*?-->",                               # comments
    r"(?s)\$\$.*?\$\$", r"\$[^$\n]+\$",              # math
    r"\{[^}\n]*\}`[^`]*`",                           # roles: {glue:text}`key:.2f`, {numref}`fig`
    r"`[^`\n]*`",                                    # inline code
    r"\]\([^)]*\)",                                  # link targets
]


def prose(text: str) -> str:
    """``text`` with everything but prose blanked out, line for line (line numbers stay)."""
    for pattern in NOT_PROSE:
        text = re.sub(pattern, lambda m: re.sub(r"[^\n]", " ", m.group(0)), text)
    return text


def numeric_glue(glue: dict) -> dict[str, float]:
    """The glue variables (from a ``.glue.json``) whose value is a number."""
    out = {}
    for key, output in glue.items():
        plain = output.get("data", {}).get("text/plain", "").strip()
        try:
            out[key] = float(plain.strip("'\""))
        except ValueError:
            continue
    return out


def settings(text: str) -> set[float]:
    """The numbers the lesson's code cells type as literals, outside ``assert`` statements."""
    found: set[float] = set()
    for cell in re.findall(r"(?ms)^(`{3,})\{code-cell\}[^\n]*\n(.*?)^\1[ \t]*$", text):
        source = re.sub(r"(?m)^([ \t]*)([%!])", r"\1# \2", cell[1])  # IPython magics
        source = re.sub(r"(?s)\A---\n.*?\n---\n", "", source)  # the cell's own options
        try:
            tree = ast.parse(source)
        except SyntaxError:
            continue
        asserted = {id(n) for a in ast.walk(tree) if isinstance(a, ast.Assert) for n in ast.walk(a)}
        found |= {abs(float(n.value)) for n in ast.walk(tree)
                  if isinstance(n, ast.Constant) and type(n.value) in (int, float)
                  and id(n) not in asserted}
    return found


def typed_copies(text: str, glued: dict[str, float]) -> list[str]:
    """Each typed decimal of the prose that a numeric glue variable holds at the typed precision,
    unless the code types it as a setting: ``"line N: 0.31 is best = 0.3127"``."""
    found, typed_in_code = [], settings(text)
    for number, line in enumerate(prose(text).splitlines(), 1):
        for match in DECIMAL.finditer(line):
            typed = match.group(1)
            if float(typed) in typed_in_code:
                continue
            places = len(typed.split(".")[1])
            keys = [k for k, v in glued.items() if f"{abs(v):.{places}f}" == typed]
            if keys:
                holders = ", ".join(f"{k} = {glued[k]:g}" for k in keys)
                found.append(f"line {number}: {typed} is {holders}")
    return found


# -- the rule can fail ---------------------------------------------------------------------------
PLANTED = """---
kernelspec:
  name: python3
---
# A lesson

The best rate was 0.31 on this task.

```{code-cell} ipython3
best = 0.3127  # code is not prose: 0.31
rates = [0.1, 0.4]
assert abs(best - 0.31) < 0.01
```

Tuned over 0.1 and 0.4, the best fixed rate was 0.4.

Pasted, it is {glue:text}`best:.2f`; a rate of $\\eta = 0.31$ is a setting; `0.31` is code.

```{solution} ex-1
In the run, the loss fell by 0.05.
```

```{solution-start} ex-2
```
The gap was 12.5 points.
```{solution-end}
```
"""


def test_the_rule_catches_a_planted_typed_copy():
    """Catches a rule that cannot fail: typed copies in a paragraph, a plain solution and a gated
    solution are found, at the precision typed; code, pastes, math and inline code are not."""
    glued = {"best": 0.3127, "drop": -0.0512, "gap": 12.46, "other": 0.3172, "best_rate": 0.4}
    assert typed_copies(PLANTED, glued) == [
        "line 7: 0.31 is best = 0.3127",  # an assert's literal is no setting
        "line 20: 0.05 is drop = -0.0512",
        "line 25: 12.5 is gap = 12.46",
    ]  # line 15: 0.1 and 0.4 are typed in the code as settings: not copies
    assert settings(PLANTED) == {0.3127, 0.1, 0.4}
    assert typed_copies(PLANTED, {"other": 0.3172}) == []  # 0.32 at two decimals, not 0.31


def test_numeric_glue_reads_what_myst_nb_writes():
    """Catches the reader missing numbers (int, float, a number glued as a string) or taking a
    sentence for one; the layout is the one myst-nb writes to ``NAME.glue.json``."""
    def out(plain):
        return {"data": {"text/plain": plain}, "metadata": {}, "output_type": "display_data"}

    glue = {"a": out("0.3127"), "b": out("12"), "c": out("'0.5'"), "d": out("'holds'"),
            "e": out("<Figure size 640x480 with 1 Axes>"), "f": out("-1e-05")}
    assert numeric_glue(glue) == {"a": 0.3127, "b": 12.0, "c": 0.5, "f": -1e-05}


# -- the lessons ---------------------------------------------------------------------------------
def test_the_lessons_were_executed():
    """Catches the check below passing because no build left the glue values behind."""
    assert LESSONS and EXECUTED.is_dir(), "run `make book` first"
    assert any((EXECUTED / p.relative_to(ROOT)).with_suffix(".glue.json").exists() for p in LESSONS)


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_no_typed_copy_of_a_glued_number(lesson):
    path = (EXECUTED / lesson.relative_to(ROOT)).with_suffix(".glue.json")
    glued = numeric_glue(json.loads(path.read_text(encoding="utf-8"))) if path.exists() else {}
    found = typed_copies(lesson.read_text(encoding="utf-8"), glued)
    assert not found, (f"{lesson.name} types numbers that it also glues; paste them with "
                       f"{{glue:text}}`key:.Nf` (or write a setting as math): " + "; ".join(found))
