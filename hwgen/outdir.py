"""The one place hwgen writes output directories and files: never a half-written output, and
never a deleted or overwritten file that hwgen did not write.

An output directory carries a marker, `.hwgen-output.json`, listing every file hwgen wrote there
with its sha256. That is how an earlier hwgen output is told from a user's directory, and how a
file the user added or edited afterwards is told from hwgen's own:

* a new directory is written as a temporary sibling and renamed into place at the end;
* an empty directory, or an earlier hwgen output, is filled through a temporary directory inside
  it: the new files replace the earlier output's files, files of the earlier output that this
  run does not write again are removed (they described another compile), and every other file
  (the user's) stays as it was;
* a non-empty directory that is not an hwgen output, a file hwgen wrote that was edited since, or
  a user's file where hwgen would write one, is refused with one line before anything is touched,
  unless `force` (then hwgen's files overwrite same-named ones, and nothing else is removed).

Single files the user names (`--output y.npy`, `--json r.json`) are written atomically (a
temporary file renamed over the target).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from .errors import InvalidOptionError

__all__ = ["MARKER", "OutputDir", "write_file", "update_files", "is_output", "reading", "read_json"]

MARKER = ".hwgen-output.json"
MARKER_FORMAT = "hwgen-output/1"
_STAGING = ".hwgen-staging-"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _read_marker(directory: Path) -> dict[str, str] | None:
    """The files an earlier hwgen run wrote in `directory` (None: no marker, not an hwgen output)."""
    path = directory / MARKER
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
        files = data["files"]
        if data.get("format") != MARKER_FORMAT or not isinstance(files, dict):
            raise ValueError("unknown format")
        if not all(isinstance(k, str) and isinstance(v, str) and _is_relative(k) for k, v in files.items()):
            raise ValueError("bad file list")
        return files
    except (OSError, ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise InvalidOptionError(f"{path}: not a marker hwgen can read ({exc}); remove it, or choose another "
                                 "output directory") from None


def _is_relative(name: str) -> bool:
    p = Path(name)
    return not p.is_absolute() and ".." not in p.parts and name not in ("", ".")


def is_output(directory: str | Path) -> bool:
    """Whether `directory` holds an hwgen output (a readable marker)."""
    try:
        return _read_marker(Path(directory)) is not None
    except InvalidOptionError:
        return False


def _write_marker(directory: Path, files: dict[str, str]) -> None:
    text = json.dumps({"format": MARKER_FORMAT, "files": dict(sorted(files.items()))}, indent=1) + "\n"
    write_file(directory / MARKER, text.encode())


def _files_under(root: Path) -> list[str]:
    """Every file below root, relative, sorted; left out: the marker, staging directories, and
    nested hwgen outputs (a synthesis run's directory is an output of its own)."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(_STAGING)
                             and not os.path.isfile(os.path.join(dirpath, d, MARKER)))
        for name in filenames:
            rel = os.path.relpath(os.path.join(dirpath, name), root)
            if rel != MARKER:
                found.append(rel)
    return sorted(found)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _nearest_existing(path: Path) -> Path:
    while not path.exists():
        path = path.parent
    return path


@dataclass(frozen=True)
class OutputDir:
    """An output directory, checked by `prepare` before any work is done."""

    path: Path
    force: bool
    previous: dict[str, str] | None  # an earlier hwgen output's files (None: new, empty or a user's directory)

    @classmethod
    def prepare(cls, path: str | Path, *, force: bool = False, what: str = "output directory") -> OutputDir:
        """Check that hwgen may write `path`; raises InvalidOptionError (touching nothing) if not."""
        path = Path(os.path.abspath(path))
        if path.exists() and not path.is_dir():
            raise InvalidOptionError(f"{path}: exists and is not a directory; choose a new {what}")
        ancestor = _nearest_existing(path)
        if not ancestor.is_dir():
            raise InvalidOptionError(f"{path}: cannot create the {what}: {ancestor} is not a directory")
        if not os.access(ancestor, os.W_OK | os.X_OK):
            raise InvalidOptionError(f"{path}: cannot write the {what}: permission denied on {ancestor}")
        previous = _read_marker(path) if path.is_dir() else None
        if path.is_dir() and previous is None and not force:
            user_files = [p.name for p in path.iterdir() if not p.name.startswith(_STAGING)]
            if user_files:
                raise InvalidOptionError(
                    f"{path}: not empty and not an earlier hwgen output (it holds {_some(user_files)}); "
                    "choose a new directory, or pass --force to write hwgen's files beside them")
        return cls(path, force, previous)

    # -- whole-directory writes (compile) -----------------------------------------------------

    def write(self, fill: Callable[[Path], None]) -> list[str]:
        """Run `fill(staging)` to make every file of the output, then put them in place.

        Returns the earlier output's files that were removed (they are not part of this one).
        On any error (in `fill` or in the checks before the first file moves) nothing is touched.
        """
        exists = self.path.is_dir()
        base = self.path if exists else _nearest_existing(self.path.parent)
        staging = Path(tempfile.mkdtemp(prefix=_STAGING, dir=base))
        try:
            fill(staging)
            new_files = _files_under(staging)
            if not exists:
                self._commit_new(staging, new_files)
                return []
            return self._commit_into(staging, new_files)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def _commit_new(self, staging: Path, new_files: list[str]) -> None:
        _write_marker(staging, {rel: _sha256(staging / rel) for rel in new_files})
        os.chmod(staging, 0o777 & ~_umask())  # mkdtemp made it private
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.rename(staging, self.path)
        except OSError as exc:  # someone created it meanwhile
            raise InvalidOptionError(f"{self.path}: cannot create the output directory: {exc.strerror}") from None

    def _commit_into(self, staging: Path, new_files: list[str]) -> list[str]:
        previous = dict(self.previous or {})
        ours = {rel for rel, sha in previous.items() if (self.path / rel).is_file() and
                _sha256(self.path / rel) == sha}
        for rel in new_files:  # check everything before the first file moves
            target = self.path / rel
            for parent in Path(rel).parents:
                if str(parent) != "." and (self.path / parent).exists() and not (self.path / parent).is_dir():
                    raise InvalidOptionError(f"{self.path / parent}: a file where hwgen writes the directory "
                                             f"{parent}/; move it away")
            if target.exists() and rel not in ours and not self.force:
                why = "was changed after hwgen wrote it" if rel in previous else "is not a file hwgen wrote"
                raise InvalidOptionError(f"{target}: {why}; move it away, or pass --force to overwrite it")
            if target.is_dir():
                raise InvalidOptionError(f"{target}: a directory where hwgen writes a file; move it away")
        removed = [rel for rel in sorted(ours) if rel not in new_files]
        for rel in removed:
            (self.path / rel).unlink()
            _prune_empty_parents(self.path, Path(rel).parent)
        files = {rel: sha for rel, sha in previous.items() if rel in ours and rel not in removed}
        for rel in new_files:
            (self.path / rel).parent.mkdir(parents=True, exist_ok=True)
            files[rel] = _sha256(staging / rel)
            os.replace(staging / rel, self.path / rel)
        _write_marker(self.path, files)
        return removed

    # -- in-place writes (tools that write their own files: synthesis) -------------------------

    @contextlib.contextmanager
    def in_place(self) -> Iterator[Path]:
        """Work directly in the directory (for tools that write files of their own): the earlier
        output's unchanged files are removed first, and every file present at the end that was
        not the user's is recorded as hwgen's, also when the work fails (its logs stay)."""
        previous = dict(self.previous or {})
        self.path.mkdir(parents=True, exist_ok=True)
        for rel, sha in previous.items():
            if (self.path / rel).is_file() and _sha256(self.path / rel) == sha:
                (self.path / rel).unlink()
                _prune_empty_parents(self.path, Path(rel).parent)
        users = set(_files_under(self.path))
        try:
            yield self.path
        finally:
            _write_marker(self.path, {rel: _sha256(self.path / rel) for rel in _files_under(self.path)
                                      if rel not in users})


def _prune_empty_parents(root: Path, rel_dir: Path) -> None:
    while str(rel_dir) not in ("", "."):
        d = root / rel_dir
        try:
            d.rmdir()  # only if empty
        except OSError:
            return
        rel_dir = rel_dir.parent


def _some(names: list[str]) -> str:
    names = sorted(names)
    shown = ", ".join(repr(n) for n in names[:3])
    return shown + (f" and {len(names) - 3} more" if len(names) > 3 else "")


def update_files(root: str | Path, files: dict[str, bytes]) -> None:
    """Replace files of an earlier hwgen output (e.g. a report a simulation measured), each
    atomically, and record them in its marker. A file changed since hwgen wrote it is refused."""
    root = Path(root)
    previous = _read_marker(root)
    if previous is None:
        raise InvalidOptionError(f"{root}: not an hwgen output (no {MARKER}); compile into it first")
    for rel in files:
        target = root / rel
        if target.exists() and (rel not in previous or _sha256(target) != previous[rel]):
            raise InvalidOptionError(f"{target}: changed after hwgen wrote it; move it away to let hwgen update it")
    for rel, data in files.items():
        write_file(root / rel, data)
        previous[rel] = hashlib.sha256(data).hexdigest()
    _write_marker(root, previous)


def write_file(path: str | Path, data: bytes | str, *, what: str = "file") -> None:
    """Write a file atomically: a temporary file beside it, renamed over it when complete."""
    path = Path(path)
    if isinstance(data, str):
        data = data.encode()
    if path.is_dir():
        raise InvalidOptionError(f"{path}: is a directory; give a file name for the {what}")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise InvalidOptionError(f"{path}: cannot write the {what}: {parent} is not a directory")
    tmp = parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask applies, as for open()
    except OSError as exc:
        raise InvalidOptionError(f"{path}: cannot write the {what}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def reading(path: str | Path) -> Iterator[None]:
    """Reading a file of an earlier output: anything malformed about it is one line naming it."""
    try:
        yield
    except (ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
        detail = f"{type(exc).__name__}: {exc}" if not isinstance(exc, ValueError) else str(exc)
        raise InvalidOptionError(f"{path}: damaged, or written by another version of hwgen ({detail}); "
                                 "compile again") from None


def read_json(path: str | Path):
    """A JSON file of an earlier output (one-line errors when it is not JSON)."""
    with reading(path):
        return json.loads(Path(path).read_text())
