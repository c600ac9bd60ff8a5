"""What a run may ask for, and checks of user-given numbers and output paths, before any work.

Every bound here is generous for real use (BraTS volumes are 240×240×155; the paper's widest
network has 500 channels) and keeps a typo from hanging the machine or overflowing a size
computation. Each check raises :class:`RevprofError` with the option, the bound and the value.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from revprof.errors import RevprofError

MAX_LEVELS = 10            # 2**9 = 512 voxels per axis at the bottom level already
MAX_WIDTH = 8192           # channels of one level
MAX_DEPTH = 64             # coupling blocks per level and side
MAX_GROWTH = 16.0          # width growth factor per level
MAX_PATCH = 1024           # voxels per patch axis
MAX_BATCH = 1024
MAX_STEPS = 10_000_000
MAX_SEED = 2**32 - 1       # what numpy's and torch's generators take
MAX_TRIALS = 100_000
MAX_WORKERS = 256          # local worker processes of one sweep
MAX_SYNTHETIC_CASES = 10_000
MAX_SYNTHETIC_AXIS = 512
MAX_STUDY_NAME = 200       # characters (PostgreSQL's Optuna schema holds 512 bytes)
MAX_SEARCH_VALUES = 1_000_000  # values of one integer search range
MAX_SETTINGS_FILE = 16 * 2**20  # bytes of a settings file (JSON or TOML) revprof reads
MAX_MEMORY = 2**50         # bytes of a memory size (1 PiB; the largest GPU holds 192 GiB)

# Folders that are no place for files revprof writes.
_SYSTEM_ROOTS = ("/proc", "/sys", "/dev")


def read_settings_text(path: Path | str, name: str, missing: str = "no such file") -> str:
    """The text of a small settings file (a spec, recipe or study file), checked before it is read:
    a regular file (a FIFO or device would block or never end), at most
    :data:`MAX_SETTINGS_FILE` bytes, UTF-8.

    Raises:
        RevprofError: ``name PATH: <what is wrong>`` in one line (``missing`` when it does not exist).
    """
    path = Path(path)
    try:
        if not path.exists():
            raise RevprofError(f"{name} {path}: {missing}")
        if not path.is_file():
            kind = "a folder" if path.is_dir() else "not a regular file"
            raise RevprofError(f"{name} {path}: {kind}; give a file")
        size = path.stat().st_size
        if size > MAX_SETTINGS_FILE:
            raise RevprofError(f"{name} {path}: {size:,} bytes is larger than a settings file can "
                               f"be ({MAX_SETTINGS_FILE:,} bytes at most)")
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise RevprofError(f"{name} {path}: not a UTF-8 text file") from None
    except OSError as error:
        raise RevprofError(f"{name} {path}: cannot read it ({error.strerror or error})") from None


def read_json_file(path: Path | str, name: str, missing: str = "no such file") -> Any:
    """A small JSON settings file, parsed (see :func:`read_settings_text`).

    Raises:
        RevprofError: as :func:`read_settings_text`, or not valid JSON (nested too deep included).
    """
    import json

    text = read_settings_text(path, name, missing)
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise RevprofError(f"{name} {path}: not valid JSON ({error})") from None
    except RecursionError:
        raise RevprofError(f"{name} {path}: not valid JSON (nested too deep)") from None


def nested_deeper_than(value: Any, limit: int) -> bool:
    """Whether lists, tuples and mappings in ``value`` nest more than ``limit`` levels (checked
    without recursion, so a value too deep for ``repr``, ``copy`` or ``json.dumps`` is found
    before any of them meets it)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, Mapping):
            children: Any = item.values()
        elif isinstance(item, (list, tuple)):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def check_int(name: str, value: Any, low: int, high: int) -> int:
    """``value`` as an int in ``[low, high]`` (a bool, float or text is refused).

    Raises:
        RevprofError: not a whole number, or outside the bounds (both named).
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise RevprofError(f"{name} must be a whole number from {low} to {high}; got {value!r}")
    if not low <= value <= high:
        raise RevprofError(f"{name} must be from {low} to {high}; got {value}")
    return value


def check_float(name: str, value: Any, low: float, high: float) -> float:
    """``value`` as a finite float in ``[low, high]`` (NaN and infinities are refused).

    Raises:
        RevprofError: not a finite number, or outside the bounds (both named).
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RevprofError(f"{name} must be a number from {low:g} to {high:g}; got {value!r}")
    number = float(value)
    if not math.isfinite(number) or not low <= number <= high:
        raise RevprofError(f"{name} must be a finite number from {low:g} to {high:g}; got {value!r}")
    return number


def check_seed(value: int | None, name: str = "--seed") -> int | None:
    """A random seed numpy and torch both take: ``0 .. 2**32 - 1`` (``None`` passes)."""
    return None if value is None else check_int(name, value, 0, MAX_SEED)


def check_name(name: str, value: str) -> str:
    """A study or case name: not empty, printable, at most :data:`MAX_STUDY_NAME` characters."""
    if not value.strip():
        raise RevprofError(f"{name} must not be empty")
    if len(value) > MAX_STUDY_NAME:
        raise RevprofError(f"{name} must be at most {MAX_STUDY_NAME} characters; got "
                           f"{len(value)}")
    if any(not ch.isprintable() for ch in value):
        raise RevprofError(f"{name} must not contain control characters such as NUL or a "
                           f"newline; got {value!r}")
    return value


def _system_root(path: Path) -> str | None:
    text = str(path)
    return next((root for root in _SYSTEM_ROOTS if text == root or text.startswith(root + "/")), None)


def _nearest_existing(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if os.path.exists(candidate):  # False (not an error) for a name too long
            return candidate
    return Path("/")


def _check_lengths(text: str, absolute: Path, name: str) -> None:
    """Each part of the path within the file system's name limit (``NAME_MAX``, 255 bytes on
    most) and the whole within ``PATH_MAX`` (4096), so the first write does not fail on it."""
    limit = _path_limit(_nearest_existing(absolute.parent), "PC_NAME_MAX", 255)
    for part in absolute.parts:
        if len(os.fsencode(part)) > limit:
            raise RevprofError(f"{name} {text!r}: the name {part[:40]}... is "
                               f"{len(os.fsencode(part))} bytes; the file system allows {limit}")
    whole = _path_limit(Path("/"), "PC_PATH_MAX", 4096)
    if len(os.fsencode(str(absolute))) >= whole:
        raise RevprofError(f"{name}: the path is {len(os.fsencode(str(absolute)))} bytes long; the "
                           f"file system allows {whole - 1}")


def _path_limit(folder: Path, which: str, default: int) -> int:
    try:
        return int(os.pathconf(folder, which)) or default
    except (OSError, ValueError):
        return default


def _check_creatable(path: Path, name: str) -> None:
    """The missing folders up to ``path`` can be created in a writable existing folder that has
    free space."""
    existing = _nearest_existing(path.parent)
    if not existing.is_dir():
        raise RevprofError(f"{name} {path}: {existing} is a file, not a folder")
    _check_writable_folder(existing, f"{name} {path}: folder {existing}")


def _check_writable_folder(folder: Path, what: str) -> None:
    """``folder`` can take a new file: writable (not a read-only mount, not immutable) and its
    file system not full."""
    if not os.access(folder, os.W_OK | os.X_OK):
        raise RevprofError(f"{what} is not writable")
    try:
        stats = os.statvfs(folder)
    except OSError:
        return
    if stats.f_flag & os.ST_RDONLY:
        raise RevprofError(f"{what} is on a read-only file system")
    if stats.f_bavail == 0 and stats.f_blocks > 0:
        raise RevprofError(f"{what} is on a full file system (no space left)")


def check_output_file(path: str | os.PathLike[str], name: str, example: str = "results/runs.csv") -> Path:
    """An output file path revprof can create or replace, checked before any work.

    Raises:
        RevprofError: the path is a folder (``/``, ``.``), under ``/proc``, ``/sys`` or ``/dev``,
            below a file, in a folder that is not writable, or an existing file that is not
            writable.
    """
    text = str(path)
    path = Path(path)
    if not text or text.endswith("/"):
        raise RevprofError(f"{name} {text!r} is a folder; give a file path like {example}")
    absolute = Path(os.path.abspath(path))
    if _system_root(absolute):
        raise RevprofError(f"{name} {text!r} is under {_system_root(absolute)}, which holds no "
                           f"user files; give a path like {example}")
    _check_lengths(text, absolute, name)
    if path.is_dir():
        raise RevprofError(f"{name} {text!r} is a folder; give a file path like {example}")
    if path.exists():
        if not path.is_file():
            raise RevprofError(f"{name} {text!r} is not a regular file")
        if not os.access(path, os.W_OK):
            raise RevprofError(f"{name} {text!r} is not writable")
        # written through a temporary file beside it, renamed over it
        _check_writable_folder(absolute.parent, f"{name} {text!r}: folder {absolute.parent}")
        return path
    _check_creatable(absolute, name)
    return path


def replacement_mode(path: Path | str) -> int:
    """The permission bits a file written to replace ``path`` should get: those of the existing
    file, or for a new one what ``open`` would give (``0o666`` less the umask). A temporary file
    from :func:`tempfile.mkstemp` is ``0o600``; chmod it to this before renaming it into place."""
    try:
        return os.stat(path).st_mode & 0o7777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def replace_file(path: Path | str, data: bytes | str | Callable[[Path], object], *,
                 prefix: str | None = None, suffix: str = ".tmp", name: str | None = None,
                 make_folder: bool = False) -> Path:
    """Write ``data`` to a temporary file beside ``path``, fsync it, give it the mode of the
    file it replaces (:func:`replacement_mode`) and rename it over ``path``: a crash leaves the
    old or the new file, never half of one. The temporary file is removed on any error. This is
    revprof's one atomic write.

    Args:
        data: the bytes, or text (written as UTF-8), or a function that writes the file at the
            temporary path it is given (``torch.save``, ``np.savez``, ``nib.save``).
        prefix: the temporary file's name prefix (default ``.NAME.``; a hidden file).
        suffix: its suffix (writers that pick a format by extension need the real one).
        name: when given, an ``OSError`` becomes ``RevprofError("cannot write NAME: why")``.
        make_folder: create the folder of ``path`` (and its parents) first.

    Raises:
        OSError: the folder or the file cannot be written (a :class:`RevprofError` when ``name``
            is given).
    """
    path = Path(path)
    if make_folder:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            if name is None:
                raise
            raise RevprofError(f"cannot create the folder of {name}: {error.strerror or error}") from None
    try:
        mode = replacement_mode(path)
        handle, temporary = tempfile.mkstemp(prefix=prefix or f".{path.name}.", suffix=suffix,
                                             dir=path.parent)
        try:
            if callable(data):
                os.close(handle)
                data(Path(temporary))
                handle = os.open(temporary, os.O_RDONLY)
                try:
                    os.fsync(handle)
                finally:
                    os.close(handle)
            else:
                with os.fdopen(handle, "wb") as stream:
                    stream.write(data.encode("utf-8") if isinstance(data, str) else data)
                    stream.flush()
                    os.fsync(stream.fileno())
            os.chmod(temporary, mode)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
    except OSError as error:
        if name is None:
            raise
        raise RevprofError(f"cannot write {name}: {error.strerror or error}") from None
    _fsync_folder(path.parent)
    return path


def _fsync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable (best effort: not every file system allows it)."""
    try:
        handle = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(handle)
    except OSError:
        pass
    finally:
        os.close(handle)


def check_output_folder(path: str | os.PathLike[str], name: str, example: str = "predictions/") -> Path:
    """An output folder revprof can create or write into, checked before any work.

    Raises:
        RevprofError: the path is a file, ``/``, under ``/proc``, ``/sys`` or ``/dev``, or not
            writable.
    """
    text = str(path)
    path = Path(path)
    absolute = Path(os.path.abspath(path)) if text else Path.cwd()
    if not text or absolute == Path("/") or _system_root(absolute):
        raise RevprofError(f"{name} {text!r} is not a place for output; give a folder like {example}")
    _check_lengths(text, absolute / "x", name)
    if path.exists():
        if not path.is_dir():
            raise RevprofError(f"{name} {text!r} is a file; give a folder like {example}")
        _check_writable_folder(path, f"{name} {text!r}")
        return path
    _check_creatable(absolute, name)
    return path
