"""The claims catalogue, verdicts, and the generated ledger page."""

import re
from pathlib import Path

import numpy as np
import pytest

from lessons_lib import claims

ROOT = Path(__file__).resolve().parents[1]
SHARED_CLAIMS = ROOT.parent / "shared" / "claims.md"


def test_catalogue_has_every_id_once_with_a_known_action():
    cat = claims.catalogue()
    assert len(cat) == 63
    assert all(c.action in claims.ACTIONS and c.text and c.sources for c in cat.values())
    prefixes = {cid.split("-")[0] for cid in cat}
    assert prefixes == {"LR", "TL", "SC", "OP", "HS", "BE", "TR"}


#: The IDs of ../shared/claims.md when the catalogue was written, for a checkout without ../shared.
EXPECTED_IDS = ([f"LR-{i}" for i in range(1, 9)] + [f"TL-{i}" for i in range(1, 11)]
                + [f"SC-{i}" for i in range(1, 9)] + [f"OP-{i}" for i in range(1, 11)]
                + [f"HS-{i}" for i in range(1, 9)] + [f"BE-{i}" for i in range(1, 10)]
                + [f"TR-{i}" for i in range(1, 11)])


def test_catalogue_covers_the_shared_claims_list():
    if SHARED_CLAIMS.exists():  # CI and the developers' checkouts have ../shared beside the repo
        ids = re.findall(r"^\| ([A-Z]{2}-\d+) \|", SHARED_CLAIMS.read_text(encoding="utf-8"), re.M)
    else:
        ids = EXPECTED_IDS
    assert list(claims.catalogue()) == ids == EXPECTED_IDS


def test_judge_truth_table():
    assert str(claims.judge(True)) == "holds"
    assert str(claims.judge(np.bool_(True))) == "holds"
    assert str(claims.judge(False, holds_when=True, condition="η < 2/λ")) == "holds only when η < 2/λ"
    assert str(claims.judge(False, holds_when=False, condition="x")) == "does not hold here"
    assert str(claims.judge(False)) == "does not hold here"


@pytest.mark.parametrize("bad", ["holds", 1, None, 0.5])
def test_judge_refuses_anything_but_a_measured_bool(bad):
    with pytest.raises(ValueError, match="holds must be a bool"):
        claims.judge(bad)


def test_judge_needs_a_condition_for_holds_only_when():
    with pytest.raises(ValueError, match="condition"):
        claims.judge(False, holds_when=True, condition=" ")


def test_record_checks_id_verdict_kind_and_evidence():
    claims.record("LR-4", claims.judge(True), "measured 3 numbers", glue=False)
    assert str(claims.recorded()["LR-4"].verdict) == "holds"
    with pytest.raises(ValueError, match="claim_id"):
        claims.record("XX-1", claims.judge(True), "e", glue=False)
    with pytest.raises(ValueError, match="verdict must be built"):
        claims.record("LR-4", "holds", "e", glue=False)
    with pytest.raises(ValueError, match="evidence"):
        claims.record("LR-4", claims.judge(True), "  ", glue=False)
    with pytest.raises(ValueError, match="claims.explained"):
        claims.record("LR-2", claims.judge(True), "e", glue=False)  # LR-2 is an explain claim
    with pytest.raises(ValueError, match="claims.judge"):
        claims.record("LR-4", claims.explained(), "e", glue=False)


def test_record_glues_bare_strings_for_the_ledger(capsys):
    from IPython.core.formatters import format_display_data

    claims.record("LR-3", claims.judge(False, holds_when=True, condition="λ = 1"), "ev", glue=True)
    bundle, _ = format_display_data(claims._Bare("holds only when λ = 1"))
    assert bundle["text/plain"] == "holds only when λ = 1"  # no quotes, so {glue:text} pastes it


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
    for name in ("a.md", "b.md"):
        (tmp_path / name).write_text('claims.record("LR-1", v, "e")\n', encoding="utf-8")
    with pytest.raises(ValueError, match="recorded by both"):
        claims.find_recordings(tmp_path)
