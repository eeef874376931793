"""lessons_lib._i18n: computed text translated by templates, catalogues merged, the Japanese
edition's configuration. (The built editions are checked in tests/site/test_japanese_edition.py.)"""

import pytest
import yaml
from babel.messages.catalog import Catalog
from babel.messages.pofile import read_po, write_po

from lessons_lib import _i18n, _ledger, claims
from lessons_lib._i18n import Computed, MissingTranslation


@pytest.mark.parametrize("text, expected, numbers", [
    ("gain +32.9 points at k = 1", "gain ⟨0⟩ points at k = ⟨1⟩", ["+32.9", "1"]),
    ("[-0.010, +0.035]", "[⟨0⟩, ⟨1⟩]", ["-0.010", "+0.035"]),
    ("1e-3 and 3e+2, 1,626 weights", "⟨0⟩ and ⟨1⟩, ⟨2⟩ weights", ["1e-3", "3e+2", "1,626"]),
    ("TR-5 with L2 and w_10", "TR-5 with L2 and w_10", []),  # parts of names are not numbers
    ("2.8× as sharp, 96.8%", "⟨0⟩× as sharp, ⟨1⟩%", ["2.8", "96.8"]),
    ("k ∈ {1, 3, 30}", "k ∈ {⟨0⟩, ⟨1⟩, ⟨2⟩}", ["1", "3", "30"]),
    ("falls by −0.5 (x = -2)", "falls by ⟨0⟩ (x = ⟨1⟩)", ["−0.5", "-2"]),
    ("3 epochs", "⟨0⟩ epochs", ["3"]),
])
def test_template_replaces_each_number_by_a_slot(text, expected, numbers):
    assert _i18n.template(text) == (expected, numbers)
    assert _i18n.fill(expected, numbers) == text


def test_fill_puts_numbers_in_any_order_and_rejects_unknown_slots():
    assert _i18n.fill("⟨1⟩ から ⟨0⟩", ["2", "5"]) == "5 から 2"
    with pytest.raises(ValueError, match="slot ⟨2⟩"):
        _i18n.fill("⟨2⟩", ["1", "2"])


@pytest.mark.parametrize("text, words", [("⟨0⟩ [⟨1⟩, ⟨2⟩]", False), ("⟨0⟩×", False),
                                         ("η = ⟨0⟩", False), ("none", True), ("⟨0⟩ seeds", True)])
def test_has_words(text, words):
    assert _i18n.has_words(text) is words


@pytest.mark.parametrize("text, split", [
    ("holds", ("holds", "")),
    ("holds only when η < 2/λ", ("holds only when", "η < 2/λ")),
    ("does not hold here", ("does not hold here", "")),
    ("not shown at this scale (paired interval [-1, 2])", (claims.NOT_SHOWN, "paired interval [-1, 2]")),
    ("holdsworth", None), ("", None),
])
def test_split_verdict(text, split):
    assert _i18n.split_verdict(text) == split


@pytest.mark.parametrize("text, found", [
    ("holds only when η < 2/λ", ("holds only when", "holds only when", "η < 2/λ")),
    ("条件付きで成り立つ：η < 2/λ", ("holds only when", "条件付きで成り立つ", "η < 2/λ")),
    ("この規模では示されず（区間 [-1, 2]）", (claims.NOT_SHOWN, "この規模では示されず", "区間 [-1, 2]")),
    ("成り立つ", ("holds", "成り立つ", "")),
    ("holdsworth", (None, None, None)),
])
def test_verdict_kind_reads_english_and_japanese_names(text, found):
    """One function finds a verdict's kind for the translation and for the claims ledger."""
    assert _i18n.verdict_kind(text) == found
    assert _ledger.verdict_kind(text) == found[:2]


def test_the_japanese_kinds_name_every_kind_once():
    assert set(_i18n.KINDS_JA) == set(claims.MEANINGS)
    assert len(set(_i18n.KINDS_JA.values())) == len(_i18n.KINDS_JA)
    assert set(_i18n.ACTIONS_JA) == set(claims.ACTIONS)


COMPUTED = Computed({
    "the head is kept: ⟨0⟩ points": "ヘッドを残す場合。⟨0⟩ ポイント",
    "paired ⟨0⟩ % interval [⟨1⟩, ⟨2⟩]": "対応のある ⟨0⟩ % 区間 [⟨1⟩, ⟨2⟩]",
    "Transfer shortens training.": "転移学習は学習を短くする。",
    "Updates to reach ⟨0⟩: ⟨1⟩": "⟨0⟩ に届くまでの更新：⟨1⟩",
    "none": "なし",
})


def test_phrase_translates_with_the_texts_own_numbers():
    assert COMPUTED.phrase("Updates to reach 0.711: 40") == "0.711 に届くまでの更新：40"
    assert COMPUTED.phrase("0.25 [0.1, 0.4]") == "0.25 [0.1, 0.4]"  # nothing to translate
    with pytest.raises(MissingTranslation, match="Updates to go"):
        COMPUTED.phrase("Updates to go: 4")
    with pytest.raises(MissingTranslation, match="slot ⟨1⟩"):  # a translation with a slot too many
        Computed({"⟨0⟩ left": "残り ⟨1⟩"}).phrase("3 left")


def test_an_untranslated_text_stays_english_and_is_listed(monkeypatch):
    """Not a build error: a lesson may compute another outcome on another machine (a timing, a
    number rounded the other way); the site tests decide whether that is allowed."""
    monkeypatch.setitem(_i18n._state, "computed", COMPUTED)
    monkeypatch.setitem(_i18n._state, "untranslated", {})
    assert _i18n.translate_computed("holds only when the head is kept: 3 points") == (
        "条件付きで成り立つ：ヘッドを残す場合。3 ポイント")
    assert _i18n.translate_computed("holds only when the head is cut: 3 points") == (
        "holds only when the head is cut: 3 points")
    assert _i18n._state["untranslated"] == {
        "the head is cut: ⟨0⟩ points": ("holds only when the head is cut: 3 points",
                                        "not in the catalogue")}


LESSON = """---
jupytext:
  text_representation: {{extension: .md, format_name: myst}}
kernelspec: {{display_name: Python 3, language: python, name: python3}}
---
# A lesson

{prose}

```{{code-cell}} ipython3
{code}
```
"""


def test_lesson_codes_change_with_the_code_only(tmp_path):
    """What a lesson computes depends on its code: prose edits keep the recorded code."""
    (tmp_path / "book" / "ch01").mkdir(parents=True)
    lesson = tmp_path / "book" / "ch01" / "a.md"
    (tmp_path / "book" / "intro.md").write_text("# Not a lesson\n", encoding="utf-8")

    def code(prose, source):
        lesson.write_text(LESSON.format(prose=prose, code=source), encoding="utf-8")
        return _i18n.lesson_codes(tmp_path / "book")

    first = code("Some text.", "x = 1")
    assert list(first) == ["book/ch01/a.md"]
    assert code("Other text.", "x = 1") == first
    assert code("Some text.", "x = 2") != first


def test_verdict_names_the_kind_in_japanese_then_the_condition():
    assert COMPUTED.verdict("holds") == "成り立つ"
    assert COMPUTED.verdict("holds only when the head is kept: +32.9 points") == (
        "条件付きで成り立つ：ヘッドを残す場合。+32.9 ポイント")
    assert COMPUTED.verdict("not shown at this scale (paired 95 % interval [-0.1, 0.2])") == (
        "この規模では示されず（対応のある 95 % 区間 [-0.1, 0.2]）")
    assert COMPUTED.verdict("none") == "なし"  # not a verdict: a phrase


def test_claim_box_is_rebuilt_from_its_parts():
    record = claims.Record(claims.Claim("TR-2", 7, ("5",), "demo", "Transfer shortens training."),
                           claims.Verdict("holds"), "Updates to reach 0.711: 40")
    assert COMPUTED.claim_box(record._repr_markdown_()) == (
        "**主張 TR-2**（実演）— *転移学習は学習を短くする。*  \n"
        "判定：**成り立つ**。0.711 に届くまでの更新：40")


def test_a_claim_box_part_without_translation_stays_english_alone():
    record = claims.Record(claims.Claim("TR-2", 7, ("5",), "demo", "Transfer shortens training."),
                           claims.Verdict("holds"), "Updates to go: 4")
    with pytest.raises(MissingTranslation, match="Updates to go"):
        COMPUTED.claim_box(record._repr_markdown_())
    missing = {}
    computed = Computed(COMPUTED.table, missing)
    assert computed.claim_box(record._repr_markdown_()) == (
        "**主張 TR-2**（実演）— *転移学習は学習を短くする。*  \n判定：**成り立つ**。Updates to go: 4")
    assert missing == {"Updates to go: ⟨0⟩": ("Updates to go: 4", "not in the catalogue")}


def test_claim_box_of_a_two_part_action():
    record = claims.Record(claims.Claim("LR-1", 1, ("1",), "explain+demo", "none"),
                           claims.Verdict("shown"), "none")
    assert COMPUTED.claim_box(record._repr_markdown_()).startswith("**主張 LR-1**（解説＋実演）— *なし*")


def test_only_translated_non_fuzzy_messages_are_loaded(tmp_path):
    catalogue = Catalog(locale="ja")
    catalogue.add("none", "なし")
    catalogue.add("some ⟨0⟩", "いくつか ⟨0⟩", flags=["fuzzy"])
    catalogue.add("all", "")
    (tmp_path / "ja" / "LC_MESSAGES").mkdir(parents=True)
    with open(tmp_path / "ja" / "LC_MESSAGES" / "computed.po", "wb") as f:
        write_po(f, catalogue)
    assert Computed.load("ja", tmp_path).table == {"none": "なし"}
    assert Computed.load("fr", tmp_path).table == {}


def test_name_the_page_rewrites_local_glue_only():
    text = ("{glue:text}`best:.2g` and {glue:text}`words` and {glue:text}`../a.md::x:.1f` "
            "and {glue:figure}`fig` and {numref}`fig-x`")
    assert _i18n.name_the_page(text, "p.md") == (
        "{glue:text}`p.md::best:.2g` and {glue:text}`p.md::words:s` and "
        "{glue:text}`../a.md::x:.1f` and {glue:figure}`p.md::fig` and {numref}`fig-x`")


def _write(path, messages, locale=None):
    catalogue = Catalog(locale=locale, fuzzy=False)
    for msgid, msgstr in messages:
        catalogue.add(msgid, msgstr)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        write_po(f, catalogue)


def test_merge_adds_new_marks_changed_fuzzy_and_drops_gone(tmp_path):
    pots, pos = tmp_path / "pot", tmp_path / "po"
    _write(pots / "book" / "a.pot", [("The learning rate sets the step size.", ""),
                                     ("A brand new sentence about batches.", ""),
                                     ("Kept.", "")])
    _write(pos / "book" / "a.po", [("The learning rate sets the step.", "学習率は歩幅を決めます。"),
                                   ("Kept.", "そのまま。"), ("Gone from the page.", "消えた。")], "ja")
    _write(pos / "book" / "deleted-page.po", [("x", "エックス")], "ja")
    counts = _i18n.merge(pots, pos)
    assert counts == {"messages": 3, "translated": 1, "fuzzy": 1, "untranslated": 1}
    with open(pos / "book" / "a.po", "rb") as f:
        merged = {m.id: m for m in read_po(f) if m.id}
    assert set(merged) == {"The learning rate sets the step size.",
                           "A brand new sentence about batches.", "Kept."}
    assert merged["Kept."].string == "そのまま。" and not merged["Kept."].fuzzy
    assert merged["The learning rate sets the step size."].fuzzy
    assert not (pos / "book" / "deleted-page.po").exists()


def test_merge_drops_the_old_english_babel_read_back_as_comments(tmp_path):
    """A fuzzy message's long ``#| msgid``, written by Babel and read back after the translator
    removed ``#, fuzzy``, must not stay behind as translator comments."""
    pots, pos = tmp_path / "pot", tmp_path / "po"
    long_old, long_new = "old words " * 20, "new words " * 20
    _write(pots / "a.pot", [(long_new, "")])
    catalogue = Catalog(locale="ja", fuzzy=False)
    catalogue.add(long_new, "訳", flags=["fuzzy"], previous_id=long_old, user_comments=["mine"])
    pos.mkdir()
    with open(pos / "a.po", "wb") as f:
        write_po(f, catalogue, width=0, include_previous=True)
    text = (pos / "a.po").read_text(encoding="utf-8").replace("#, fuzzy\n", "")
    (pos / "a.po").write_text(text, encoding="utf-8")  # the translator checked it
    _i18n.merge(pots, pos)
    with open(pos / "a.po", "rb") as f:
        (message,) = [m for m in read_po(f) if m.id]
    assert message.user_comments == ["mine"] and message.string == "訳"


def test_merge_keeps_a_translated_alternative_outcome_while_its_text_is_computed(tmp_path):
    pots, pos = tmp_path / "pot", tmp_path / "po"
    pot = Catalog(fuzzy=False)
    pot.add("overlap", auto_comments=["from: a.md::overlap"])
    pot.add("a new measurement", auto_comments=["from: a.md::band"])
    pots.mkdir()
    with open(pots / "computed.pot", "wb") as f:
        write_po(f, pot)
    po = Catalog(locale="ja", fuzzy=False)
    po.add("overlap", "重なる", auto_comments=["from: a.md::overlap"])
    po.add("do not overlap", "重ならない", auto_comments=["from: a.md::overlap"],
           user_comments=[_i18n.ALTERNATIVE])
    po.add("outside", "外", auto_comments=["from: a.md::gone"], user_comments=[_i18n.ALTERNATIVE])
    po.add("an old sentence", "古い文", auto_comments=["from: a.md::overlap"])
    (pos).mkdir()
    with open(pos / "computed.po", "wb") as f:
        write_po(f, po)
    counts = _i18n.merge(pots, pos)
    with open(pos / "computed.po", "rb") as f:
        merged = {m.id: m for m in read_po(f) if m.id}
    assert set(merged) == {"overlap", "a new measurement", "do not overlap"}  # "outside": glue gone
    assert merged["do not overlap"].string == "重ならない"
    assert _i18n.sources(merged["do not overlap"]) == {"a.md::overlap"}
    assert counts == {"messages": 3, "translated": 2, "fuzzy": 0, "untranslated": 1}


def test_config_of_the_japanese_edition(tmp_path):
    source = tmp_path / "_config.yml"
    source.write_text(yaml.safe_dump({"title": "T", "execute": {"cache": "_build/.jupyter_cache"},
                                      "sphinx": {"config": {"language": "en"}}}))
    _i18n.write_config(source, tmp_path / "out" / "_config.ja.yml")
    config = yaml.safe_load((tmp_path / "out" / "_config.ja.yml").read_text())
    assert config["sphinx"]["config"]["language"] == "ja"
    assert config["title"] == _i18n.TITLES["ja"]
    assert config["execute"]["cache"] == str(tmp_path / "_build" / ".jupyter_cache")


def test_the_book_config_is_the_english_edition_with_japanese_catalogues():
    config = yaml.safe_load((_i18n.ROOT / "_config.yml").read_text(encoding="utf-8"))
    assert config["sphinx"]["config"]["language"] == "en"
    assert config["sphinx"]["config"]["locale_dirs"] == ["locales/"]
    assert "lessons_lib._i18n" in config["sphinx"]["extra_extensions"]


def test_sources_read_a_from_comment_that_the_writer_broke():
    message = Catalog().add("x", auto_comments=["from: a.md::one,", "b.md::two, claim LR-1"])
    assert _i18n.sources(message) == {"a.md::one", "b.md::two", "claim LR-1"}
    assert _i18n.sources(Catalog().add("y", auto_comments=["Translators: not a source"])) == set()


def test_pages_are_read_again_when_the_computed_catalogue_changes(tmp_path, monkeypatch):
    """An incremental Japanese build after translating computed.po must not keep old text."""
    from types import SimpleNamespace

    monkeypatch.setattr(_i18n, "LOCALES", tmp_path)
    po = tmp_path / "ja" / "LC_MESSAGES" / "computed.po"
    po.parent.mkdir(parents=True)
    po.write_text('msgid "none"\nmsgstr "なし"\n', encoding="utf-8")
    app = SimpleNamespace(config=SimpleNamespace(language="ja"))
    env = SimpleNamespace(found_docs={"a", "b", "c"})

    def outdated(added=(), changed=()):
        return _i18n.reread_when_the_computed_catalogue_changes(app, env, set(added), set(changed), set())

    assert outdated(added={"c"}) == ["a", "b"]  # the first build: no digest yet
    assert outdated() == []
    po.write_text('msgid "none"\nmsgstr "ありません"\n', encoding="utf-8")
    assert outdated(changed={"a"}) == ["b", "c"]
    app.config.language = "en"
    po.write_text("", encoding="utf-8")
    assert outdated() == []  # the English edition reads no catalogue
