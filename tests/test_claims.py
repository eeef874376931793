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

    row = next(line for line in claims.ledger_markdown(book).splitlines()
               if line.startswith("| LR-3 |"))
    pasted = []
    for paste in re.findall(r"\{glue:text\}`([^`]*)`", row):
        where, fmt = paste.rsplit(":", 1)
        doc, key = where.split("::")
        assert os.path.normpath(os.path.join("appendix", doc)) == os.path.join("ch09", "lesson.md")
        assert key in glued, f"the ledger pastes {key!r}; the lesson glued {sorted(glued)}"
        pasted.append(format_plain_text(glued[key]["data"]["text/plain"], fmt))
    assert pasted == ["holds only when η < 2/λ", "measured in 2 of 3 runs"]
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
