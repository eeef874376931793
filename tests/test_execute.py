"""`make execute` (lessons_lib._execute) fills the build's cache under the build's own rules."""

import pytest

from lessons_lib import _execute


def test_cell_timeout_is_the_builds_own(tmp_path):
    """Catches the parallel executor drifting from _config.yml's execute.timeout (a lesson the
    build would stop must be stopped here too)."""
    assert _execute.config_timeout("_config.yml") >= 60   # the real config: above the lesson budget
    cfg = tmp_path / "_config.yml"
    cfg.write_text("execute:\n  timeout: 42\n", encoding="utf-8")
    assert _execute.config_timeout(cfg) == 42


@pytest.mark.parametrize("text", ["execute:\n  timeout: -1\n", "title: x\n", "execute:\n  timeout: ten\n"])
def test_a_missing_or_bad_timeout_is_named(tmp_path, text):
    cfg = tmp_path / "_config.yml"
    cfg.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match=r"^execute\.timeout in .* must be a whole number of seconds >= 1"):
        _execute.config_timeout(cfg)
