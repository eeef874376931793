"""The book is read online: one workflow publishes it, and its address is written in one place.

.github/workflows/deploy-book.yml builds the book with `make book` and publishes _build/html to
GitHub Pages on every push to the branch that _config.yml names. actionlint checks the workflow
offline; its binary comes from a package pinned in requirements.txt, and the test fails (never
skips) when it is missing. `repository.url` and `repository.branch` in _config.yml are the one
place the address is written: Jupyter Book builds the repository button and the Binder launch
buttons from them (tests/site checks the built buttons).
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = ROOT / ".github" / "workflows"
DEPLOY = WORKFLOWS / "deploy-book.yml"
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))


def actionlint() -> str:
    beside_python = Path(sys.executable).parent / "actionlint"
    found = str(beside_python) if beside_python.exists() else shutil.which("actionlint")
    if not found:
        pytest.fail("actionlint is missing: `make venv` installs it from requirements.txt")
    return found


def lint(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    # actionlint runs shellcheck and pyflakes on `run:` scripts only where they are installed;
    # both are off, so that the verdict does not depend on what else a machine has.
    command = [actionlint(), "-no-color", "-oneline", "-shellcheck=", "-pyflakes=", *args]
    return subprocess.run(command, capture_output=True, text=True, input=stdin, cwd=ROOT,
                          timeout=120)


def test_actionlint_finds_no_problem_in_any_workflow():
    """Catches: a workflow GitHub would reject or misread (bad key, expression, action input)."""
    files = sorted(WORKFLOWS.glob("*.yml")) + sorted(WORKFLOWS.glob("*.yaml"))
    assert DEPLOY in files, "the Pages workflow .github/workflows/deploy-book.yml is missing"
    result = lint(*map(str, files))
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr


def test_actionlint_reports_a_broken_workflow():
    """Catches: an actionlint that runs but checks nothing (a stand-in binary, silencing flags)."""
    broken = DEPLOY.read_text(encoding="utf-8")
    broken = broken.replace("runs-on: ubuntu-latest", "runs-on: ubuntu-lastest")
    broken = broken.replace("steps.deployment.outputs", "steps.deploy.outputs")
    result = lint("-stdin-filename", "deploy-book.yml", "-", stdin=broken)
    assert result.returncode == 1, result.stdout + result.stderr
    assert '"ubuntu-lastest" is unknown' in result.stdout, result.stdout
    assert 'property "deploy" is not defined' in result.stdout, result.stdout


def test_the_workflow_publishes_the_built_book_from_the_configured_branch():
    """Catches: Pages fed another folder, a build other than `make book`, another branch."""
    workflow = yaml.safe_load(DEPLOY.read_text(encoding="utf-8"))
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as true
    assert triggers["push"]["branches"] == [CONFIG["repository"]["branch"]]
    assert workflow["permissions"]["pages"] == workflow["permissions"]["id-token"] == "write"
    steps = [step for job in workflow["jobs"].values() for step in job["steps"]]
    uses = [step.get("uses", "").split("@")[0] for step in steps]
    builds = [i for i, step in enumerate(steps)
              if step.get("run", "").split()[:2] == ["make", "book"]]
    upload = uses.index("actions/upload-pages-artifact")
    assert builds and builds[0] < upload < uses.index("actions/deploy-pages")
    assert steps[upload]["with"]["path"] == "_build/html"


def text_files():
    skip = {".git", ".venv", "_build", "node_modules", "__pycache__", ".pytest_cache",
            ".ruff_cache"}
    for folder, dirs, files in os.walk(ROOT):
        dirs[:] = [d for d in dirs if d not in skip and not d.endswith(".egg-info")]
        for name in files:
            path = Path(folder) / name
            try:
                yield path, path.read_text(encoding="utf-8")
            except (UnicodeDecodeError, OSError):
                continue


def test_the_repository_address_is_written_only_in_config():
    """Catches: a second copy of the address (README, intro, binder/, tests) left stale."""
    url = CONFIG["repository"]["url"].rstrip("/")
    owner, name = url.split("github.com/", 1)[1].split("/")[:2]
    forms = [f"{owner}/{name}".lower(), f"{owner}.github.io/{name}".lower()]
    places = {}
    for path, text in text_files():
        hits = sum(text.lower().count(form) for form in forms)
        if hits:
            places[str(path.relative_to(ROOT))] = hits
    assert places == {"_config.yml": 1}, f"{url} is written in {places}; keep it in _config.yml"
