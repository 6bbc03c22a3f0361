"""The ready-made scenarios shipped inside the package (``otpsim.scenarios``).

A command line names them ``builtin:NAME`` (one, by its file's stem) or ``builtin:`` (all),
so they run from an installed package or a container, where no ``scenarios/`` folder
exists; ``otpsim scenarios copy DIR`` starts a user's own folder from them.
"""

from __future__ import annotations

import shutil
from importlib.resources import files
from pathlib import Path

from otpsim.errors import OtpsimError

PREFIX = "builtin:"


def folder() -> Path:
    """Where the shipped scenario files are (a real folder: wheels install unzipped)."""
    return Path(str(files("otpsim.scenarios")))


def paths() -> list[Path]:
    """Every shipped scenario file, by name."""
    return sorted(p for p in folder().iterdir() if p.suffix == ".yaml")


def names() -> list[str]:
    return [p.stem for p in paths()]


def is_reference(given: str) -> bool:
    return given.startswith(PREFIX)


def resolve(reference: str) -> list[Path]:
    """``builtin:`` (or ``builtin:*``): every shipped file; ``builtin:NAME``: that one."""
    name = reference.removeprefix(PREFIX)
    if name in ("", "*"):
        return paths()
    for path in paths():
        if name in (path.stem, path.name):
            return [path]
    raise OtpsimError(
        f"{reference}: no such built-in scenario (expected one of: "
        f"{', '.join(PREFIX + n for n in names())}; `otpsim scenarios list` describes them)"
    )


def resolve_one(reference: str) -> Path:
    """The one file a ``builtin:NAME`` names (``serve --scenario`` takes one file)."""
    found = resolve(reference)
    if len(found) != 1:
        raise OtpsimError(f"{reference}: expected one built-in scenario, as builtin:NAME")
    return found[0]


def copy_to(destination: str, *, force: bool = False) -> list[Path]:
    """Copy every shipped file into ``destination`` (made if missing); never overwrites
    a file that differs unless ``force``. Checks every target before writing any."""
    target = Path(destination)
    if target.exists() and not target.is_dir():
        raise OtpsimError(f"{destination}: not a folder (expected a folder to copy into)")
    pairs = [(source, target / source.name) for source in paths()]
    if not force:
        for source, copy in pairs:
            if copy.exists() and _differs(source, copy):
                raise OtpsimError(
                    f"{copy}: already exists and differs from {PREFIX}{source.stem} "
                    "(expected a new folder, or --force to overwrite)"
                )
    try:
        target.mkdir(parents=True, exist_ok=True)
        for source, copy in pairs:
            shutil.copyfile(source, copy)
    except OSError as exc:
        raise OtpsimError(f"{exc.filename or destination}: cannot copy: {exc.strerror}") from None
    return [copy for _, copy in pairs]


def _differs(source: Path, copy: Path) -> bool:
    try:
        return source.read_bytes() != copy.read_bytes()
    except OSError:
        return True
