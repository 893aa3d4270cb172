"""The package lock (`requirements.txt`): its pins, and the installed versions that break them."""

import site
import sys
from importlib import metadata
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement

from rlrepro.core import readers
from rlrepro.core.errors import StageError

# The packages whose versions a reader of the results needs to see, in this order.
KEY_PACKAGES = (
    "torch",
    "stable-baselines3",
    "gymnasium",
    "mujoco",
    "numpy",
    "scipy",
    "dvc",
)


def locked(path: Path) -> list[Requirement]:
    """The `name==version` requirements of a pip-compile lock file (its `--hash` options and
    option lines such as `--extra-index-url` left out).

    :raises StageError: when the file is missing, larger than `readers.TEXT_LIMIT`, not
        UTF-8, or has a line that is not a requirement.
    """
    if not path.is_file():
        raise StageError(f"{path}: no such lock file; run `make lock` to create it")
    remedy = "restore it (`git checkout -- requirements.txt`) or run `make lock`"
    text = readers.read_text(path, "lock file", remedy=remedy)
    text = text.replace("\\\n", " ")  # a requirement continued over its hashes
    found = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].split(" --hash=", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        try:
            found.append(Requirement(line))
        except InvalidRequirement:
            raise StageError(
                f"{path}: {readers.show(line)} is not a requirement, expected `name==version`; "
                f"{remedy}"
            ) from None
    return found


def key_versions(requirements: list[Requirement]) -> dict[str, str]:
    """The locked version of each of `KEY_PACKAGES` (`not locked` where the lock has none)."""
    pins = {req.name.lower(): str(req.specifier).removeprefix("==") for req in requirements}
    return {name: pins.get(name, "not locked") for name in KEY_PACKAGES}


def mismatches(requirements: list[Requirement]) -> list[str]:
    """One 'name: locked X, installed Y' line per requirement the installed package breaks."""
    found = []
    for req in requirements:
        try:
            installed = metadata.version(req.name)
        except metadata.PackageNotFoundError:
            installed = "not installed"
        if installed == "not installed" or not req.specifier.contains(installed, prereleases=True):
            found.append(f"{req.name}: locked {req.specifier}, installed {installed}")
    return found


def installed() -> list[str]:
    """The names of the installed distributions' metadata folders (`name-version.dist-info`), in
    every site-packages folder on the path, sorted: the versions, read without importing them."""
    folders = {Path(p) for p in [*site.getsitepackages(), *sys.path] if p.endswith("-packages")}
    return sorted(
        entry.name
        for folder in folders
        if folder.is_dir()
        for entry in folder.iterdir()
        if entry.name.endswith((".dist-info", ".egg-info"))
    )
