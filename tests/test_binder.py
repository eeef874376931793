"""The Binder configuration is valid for repo2docker (checked offline, without building)."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_repo2docker_accepts_the_binder_configuration():
    exe = shutil.which("jupyter-repo2docker") or str(Path(sys.executable).parent / "jupyter-repo2docker")
    out = subprocess.run([exe, "--no-build", "--debug", str(ROOT)], capture_output=True, text=True,
                         timeout=300)
    log = out.stdout + out.stderr
    assert out.returncode == 0, log[-3000:]
    assert "python=3.11" in log
    assert 'pip install --no-cache-dir -r "binder/requirements.txt"' in log
    assert "./binder/postBuild" in log


def test_binder_installs_cpu_torch_matching_the_book():
    binder = (ROOT / "binder" / "requirements.txt").read_text()
    book = (ROOT / "requirements.txt").read_text()
    assert "torch==2.13.0+cpu" in binder and "download.pytorch.org/whl/cpu" in binder
    assert "torch==2.13.0\n" in book
    for pkg in ("numpy", "matplotlib", "scikit-learn", "jupytext", "myst-nb"):
        pinned = [line for line in book.splitlines() if line.startswith(pkg + "==")]
        assert pinned and pinned[0] in binder, f"{pkg} is pinned differently for Binder"


# Import name -> the distribution that provides it (stdlib modules and lessons_lib need nothing).
DISTRIBUTION = {"torch": "torch", "numpy": "numpy", "matplotlib": "matplotlib",
                "sklearn": "scikit-learn", "adabelief_pytorch": "adabelief-pytorch",
                "IPython": "ipykernel", "matplotlib_inline": "ipykernel", "myst_nb": "myst-nb",
                "torch_lr_finder": "torch-lr-finder"}


def imported_modules() -> set[str]:
    """Top-level modules imported by the lessons' code cells and by lessons_lib."""
    names = set()
    sources = [*(ROOT / "book").rglob("*.md"), *(ROOT / "lessons_lib").glob("*.py")]
    for path in sources:
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".md":  # only the code cells of a lesson
            text = "\n".join(re.findall(r"```\{code-cell\}[^\n]*\n(.*?)```", text, re.S))
        names |= set(re.findall(r"^\s*(?:import|from) ([A-Za-z_]\w*)", text, re.M))
    return names - set(sys.stdlib_module_names) - {"lessons_lib"}


def test_binder_installs_everything_the_lessons_import():
    binder = (ROOT / "binder" / "requirements.txt").read_text()
    modules = imported_modules()
    assert {"torch", "numpy", "matplotlib", "sklearn"} <= modules
    unknown = modules - set(DISTRIBUTION)
    assert not unknown, f"add these imports to DISTRIBUTION and binder/requirements.txt: {unknown}"
    missing = [DISTRIBUTION[m] for m in modules if f"\n{DISTRIBUTION[m]}==" not in "\n" + binder]
    assert not missing, f"binder/requirements.txt lacks {missing}"
