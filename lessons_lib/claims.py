"""The claims ledger: which claim of the source articles each lesson tested, and what it found.

The book keeps its own catalogue of the claims (``lessons_lib/data/claims.csv``: ID, chapter,
source articles, what the book must do, the claim in one line). A lesson that tests a claim

1. measures something and ``assert``-s the numbers its text states;
2. turns the *same* measured booleans into a verdict with :func:`judge` (never a string typed by
   hand): ``holds``, ``holds only when …`` or ``does not hold here`` — or :func:`not_shown` when
   the effect stays inside the noise between seeds. A verdict must have been able to fail: a
   demonstration whose outcome was settled before the run gets :func:`shown`, an "explain" claim
   :func:`explained`;
3. calls :func:`record`, which shows the verdict in the lesson and glues it (myst-nb ``glue``)
   under the keys ``claim-<ID>`` and ``claim-<ID>-evidence``.

The appendix page *Claims ledger* is generated from the catalogue and from the lessons' sources
(:func:`write_ledger`): for each ID it pastes the glued verdict from the lesson that records it
(``{glue:text}`path::key```). Sphinx resolves those pastes after every page has been executed, so
the ledger does not depend on the order in which pages run; the Sphinx extension
:mod:`lessons_lib._ledger` then turns each verdict into a coloured label and counts them.
"""

from __future__ import annotations

import csv
import html
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import NamedTuple

ACTIONS = ("demo", "test", "explain", "explain+demo", "explain+test")
NOT_SHOWN = "not shown at this scale"
#: Verdicts, from what could have failed to what could not: a test decided by the run ("holds",
#: "holds only when …", "does not hold here", "not shown at this scale" when the effect stays inside
#: the noise), a demonstration or definition that nothing was at stake in ("shown"), and a
#: definition or published fact with its source ("explained").
KINDS = ("holds", "holds only when", "does not hold here", NOT_SHOWN, "shown", "explained")
_RECORD_CALL = re.compile(r"""claims\.record\(\s*["']([A-Z]{2}-\d+)["']""")
_recorded: dict[str, "Record"] = {}


@dataclass(frozen=True)
class Claim:
    """One claim of the source articles, in the book's own words."""

    id: str
    chapter: int
    sources: tuple[str, ...]
    action: str
    text: str


@lru_cache(maxsize=1)
def catalogue() -> dict[str, Claim]:
    """Every claim the book must cover, keyed by ID, in the catalogue's order."""
    rows = resources.files("lessons_lib").joinpath("data/claims.csv").read_text(encoding="utf-8")
    out: dict[str, Claim] = {}
    for row in csv.DictReader(rows.splitlines()):
        if row["action"] not in ACTIONS:
            raise ValueError(f"claims.csv: action of {row['id']} must be one of {ACTIONS}")
        out[row["id"]] = Claim(row["id"], int(row["chapter"]), tuple(row["sources"].split()),
                               row["action"], row["claim"])
    return out


@dataclass(frozen=True)
class Verdict:
    """What an experiment found about a claim. Build it with :func:`judge` or :func:`explained`."""

    kind: str  # one of KINDS
    condition: str = ""

    def __str__(self) -> str:
        if self.kind == "holds only when":
            return f"holds only when {self.condition}"
        if self.kind == NOT_SHOWN:
            return f"{NOT_SHOWN} ({self.condition})"
        return self.kind


def judge(holds: bool, *, holds_when: bool | None = None, condition: str = "") -> Verdict:
    """Turn measured facts into a verdict.

    ``holds`` : does the claim hold as the article states it, in the experiment?
    ``holds_when`` / ``condition`` : if not, does it hold under ``condition`` (a restriction the
    experiment also measured, e.g. ``"η < 2/λmax"``)?

    ============  ==============  =====================================
    holds         holds_when      verdict
    ============  ==============  =====================================
    True          (ignored)       holds
    False         True            holds only when <condition>
    False         False / None    does not hold here
    ============  ==============  =====================================
    """
    holds, holds_when = _as_bool("holds", holds), holds_when
    if holds:
        return Verdict("holds")
    if holds_when is not None and _as_bool("holds_when", holds_when):
        if not condition.strip():
            raise ValueError("condition must say when the claim holds, got an empty string")
        return Verdict("holds only when", condition.strip())
    return Verdict("does not hold here")


def explained() -> Verdict:
    """The verdict of an "explain" claim: a definition or a published fact, shown and sourced."""
    return Verdict("explained")


def shown() -> Verdict:
    """The verdict of a demonstration: the lesson shows the claim at work (a definition, a formula
    checked against itself, a picture), but no outcome was open before the run. Use it instead of
    :func:`judge` whenever the "test" could not have failed."""
    return Verdict("shown")


def not_shown(interval: str) -> Verdict:
    """The verdict of a test whose effect did not clear the noise between seeds.

    ``interval``: the measured interval, in words built from the numbers (e.g. ``"paired 95 %
    interval of the gain: [-0.02, 0.05]"``); the verdict reads "not shown at this scale (…)".
    """
    if not isinstance(interval, str) or not interval.strip():
        raise ValueError("interval must state the measured interval, got an empty string")
    return Verdict(NOT_SHOWN, interval.strip())


class Interval(NamedTuple):
    """A mean over seeds and its confidence interval: ``(mean, low, high)``; unpacks as a tuple."""

    mean: float
    low: float
    high: float

    def side(self) -> int:
        """+1 if the whole interval lies above zero, -1 if below, 0 if it contains zero."""
        return 1 if self.low > 0 else -1 if self.high < 0 else 0

    def words(self, below: str, above: str, inside: str) -> str:
        """One of three phrases, chosen by :meth:`side` (for text built from the measurement)."""
        return {-1: below, 1: above, 0: inside}[self.side()]

    def below(self, threshold: float) -> bool | None:
        """True if the whole interval lies at or below ``threshold``, False if it lies above it,
        None if it straddles it (the measurement cannot tell)."""
        return True if self.high <= threshold else False if self.low > threshold else None

    def format(self, spec: str = "+.3f") -> str:
        """``"mean [low, high]"`` with each number formatted by ``spec``."""
        return f"{self.mean:{spec}} [{self.low:{spec}}, {self.high:{spec}}]"


def mean_interval(values, *, confidence: float = 0.95) -> Interval:
    r"""The mean of ``values`` (one per seed) with its Student-t confidence interval.

    .. math:: \bar x \pm t_{(1+c)/2,\;n-1}\, \frac{s}{\sqrt n},
       \qquad s^2 = \frac{1}{n-1}\sum_i (x_i - \bar x)^2 .

    The same interval as ``scipy.stats.ttest_1samp(values, 0).confidence_interval(c)``.
    """
    import numpy as np
    from scipy import stats

    x = np.asarray(values, dtype=float).ravel()
    if x.size < 2:
        raise ValueError(f"values must hold at least 2 numbers (one per seed), got {x.size}")
    if not np.all(np.isfinite(x)):
        raise ValueError("values must be finite numbers, got NaN or inf")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    mean = float(x.mean())
    half = float(stats.t.ppf(0.5 + confidence / 2, x.size - 1) * x.std(ddof=1) / np.sqrt(x.size))
    return Interval(mean, mean - half, mean + half)


def ratio_interval(ratios, *, confidence: float = 0.95) -> Interval:
    r"""The geometric mean of per-seed ``ratios`` with its confidence interval: the Student-t
    interval of their logarithms (:func:`mean_interval`), taken back by the exponential.

    .. math:: \exp\Big(\overline{\ln r} \pm t_{(1+c)/2,\;n-1}\, \frac{s_{\ln r}}{\sqrt n}\Big)

    For ratios this is the fair average: a run that ends 100 times worse and one that ends 100
    times better cancel, and one seed whose run nearly diverged does not swamp the others as it
    does in the arithmetic mean. Raises ``ValueError`` unless every ratio is positive and finite.
    """
    import numpy as np

    r = np.asarray(ratios, dtype=float).ravel()
    if not np.all(np.isfinite(r) & (r > 0)):
        raise ValueError(f"ratios must be positive finite numbers (one per seed), got {r.tolist()}")
    log = mean_interval(np.log(r), confidence=confidence)
    return Interval(*(float(np.exp(v)) for v in log))


def paired_interval(a, b, *, confidence: float = 0.95) -> Interval:
    """Paired comparison over seeds: the mean of the per-seed differences ``a - b`` and its t
    interval (:func:`mean_interval` of the differences; equal to ``scipy.stats.ttest_rel(a, b)
    .confidence_interval(c)``). Pair by seed: run ``a`` and ``b`` with the same seeds, in order."""
    import numpy as np

    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"a and b must have the same shape (one value per seed), got {a.shape} "
                         f"and {b.shape}")
    return mean_interval(a - b, confidence=confidence)


@dataclass(frozen=True)
class Record:
    """A verdict recorded for a claim, with the measured evidence in one sentence."""

    claim: Claim
    verdict: Verdict
    evidence: str

    def _repr_markdown_(self) -> str:
        return (f"**Claim {self.claim.id}** ({self.claim.action}) — *{self.claim.text}*  \n"
                f"Verdict: **{self.verdict}**. {self.evidence}")

    def __repr__(self) -> str:
        return f"Claim {self.claim.id}: {self.verdict}. {self.evidence}"


class _Bare(str):
    """A string whose repr has no quotes, so that ``{glue:text}`` pastes it as it is."""

    def __repr__(self) -> str:
        return str(self)

    def _repr_html_(self) -> str:
        return html.escape(str(self))


def record(claim_id: str, verdict: Verdict, evidence: str, *, figure=None, glue: bool = True) -> None:
    """Record ``verdict`` for ``claim_id``, show it, and glue it for the claims ledger.

    ``verdict`` must come from :func:`judge` or :func:`explained`; ``evidence`` is one sentence
    with the measured numbers. An "explain" claim may only be ``explained()``; a demo or test
    claim must be judged. The record is kept in :func:`recorded`; nothing is returned, so that
    the call at the end of a cell does not show it twice.

    ``figure``: optionally the matplotlib figure that shows the evidence best; it is glued as
    ``claim-<ID>-figure`` so that another page (the appendix's "which rate?" checklist) can paste
    it with ``{glue:figure}`` and stay in step with the lesson.
    """
    claims = catalogue()
    if claim_id not in claims:
        raise ValueError(f"claim_id must be one of the catalogue's IDs (e.g. 'LR-1'), got {claim_id!r}")
    if not isinstance(verdict, Verdict) or verdict.kind not in KINDS:
        raise ValueError("verdict must be built by claims.judge(...), claims.not_shown(...), "
                         f"claims.shown() or claims.explained(), got {verdict!r}")
    if not isinstance(evidence, str) or not evidence.strip():
        raise ValueError("evidence must be a non-empty sentence with the measured numbers")
    claim = claims[claim_id]
    if (verdict.kind == "explained") != (claim.action == "explain"):
        wanted = ("claims.explained()" if claim.action == "explain"
                  else "claims.judge(...), claims.not_shown(...) or claims.shown()")
        raise ValueError(f"verdict for {claim_id} ({claim.action}) must come from {wanted}")
    rec = Record(claim, verdict, evidence.strip())
    _recorded[claim_id] = rec
    if glue:
        from IPython.display import display
        from myst_nb import glue as nb_glue

        nb_glue(f"claim-{claim_id}", _Bare(str(verdict)), display=False)
        nb_glue(f"claim-{claim_id}-evidence", _Bare(rec.evidence), display=False)
        if figure is not None:
            nb_glue(f"claim-{claim_id}-figure", figure, display=False)
        display(rec)


def recorded() -> dict[str, Record]:
    """The records made so far in this Python process (a lesson checks its own at the end)."""
    return dict(_recorded)


def find_recordings(book_dir: str | Path) -> dict[str, str]:
    """Map each claim ID to the lesson (path relative to ``book_dir``) whose source records it.

    Raises ``ValueError`` if an ID is recorded by two lessons or is not in the catalogue.
    """
    book_dir = Path(book_dir)
    where: dict[str, str] = {}
    for path in sorted(book_dir.rglob("*.md")):
        if "_build" in path.parts:
            continue
        for claim_id in _RECORD_CALL.findall(path.read_text(encoding="utf-8")):
            rel = path.relative_to(book_dir).as_posix()
            if claim_id not in catalogue():
                raise ValueError(f"{rel} records {claim_id}, which is not in the catalogue")
            if where.get(claim_id, rel) != rel:
                raise ValueError(f"{claim_id} is recorded by both {where[claim_id]} and {rel}")
            where[claim_id] = rel
    return where


#: The label of a claim that no lesson records yet (the ledger's seventh kind of row).
NOT_COVERED = "not yet covered"
#: What each verdict means, for the ledger's legend, in the order the ledger counts them.
MEANINGS = {
    "holds": "the experiment could have refuted the claim and did not",
    "holds only when": "true only under the condition that the experiment found",
    "does not hold here": "our experiment contradicts the claim",
    NOT_SHOWN: "the effect did not clear the noise between seeds; the interval is given",
    "shown": "a demonstration or a definition at work: nothing was at stake in the run",
    "explained": "a definition or a published fact, explained with its source",
    NOT_COVERED: "the chapter that tests it is not written yet",
}


def ledger_markdown(book_dir: str | Path, page: str = "appendix/claims-ledger.md") -> str:
    """The source of the claims-ledger page.

    One compact table per chapter (ID, claim, verdict, lesson) and, under it, a dropdown with each
    recorded claim's full verdict and its evidence. The verdicts are ``{glue:text}`` pastes from
    the lessons; the Sphinx extension :mod:`lessons_lib._ledger` turns each verdict cell into a
    coloured label and fills the ``ledger-counts`` box with the count per verdict, once the pastes
    are resolved (the counts cannot be known before the lessons run).
    """
    where = find_recordings(book_dir)
    up = Path(*[".."] * len(Path(page).parent.parts))
    chapters: dict[int, list[Claim]] = {}
    for claim in catalogue().values():
        chapters.setdefault(claim.chapter, []).append(claim)
    covered = sum(c in where for c in catalogue())
    lines = [
        "<!-- Generated by `make ledger` (python -m lessons_lib.claims book); do not edit. -->",
        "(claims-ledger)=",
        "# Claims ledger",
        "",
        "Every claim of the five source articles, in our words, with the verdict that the executed "
        "lesson computed from its own measurements. The verdicts are pasted from the lessons when "
        "the book is built; none is typed in by hand. Under each chapter's table, one click shows "
        "every verdict in full with the evidence behind it.",
        "",
        "```{container} ledger-counts",
        f"Covered so far: {covered} of {len(catalogue())} claims.",
        "```",
        "",
        ":::{admonition} What the verdicts mean",
        ":class: dropdown",
        "",
        *[f"*{kind}*\n: {meaning}\n" for kind, meaning in MEANINGS.items()],
        ":::",
        "",
    ]
    for chapter, claims in chapters.items():
        lines += [f"## Chapter {chapter}", "", "| ID | claim | verdict | lesson |",
                  "|---|---|---|---|"]
        evidence = []
        for c in claims:
            text = c.text.replace("|", "\\|")
            if c.id not in where:
                lines.append(f"| {c.id} | {text} | {NOT_COVERED} | chapter {chapter}: to come |")
                continue
            lesson = (up / where[c.id]).as_posix()
            paste = f"{{glue:text}}`{lesson}::claim-{c.id}"
            link = f"{{doc}}`{lesson.removesuffix('.md')}`"
            lines.append(f"| {c.id} | {text} | {paste}:s` | {link} |")
            evidence += [f"**{c.id}** · {paste}:s`",
                         f": {paste}-evidence:s` ({c.action}; articles {', '.join(c.sources)})", ""]
        lines.append("")
        if evidence:
            title = f"Chapter {chapter}: every verdict in full, with its evidence"
            lines += [f":::{{admonition}} {title}",
                      ":class: dropdown", "", *evidence, ":::", ""]
    return "\n".join(lines)


def write_ledger(book_dir: str | Path, page: str = "appendix/claims-ledger.md") -> Path:
    """Write :func:`ledger_markdown` to ``book_dir/page`` (only if it changed); return the path."""
    path = Path(book_dir) / page
    text = ledger_markdown(book_dir, page)
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        path.write_text(text, encoding="utf-8")
    return path


def _as_bool(name: str, value) -> bool:
    import numpy as np

    if not isinstance(value, bool | np.bool_):
        raise ValueError(f"{name} must be a bool computed from measurements, got {value!r}")
    return bool(value)


if __name__ == "__main__":
    import sys

    print(write_ledger(sys.argv[1] if len(sys.argv) > 1 else "book"))
