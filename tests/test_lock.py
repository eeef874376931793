"""requirements.txt (edited by hand) and requirements.lock (compiled by `make lock`) agree, and the
environment the tests run in was installed from the lock."""

import hashlib
import re
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
HASH_LINE = re.compile(r"^# requirements\.txt sha256: ([0-9a-f]{64})$", re.M)


def lock_pins() -> dict[str, Version]:
    pins = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, version = line.split("==")
            pins[canonicalize_name(name)] = Version(version)
    return pins


def direct_requirements() -> list[Requirement]:
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    return [Requirement(line.split("#", 1)[0]) for line in lines if line.split("#", 1)[0].strip()]


def test_lock_was_compiled_from_the_current_requirements():
    """Catches an edit of requirements.txt without `make lock` (a stale lock)."""
    recorded = HASH_LINE.search((ROOT / "requirements.lock").read_text())
    assert recorded, "requirements.lock has no 'requirements.txt sha256' line: run make lock"
    actual = hashlib.sha256((ROOT / "requirements.txt").read_bytes()).hexdigest()
    assert recorded.group(1) == actual, "requirements.lock is stale: run `make lock` and commit it"


def test_every_direct_requirement_is_pinned_by_the_lock_within_its_range():
    """Catches a lock edited by hand, or a range in requirements.txt that the pin no longer meets."""
    pins = lock_pins()
    for req in direct_requirements():
        name = canonicalize_name(req.name)
        assert name in pins, f"{req.name} is in requirements.txt but not in requirements.lock"
        assert req.specifier.contains(pins[name], prereleases=True), \
            f"lock pins {req.name}=={pins[name]}, outside {req.specifier}"


def test_the_environment_is_exactly_the_lock():
    """Catches an install step that does not use the lock (a version that floats, a package installed
    by hand or pulled in undeclared): every installed distribution is pinned, at that version."""
    pins = lock_pins()
    installed = {canonicalize_name(d.metadata["Name"]): Version(d.version)
                 for d in metadata.distributions()}
    installed.pop("lessons-lib")  # the book's own library, installed with `pip install -e .`
    extra = sorted(set(installed) - set(pins))
    assert not extra, f"installed but not in requirements.lock: {extra}"
    missing = sorted(set(pins) - set(installed))
    assert not missing, f"in requirements.lock but not installed: {missing}"
    # torch 2.13.0+cpu (the CPU wheel) satisfies the lock's torch==2.13.0
    wrong = {n: (str(installed[n]), str(v)) for n, v in pins.items()
             if installed[n].public != v.public}
    assert not wrong, f"installed versions differ from the lock: {wrong}"
