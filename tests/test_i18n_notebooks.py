"""The translated lesson files (lessons_lib._i18n_notebooks): prose replaced block by block from a
page catalogue, code, math and options unchanged, and what has no translation reported."""

import jupytext
import pytest
import yaml

from lessons_lib._i18n_notebooks import message, notebook, translate_markdown

PAGE = """\
---
kernelspec:
  name: python3
  display_name: Python 3
---

# The step

The learning rate multiplies
the gradient.

- a first item
  on two lines
- second

| term | meaning |
|---|---|
| step size | the length $\\|g\\|$ |

:::{margin} Claim LR-1
"A quoted claim."
:::

```{exercise}
:label: ex-one
Try a larger rate.
```

$$
w_{t+1} = w_t - \\eta g
$$

```{code-cell} ipython3
---
mystnb:
  figure:
    caption: |
      Loss against
      the step.
    name: fig-loss
tags: [hide-input]
---
# a comment in code, not prose
plot(lr=0.1)
```

```{container} ledger-counts
Covered so far: 3 of 3 claims.
```

A sentence nobody translated.
"""

JA = {
    "The step": "ステップ",
    "The learning rate multiplies the gradient.": "学習率は勾配に掛けます。",
    "a first item on two lines": "1 つ目の項目",
    "second": "2 つ目",
    "term": "用語",
    "meaning": "意味",
    "step size": "ステップサイズ",
    "the length $|g|$": "長さ $|g|$",
    "Claim LR-1": "主張 LR-1",
    '"A quoted claim."': "「引用された主張」",
    "Try a larger rate.": "もっと大きな学習率を試してください。",
    "Loss against the step.": "ステップに対する損失。",
}


@pytest.fixture(scope="module")
def translated():
    return translate_markdown(PAGE, JA.get)


def test_every_block_of_prose_is_replaced(translated):
    text, _ = translated
    for ja in JA.values():
        if "|" not in ja:
            assert ja in text, ja
    assert "# ステップ\n" in text
    assert "- 1 つ目の項目\n- 2 つ目\n" in text
    assert ":::{margin} 主張 LR-1\n「引用された主張」\n:::" in text
    assert ":label: ex-one\nもっと大きな学習率を試してください。\n" in text
    for en in JA:
        assert f"{en}\n" not in text and f" {en} " not in text, en


def test_a_table_cell_keeps_its_escaped_bars(translated):
    text, _ = translated
    assert "| 用語 | 意味 |" in text
    assert "| ステップサイズ | 長さ $\\|g\\|$ |" in text


def test_code_math_and_options_are_unchanged(translated):
    text, _ = translated
    english, japanese = jupytext.reads(PAGE, fmt="md:myst"), jupytext.reads(text, fmt="md:myst")
    code = [(c.source, c.metadata.get("tags")) for c in english.cells if c.cell_type == "code"]
    assert code == [(c.source, c.metadata.get("tags"))
                    for c in japanese.cells if c.cell_type == "code"]
    assert len(english.cells) == len(japanese.cells)
    assert "$$\nw_{t+1} = w_t - \\eta g\n$$" in text
    assert "```{container} ledger-counts\nCovered so far: 3 of 3 claims.\n```" in text
    figure = japanese.cells[-1 - [c.cell_type for c in reversed(japanese.cells)].index("code")]
    assert figure.metadata["mystnb"]["figure"] == {"caption": "ステップに対する損失。",
                                                   "name": "fig-loss"}


def test_prose_without_a_translation_is_reported_and_kept(translated):
    text, missing = translated
    assert missing == ["A sentence nobody translated."]
    assert "A sentence nobody translated." in text
    assert "Covered so far" not in " ".join(missing)  # the build writes the counts


def test_nothing_changes_without_a_catalogue():
    text, missing = translate_markdown(PAGE, {}.get)
    assert text == PAGE
    assert "The learning rate multiplies the gradient." in missing
    assert "Loss against the step." in missing


def test_the_message_is_what_sphinx_extracts():
    assert message("one\ntwo  \n") == "one two"


def test_the_notebook_has_the_translated_prose(translated):
    text, _ = translated
    cells = yaml.safe_load(notebook(text))["cells"]  # JSON is YAML
    prose = "".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
    assert "学習率は勾配に掛けます。" in prose
    code = ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]
    assert code == ["# a comment in code, not prose\nplot(lr=0.1)"]


def test_a_block_not_where_the_parser_said_is_left_as_is():
    from lessons_lib._i18n_notebooks import _replace

    out = ["- an item", "  more"]
    assert not _replace(out, 0, 2, "another text", "別の文", {})
    assert out == ["- an item", "  more"]
    assert _replace(out, 0, 2, "an item\nmore", "項目", {})
    assert out == ["- 項目", None]
