"""The Binder configuration is valid for repo2docker (checked offline, without building)."""

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_repo2docker_accepts_the_binder_configuration():
    """Catches a binder/ folder that repo2docker would refuse or read differently (Python, steps)."""
    exe = shutil.which("jupyter-repo2docker") or str(Path(sys.executable).parent / "jupyter-repo2docker")
    out = subprocess.run([exe, "--no-build", "--debug", str(ROOT)], capture_output=True, text=True,
                         timeout=300)
    log = out.stdout + out.stderr
    assert out.returncode == 0, log[-3000:]
    assert "python=3.11" in log
    assert 'pip install --no-cache-dir -r "binder/requirements.txt"' in log
    assert "./binder/postBuild" in log


def test_binder_installs_the_lock_with_the_cpu_wheel_of_torch():
    """Catches Binder drifting from the book's pins: it installs requirements.lock, nothing typed
    twice, with the CPU index first in line for torch."""
    lines = [line.split("#", 1)[0].strip()
             for line in (ROOT / "binder" / "requirements.txt").read_text().splitlines()]
    lines = [line for line in lines if line]
    assert lines == ["--extra-index-url https://download.pytorch.org/whl/cpu", "-r ../requirements.lock"]
    assert (ROOT / "binder" / "../requirements.lock").resolve().is_file()
