"""The claims catalogue, verdicts, and the generated ledger page.

The book tests from its own repository alone: the reference for the catalogue is the in-repo
``lessons_lib/data/claims.csv`` and the list of IDs below, not ``../shared/claims.md``.
"""

import os
import re
from pathlib import Path

import numpy as np
import pytest

from lessons_lib import claims

ROOT = Path(__file__).resolve().parents[1]


def test_catalogue_has_every_id_once_with_a_known_action():
    cat = claims.catalogue()
    assert len(cat) == 63
    assert all(c.action in claims.ACTIONS and c.text and c.sources for c in cat.values())
    prefixes = {cid.split("-")[0] for cid in cat}
    assert prefixes == {"LR", "TL", "SC", "OP", "HS", "BE", "TR"}


#: The IDs of the source articles' claims, in order, as the catalogue was written from them.
EXPECTED_IDS = ([f"LR-{i}" for i in range(1, 9)] + [f"TL-{i}" for i in range(1, 11)]
                + [f"SC-{i}" for i in range(1, 9)] + [f"OP-{i}" for i in range(1, 11)]
                + [f"HS-{i}" for i in range(1, 9)] + [f"BE-{i}" for i in range(1, 10)]
                + [f"TR-{i}" for i in range(1, 11)])


def test_catalogue_covers_every_claim_id_in_order():
    """Catches a claim dropped from, added to, or reordered in lessons_lib/data/claims.csv."""
    assert list(claims.catalogue()) == EXPECTED_IDS


def test_judge_truth_table():
    assert str(claims.judge(True)) == "holds"
    assert str(claims.judge(np.bool_(True))) == "holds"
    assert str(claims.judge(False, holds_when=True, condition="η < 2/λ")) == "holds only when η < 2/λ"
    assert str(claims.judge(False, holds_when=False, condition="x")) == "does not hold here"
    assert str(claims.judge(False)) == "does not hold here"


@pytest.mark.parametrize("bad", ["holds", 1, None, 0.5])
def test_judge_refuses_anything_but_a_measured_bool(bad):
    """Catches judge() taking a typed string or a number instead of a measured bool."""
    with pytest.raises(ValueError, match="^holds must be a bool computed from measurements, got "):
        claims.judge(bad)


def test_judge_needs_a_condition_for_holds_only_when():
    """Catches a 'holds only when' verdict without its condition."""
    with pytest.raises(ValueError, match="^condition must say when the claim holds, got an empty"):
        claims.judge(False, holds_when=True, condition=" ")


def test_record_checks_id_verdict_kind_and_evidence(monkeypatch):
    """Catches record() accepting an unknown ID, a typed verdict, empty evidence, or a verdict
    of the wrong kind for the claim (judged vs explained)."""
    monkeypatch.setattr(claims, "_recorded", {})  # leave no record behind for later tests
    claims.record("LR-4", claims.judge(True), "measured 3 numbers", glue=False)
    assert str(claims.recorded()["LR-4"].verdict) == "holds"
    with pytest.raises(ValueError, match=r"^claim_id must be one of the catalogue's IDs \(e\.g\. "):
        claims.record("XX-1", claims.judge(True), "e", glue=False)
    with pytest.raises(ValueError, match=r"^verdict must be built by claims\.judge\(\.\.\.\), "
                                         r".*claims\.explained\(\), got 'holds'"):
        claims.record("LR-4", "holds", "e", glue=False)
    with pytest.raises(ValueError, match="^evidence must be a non-empty sentence"):
        claims.record("LR-4", claims.judge(True), "  ", glue=False)
    with pytest.raises(ValueError, match=r"^verdict for LR-2 \(explain\) must come from "
                                         r"claims\.explained\(\)"):
        claims.record("LR-2", claims.judge(True), "e", glue=False)  # LR-2 is an explain claim
    with pytest.raises(ValueError, match=r"^verdict for LR-4 \(test\) must come from "
                                         r"claims\.judge\(\.\.\.\)"):
        claims.record("LR-4", claims.explained(), "e", glue=False)
    assert list(claims.recorded()) == ["LR-4"]  # a refused call records nothing


def test_the_ledger_pastes_what_record_glued(tmp_path):
    """Catches record() gluing nothing, gluing under a key the ledger does not paste, or gluing a
    text other than the verdict and the evidence, and the ledger pointing at another lesson.

    A Jupyter kernel runs a lesson's record() call, as the book build does; myst-nb's own reader
    takes the glued outputs out of the executed notebook; each {glue:text} paste of the ledger's
    row for the claim is then resolved the way myst-nb resolves it."""
    import nbformat
    from myst_nb.core.variables import format_plain_text
    from myst_nb.ext.glue import extract_glue_data_cell
    from nbclient import NotebookClient

    source = ("from lessons_lib import claims\n"
              'claims.record("LR-3", claims.judge(False, holds_when=True, condition="η < 2/λ"),\n'
              '              "measured in 2 of 3 runs")')
    book = tmp_path / "book"
    (book / "ch09").mkdir(parents=True)
    (book / "ch09" / "lesson.md").write_text(f"```{{code-cell}} ipython3\n{source}\n```\n",
                                              encoding="utf-8")
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source)])
    NotebookClient(notebook, timeout=120, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    cell = notebook.cells[0]
    glued = dict(extract_glue_data_cell(cell))  # also drops the hidden glue outputs from the cell

    ledger = claims.ledger_markdown(book)
    row = next(line for line in ledger.splitlines() if line.startswith("| LR-3 |"))
    pasted = {}
    for paste in re.findall(r"\{glue:text\}`([^`]*::claim-LR-3[^`]*)`", ledger):
        where, fmt = paste.rsplit(":", 1)
        doc, key = where.split("::")
        assert os.path.normpath(os.path.join("appendix", doc)) == os.path.join("ch09", "lesson.md")
        assert key in glued, f"the ledger pastes {key!r}; the lesson glued {sorted(glued)}"
        pasted[paste] = format_plain_text(glued[key]["data"]["text/plain"], fmt)
    assert sorted(pasted.values()) == ["holds only when η < 2/λ", "measured in 2 of 3 runs"]
    [in_row] = re.findall(r"\{glue:text\}`([^`]*)`", row)  # the table: the verdict alone
    assert pasted[in_row] == "holds only when η < 2/λ"
    # what the reader sees in the lesson: the record, once, with the same verdict
    [shown] = cell.outputs
    assert ("Verdict: **holds only when η < 2/λ**. measured in 2 of 3 runs"
            in shown.data["text/markdown"])


def test_ledger_page_is_in_sync_with_catalogue_and_lessons():
    book = ROOT / "book"
    committed = (book / "appendix" / "claims-ledger.md").read_text(encoding="utf-8")
    assert committed == claims.ledger_markdown(book), "run `make ledger` and commit the result"
    for cid in claims.catalogue():
        assert f"| {cid} |" in committed


def test_the_ledger_is_complete_every_claim_has_a_lesson_and_no_row_waits():
    """Catches a claim of the catalogue that no lesson records (its ledger row would read "not
    yet covered"), e.g. after a lesson was removed from the book or a claim added to the
    catalogue without an experiment: with chapter 7 written, every ID has a verdict."""
    book = ROOT / "book"
    where = claims.find_recordings(book)
    missing = [cid for cid in claims.catalogue() if cid not in where]
    assert not missing, f"no lesson records {missing}"
    committed = (book / "appendix" / "claims-ledger.md").read_text(encoding="utf-8")
    assert f"| {claims.NOT_COVERED} |" not in committed
    assert len(where) == len(claims.catalogue()) == 63


def test_the_landing_page_map_shows_every_chapter_written():
    """Catches the landing page's map still announcing a chapter as "in progress" or "to come",
    or losing a chapter's row: seven rows, each linking to its first lesson as "written"."""
    intro = (ROOT / "book" / "intro.md").read_text(encoding="utf-8")
    rows = [line for line in intro.splitlines() if re.match(r"\| [1-7]\. ", line)]
    assert [row.split(".")[0] for row in rows] == [f"| {n}" for n in range(1, 8)]
    for row in rows:
        status = row.rstrip(" |").rsplit("|", 1)[1].strip()
        assert re.fullmatch(r"\{ref\}`written <ch0[1-7]-[a-z-]+>`", status), row


def test_ledger_layout_one_compact_row_per_claim_and_the_evidence_under_each_table():
    """Catches the ledger growing back to a table too wide for the page (more than four columns,
    the evidence in the table), a row whose verdict or link points at another claim or lesson, a
    recorded claim whose evidence is not in its chapter's dropdown, and the counts box gone."""
    book = ROOT / "book"
    where = claims.find_recordings(book)
    text = claims.ledger_markdown(book)
    assert text.count("```{container} ledger-counts") == 1
    sections = re.split(r"^## Chapter (\d+)$", text, flags=re.M)[1:]
    chapters = {c.chapter for c in claims.catalogue().values()}
    assert [int(n) for n in sections[::2]] == sorted(chapters)
    for number, section in zip(sections[::2], sections[1::2], strict=True):
        table = [line for line in section.splitlines() if line.startswith("|")]
        assert table[:2] == ["| ID | claim | verdict | lesson |", "|---|---|---|---|"]
        ids = [c.id for c in claims.catalogue().values() if c.chapter == int(number)]
        for cid, line in zip(ids, table[2:], strict=True):
            cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
            assert len(cells) == 4 and cells[0] == cid, line
            assert "(000" not in cells[1] and "evidence" not in line, "sources/evidence in table"
            if cid in where:
                lesson = f"../{where[cid]}"
                assert cells[2] == f"{{glue:text}}`{lesson}::claim-{cid}:s`"
                assert cells[3] == f"{{doc}}`{lesson.removesuffix('.md')}`"
                assert f"{{glue:text}}`{lesson}::claim-{cid}-evidence:s`" in section, cid
            else:
                assert cells[2] == claims.NOT_COVERED
        has_dropdown = ":class: dropdown" in section
        assert has_dropdown == any(cid in where for cid in ids), f"chapter {number}"


def test_the_legend_explains_every_kind_a_verdict_can_have():
    """Catches a verdict kind added to claims.KINDS without its meaning (and its label colour)."""
    from lessons_lib import _ledger

    assert tuple(claims.MEANINGS) == (*claims.KINDS, claims.NOT_COVERED)
    assert set(_ledger.COLOURS) == set(claims.MEANINGS)


def _luminance(colour: str) -> float:
    """WCAG 2 relative luminance of a #RRGGBB colour."""
    channels = [int(colour[i:i + 2], 16) / 255 for i in (1, 3, 5)]
    r, g, b = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def test_the_labels_are_readable():
    """Catches a label colour whose text falls below WCAG AA contrast (4.5:1)."""
    from lessons_lib import _ledger

    for kind, (background, text) in _ledger.COLOURS.items():
        if background == "transparent":
            continue  # outlined, in the page's own text colour
        light, dark = sorted((_luminance(background), _luminance(text)), reverse=True)
        assert (light + 0.05) / (dark + 0.05) >= 4.5, kind


@pytest.mark.parametrize("text, kind", [
    ("holds", "holds"),
    ("holds only when η < 2/λ", "holds only when"),  # not read as "holds"
    ("does not hold here", "does not hold here"),
    ("not shown at this scale (paired 95 % interval [-0.1, 0.2])", "not shown at this scale"),
    ("shown", "shown"), ("explained", "explained"), ("not yet covered", "not yet covered"),
    (" holds\n only when  x", "holds only when"),
    ("holdsworth", None), ("", None), ("verdict: holds", None),
])
def test_verdict_kind_reads_the_kind_a_verdict_starts_with(text, kind):
    from lessons_lib import _ledger

    assert _ledger.verdict_kind(text)[0] == kind


def _ledger_doctree(verdicts):
    """A doctree shaped like the built ledger: a counts box and one table, verdicts pasted."""
    from docutils import nodes
    from docutils.frontend import get_default_settings
    from docutils.parsers.rst import Parser
    from docutils.utils import new_document

    def row(*cells, entry=nodes.entry):
        return nodes.row("", *[entry("", nodes.paragraph("", "", nodes.inline(c, c)))
                               for c in cells])

    doc = new_document("ledger", get_default_settings(Parser))
    doc += nodes.container("", nodes.paragraph("", "Covered so far"), classes=["ledger-counts"])
    head = nodes.thead("", row("ID", "claim", "verdict", "lesson"))
    body = nodes.tbody("", *[row(f"XX-{i}", "a claim", v, "a lesson")
                             for i, v in enumerate(verdicts)])
    doc += nodes.table("", nodes.tgroup("", *[nodes.colspec() for _ in range(4)], head, body))
    return doc


def test_the_extension_labels_each_verdict_and_counts_them():
    """Catches a label whose class is not its verdict's kind, a count that misses a row, and the
    counts box left unfilled."""
    from docutils import nodes

    from lessons_lib import _ledger

    def with_class(tree, name):
        return [n for n in tree.findall(nodes.Element) if name in n["classes"]]

    verdicts = ["holds", "holds only when a < b", "holds", "not yet covered",
                "not shown at this scale (interval [-1, 2])", "explained"]
    doc = _ledger_doctree(verdicts)
    _ledger.label_the_ledger(None, doc, "ledger")
    labels = with_class(doc, "verdict")
    in_table = [n for n in labels if isinstance(n.parent.parent, nodes.entry)]
    assert [n.astext() for n in in_table] == [_ledger.verdict_kind(v)[0] for v in verdicts]
    assert all(_ledger.slug(n.astext()) in n["classes"] for n in labels)
    [box] = with_class(doc, "ledger-counts")
    counts = {c[0].astext(): int(c[1].astext()) for c in with_class(box, "ledger-count")}
    assert counts == {"holds": 2, "holds only when": 1, "does not hold here": 0,
                      "not shown at this scale": 1, "shown": 0, "explained": 1,
                      "not yet covered": 1}
    assert box.astext().endswith(f"{len(verdicts)} claims in all")


def test_the_extension_labels_a_verdict_pasted_in_prose():
    """Catches a pasted verdict outside the ledger's table losing its condition, or its label."""
    from docutils import nodes

    from lessons_lib import _ledger

    text = "holds only when η < 2/λ (here)"
    paste = nodes.inline("", "", nodes.inline(text, text, classes=["pasted-text"]),
                         classes=[_ledger.VERDICT_PASTE])
    doc = nodes.paragraph("", "Verdict: ", paste, nodes.Text("."))
    _ledger.label_pasted_verdicts(None, doc, "checklist")
    assert doc.astext() == f"Verdict: {text}."
    assert paste[0]["classes"] == ["verdict", "verdict-holds-only-when"]
    assert paste[0].astext() == "holds only when"


def test_the_extension_labels_japanese_verdicts_in_japanese():
    """The Japanese edition: verdicts pasted in Japanese (kind name, then "：" or "（") are read
    by kind, labelled with the kind's Japanese name and the kind's colour, and counted."""
    from types import SimpleNamespace

    from docutils import nodes

    from lessons_lib import _i18n, _ledger

    japanese = SimpleNamespace(config=SimpleNamespace(language="ja"))
    verdicts = ["成り立つ", "条件付きで成り立つ：a < b の場合", "この規模では示されず（区間 [-1, 2]）",
                "解説済み"]
    doc = _ledger_doctree(verdicts)
    _ledger.label_the_ledger(japanese, doc, "ledger")
    labels = [n for n in doc.findall(nodes.inline) if "verdict" in n["classes"]]
    kinds = ["holds", "holds only when", claims.NOT_SHOWN, "explained"]
    in_table = [n for n in labels if isinstance(n.parent.parent, nodes.entry)]
    assert [n.astext() for n in in_table] == [_i18n.KINDS_JA[k] for k in kinds]
    assert [n["classes"][1] for n in in_table] == [_ledger.slug(k) for k in kinds]
    assert f"全 {len(verdicts)} 件の主張" in doc.astext()

    text = "条件付きで成り立つ：η < 2/λ の場合"
    paste = nodes.inline("", "", nodes.inline(text, text), classes=[_ledger.VERDICT_PASTE])
    prose = nodes.paragraph("", "判定：", paste)
    _ledger.label_pasted_verdicts(japanese, prose, "checklist")
    assert prose.astext() == f"判定：{text}"
    assert paste[0]["classes"] == ["verdict", "verdict-holds-only-when"]


def test_a_page_that_pastes_is_read_again_when_a_lesson_changed(tmp_path):
    """Catches the stale ledger of an incremental build: Sphinx re-reads only changed sources, and
    the ledger's source does not change when a lesson's verdict does."""
    from types import SimpleNamespace

    from lessons_lib import _ledger

    pages = {"ledger": "| LR-1 | {glue:text}`../ch01/a.md::claim-LR-1:s` |\n",
             "checklist": "```{glue:figure} ../ch01/a.md::claim-LR-1-figure\n```\n",
             "lesson": "Same page: {glue:text}`best:.2f`, {ref}`x::y` is no paste.\n"}
    for name, text in pages.items():
        (tmp_path / f"{name}.md").write_text(text, encoding="utf-8")
    env = SimpleNamespace(found_docs=set(pages), doc2path=lambda doc: tmp_path / f"{doc}.md")
    assert _ledger.repaste_when_a_page_changes(None, env, set(), {"lesson"}, set()) == [
        "checklist", "ledger"]
    assert _ledger.repaste_when_a_page_changes(None, env, set(), {"ledger"}, set()) == ["checklist"]
    assert _ledger.repaste_when_a_page_changes(None, env, set(), set(), set()) == []


def test_the_extension_warns_about_a_verdict_of_no_kind(monkeypatch):
    """Catches an unresolved or mistyped verdict passing silently (under -W it fails the build)."""
    from lessons_lib import _ledger

    doc = _ledger_doctree(["holds", "Glue reference not found"])
    warned = []
    monkeypatch.setattr(_ledger.logger, "warning", lambda msg, **kw: warned.append(msg))
    _ledger.label_the_ledger(None, doc, "ledger")
    assert len(warned) == 1 and "XX-1" in warned[0] and "Glue reference not found" in warned[0]


def test_every_recorded_claim_in_a_lesson_has_its_margin_note():
    where = claims.find_recordings(ROOT / "book")
    assert {"LR-1", "LR-4", "LR-7"} <= set(where)
    for cid, lesson in where.items():
        text = (ROOT / "book" / lesson).read_text(encoding="utf-8")
        named = re.search(rf"^:::+\{{margin\}} Claims? (.*, )?{cid}(,|$| )", text, re.MULTILINE)
        assert named, f"{lesson} records {cid} but no margin note names it for the reader"


def test_a_claim_recorded_twice_is_refused(tmp_path):
    """Catches two lessons recording the same claim without an error."""
    for name in ("a.md", "b.md"):
        (tmp_path / name).write_text('claims.record("LR-1", v, "e")\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"^LR-1 is recorded by both a\.md and b\.md"):
        claims.find_recordings(tmp_path)


# --- intervals over seeds: the one implementation the lessons use -----------------------------

@pytest.mark.parametrize("n, confidence", [(3, 0.95), (10, 0.95), (20, 0.9), (7, 0.99)])
def test_paired_interval_equals_scipys_paired_t_interval(n, confidence):
    """Catches a wrong t quantile, a ddof=0 spread or an unpaired (two-sample) interval."""
    from scipy import stats

    rng = np.random.default_rng(n)
    a, b = rng.normal(size=n), rng.normal(size=n) + 0.3 * rng.normal(size=n)
    got = claims.paired_interval(a, b, confidence=confidence)
    ref = stats.ttest_rel(a, b).confidence_interval(confidence)
    assert got.mean == pytest.approx(np.mean(a - b), rel=1e-12)
    assert (got.low, got.high) == pytest.approx((ref.low, ref.high), rel=1e-10)
    one = claims.mean_interval(a - b, confidence=confidence)
    assert tuple(one) == pytest.approx(tuple(got), rel=1e-12)
    ref1 = stats.ttest_1samp(a, 0).confidence_interval(confidence)
    assert tuple(claims.mean_interval(a, confidence=confidence))[1:] == pytest.approx(
        (ref1.low, ref1.high), rel=1e-10)


def test_ratio_interval_is_the_geometric_mean_with_scipys_t_interval_of_the_logs():
    """Catches an arithmetic mean of ratios, or an interval not taken back from the logs."""
    from scipy import stats

    ratios = np.array([23.6, 31.0, 13.8, 18.4])
    got = claims.ratio_interval(ratios)
    ref = stats.ttest_1samp(np.log(ratios), 0).confidence_interval(0.95)
    assert got.mean == pytest.approx(stats.gmean(ratios), rel=1e-12)
    assert (got.low, got.high) == pytest.approx((np.exp(ref.low), np.exp(ref.high)), rel=1e-10)
    # one seed far out moves the geometric interval much less than the arithmetic one
    wild = np.array([5.9, 114.1, 52.7, 200.5])
    assert claims.ratio_interval(wild).low > 2 > claims.mean_interval(wild).low
    assert claims.ratio_interval([2.0, 0.5]).mean == pytest.approx(1.0)
    for bad in ([1.0, 0.0], [1.0, -2.0], [1.0, np.inf]):
        with pytest.raises(ValueError, match="ratios must be positive finite numbers"):
            claims.ratio_interval(bad)


def test_interval_reads_its_side_of_zero_and_of_a_threshold():
    """Catches a side() that treats an interval touching zero as clear of it, or swapped words."""
    above, below, across = (claims.Interval(2.0, 1.0, 3.0), claims.Interval(-2.0, -3.0, -1.0),
                            claims.Interval(0.5, -1.0, 2.0))
    assert (above.side(), below.side(), across.side()) == (1, -1, 0)
    assert claims.Interval(0.5, 0.0, 1.0).side() == 0
    assert [iv.words("lower", "higher", "same") for iv in (above, below, across)] == [
        "higher", "lower", "same"]
    assert (above.below(3.0), above.below(0.5), above.below(2.0)) == (True, False, None)
    assert across.format("+.1f") == "+0.5 [-1.0, +2.0]"
    mean, low, high = above                      # unpacks as (mean, low, high)
    assert (mean, low, high) == (2.0, 1.0, 3.0)


@pytest.mark.parametrize("call, match", [
    (lambda: claims.paired_interval([1, 2, 3], [1, 2]), r"a and b must have the same shape"),
    (lambda: claims.mean_interval([1.0]), r"values must hold at least 2 numbers"),
    (lambda: claims.mean_interval([1.0, np.nan]), r"values must be finite"),
    (lambda: claims.mean_interval([1.0, 2.0], confidence=1.5), r"confidence must be in \(0, 1\)"),
])
def test_interval_rejects_bad_input_by_name(call, match):
    with pytest.raises(ValueError, match=f"^{match}"):
        call()
