"""The Binder configuration is valid for repo2docker (checked offline, without building)."""

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
