"""Small file helpers shared by every stage: atomic writes so that nothing already written is
ever left half-done."""

from __future__ import annotations

import contextlib
import glob
import logging
import os
import tempfile
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import IO, Any, Iterable, Iterator

from belle_hf.errors import BelleError

logger = logging.getLogger(__name__)


def _default_file_mode(path: Path) -> int:
    """The mode a plainly created file would get: the existing file's, else 0o666 less the umask.

    ``mkstemp`` creates its file 0o600; without this, every atomically written output would be
    unreadable to other users.
    """
    if path.exists():
        return path.stat().st_mode & 0o7777
    return 0o666 & ~_current_umask()


def _current_umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def keep_ordinary_modes_for_safetensors() -> None:
    """Make safetensors' writer give its files the mode any other written file gets.

    safetensors 0.8 writes through a Rust ``NamedTempFile`` renamed into place, which is always
    0o600 (safetensors issue #782, fix pending in PR #789): under umask 022 every weight file
    (``adapter_model.safetensors``, ``model.safetensors``, checkpoints) came out private while the
    config and tokenizer beside it were 0o644, so another user or a container could not load the
    model. transformers, peft and GPTQModel all save through ``safetensors.torch.save_file``, which
    calls ``serialize_file`` from its module globals; wrapping that name here, once, fixes every
    writer. Installed by ``import belle_hf``: ``safetensors`` itself is light (no torch); its
    ``torch`` module, imported later, picks the wrapper up from the package.
    """
    import sys

    import safetensors

    original = safetensors.serialize_file
    if getattr(original, "_belle_keeps_modes", False):
        return

    def serialize_file(tensors, filename, *args, **kwargs):
        mode = _default_file_mode(Path(filename))
        result = original(tensors, filename, *args, **kwargs)
        os.chmod(filename, mode)
        return result

    serialize_file._belle_keeps_modes = True
    safetensors.serialize_file = serialize_file
    for name in ("safetensors.torch", "safetensors.numpy"):  # imported before belle_hf: patch their copies
        module = sys.modules.get(name)
        if module is not None and getattr(module, "serialize_file", None) is original:
            module.serialize_file = serialize_file


def _lock_temp(fd: int) -> None:
    """Hold an advisory lock on a temporary file or folder while it is being written, so that
    :func:`clean_stale_temps` can tell a live writer's temp from one a killed run left behind
    (the kernel drops the lock when its process dies, even by SIGKILL)."""
    try:
        import fcntl
    except ImportError:  # not POSIX: stale temps are reported, never removed
        return
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


def _is_abandoned(temp: Path) -> bool:
    """True when no live process holds ``temp``'s lock (its writer died)."""
    try:
        import fcntl
    except ImportError:
        return False
    try:
        fd = os.open(temp, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def clean_stale_temps(path: str | os.PathLike) -> list[Path]:
    """Remove the ``.NAME.*.tmp`` / ``.NAME.*.old`` leftovers of an atomic write of ``path``
    that a killed run (SIGKILL, power loss) could not clean up; returns what was removed.

    Called by every atomic write before it starts, so the next run on an output tidies up
    after the one that was killed. A temp still locked by a live writer is left alone.
    """
    import shutil

    path = Path(path)
    removed = []
    if not path.parent.is_dir():
        return removed
    for pattern in (f".{glob.escape(path.name)}.*.tmp", f".{glob.escape(path.name)}.*.old"):
        for temp in path.parent.glob(pattern):
            if not _is_abandoned(temp):
                logger.warning("%s: a temporary file of another write of %s is in use; left alone", temp, path)
                continue
            kept = temp / path.name
            if temp.suffix == ".old" and not path.exists() and kept.exists():
                # Killed between moving the old folder aside and moving the new one in: the
                # old one is the last complete version, so it goes back.
                os.replace(kept, path)
                logger.warning("restored %s from %s, left by an interrupted write", path, temp)
            if temp.is_dir() and not temp.is_symlink():
                shutil.rmtree(temp, ignore_errors=True)
            else:
                with contextlib.suppress(FileNotFoundError):
                    temp.unlink()
            logger.warning("removed %s, left by an interrupted write of %s", temp, path)
            removed.append(temp)
    return removed


def clean_stale_temps_in(folder: str | os.PathLike) -> list[Path]:
    """:func:`clean_stale_temps` for every output of ``folder`` that has leftovers: for a cache
    folder whose next write may be to another name than the one a killed run was writing."""
    folder = Path(folder)
    names = {temp.name[1:].rsplit(".", 2)[0] for pattern in (".*.tmp", ".*.old") for temp in folder.glob(pattern)
             if temp.name.count(".") >= 3}
    return [removed for name in sorted(names) for removed in clean_stale_temps(folder / name)]


@contextlib.contextmanager
def _writable(path: Path) -> Iterator[None]:
    """Turn a failure to create, rename or flush ``path``'s files into one line naming it
    (``-o`` under ``/proc``, under a file, on a full disk...)."""
    try:
        yield
    except OSError as error:
        raise BelleError(f"{path}: cannot write here ({error.strerror or error})") from None


def _start_temp(path: Path, make_dir: bool = False) -> tuple[int | None, str]:
    """Create the temp file (or folder) beside ``path``, locked; returns its fd and name."""
    with _writable(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        clean_stale_temps(path)
        if make_dir:
            name = tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
            fd = os.open(name, os.O_RDONLY)
        else:
            fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        _lock_temp(fd)
    return fd, name


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb", encoding: str | None = None) -> Iterator[IO]:
    """Open a temporary file beside ``path``; rename it onto ``path`` only if the block succeeds.

    On any exception, SIGINT and SIGTERM included (see :mod:`belle_hf.interrupts`), the
    temporary file is removed and ``path`` is left as it was, so a crash or a bad record never
    leaves a partial output behind. A path that cannot be written is a :class:`BelleError`
    naming it.
    """
    path = Path(path)
    fd, tmp_name = _start_temp(path)
    try:
        with os.fdopen(fd, mode, encoding=encoding) as handle:
            yield handle
            with _writable(path):
                handle.flush()
                os.fsync(handle.fileno())
        with _writable(path):
            os.chmod(tmp_name, _default_file_mode(path))
            os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_write(path, "w", encoding="utf-8") as handle:
        handle.write(text)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` for writers that want a file name (pyarrow, gguf);
    rename it onto ``path`` when the block succeeds, remove it otherwise."""
    path = Path(path)
    fd, tmp_name = _start_temp(path)
    try:
        yield Path(tmp_name)
        with _writable(path):
            os.chmod(tmp_name, _default_file_mode(path))
            os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
    finally:
        os.close(fd)  # held open only for its lock


def repair_jsonl_tail(path: str | os.PathLike) -> bytes:
    """Read an append-only JSON Lines file, mending the end an interrupted writer may have left.

    A last line without its newline is kept (the newline is added) when it is whole JSON, and cut
    off otherwise, so the next append starts on a fresh line. Returns the file's complete lines.
    """
    import orjson

    path = Path(path)
    data = path.read_bytes()
    complete = data[: data.rfind(b"\n") + 1]
    tail = data[len(complete):]
    if not tail:
        return data
    try:
        orjson.loads(tail)
    except orjson.JSONDecodeError:
        logger.warning("%s: dropping a torn last line (%d bytes) left by an interrupted run", path, len(tail))
        with open(path, "r+b") as handle:
            handle.truncate(len(complete))
        return complete
    with open(path, "ab") as handle:
        handle.write(b"\n")
    return data + b"\n"


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty staging folder beside ``path``; it becomes ``path`` only if the block succeeds.

    An existing ``path`` is moved aside, the staging folder renamed into place, and the old one
    removed, so readers see the old folder or the new one, never a half-written one. On any
    exception the staging folder is removed and ``path`` is left as it was.
    """
    import shutil

    path = Path(path)
    fd, name = _start_temp(path, make_dir=True)
    staging = Path(name)
    try:
        yield staging
        with _writable(path):
            staging.chmod(0o777 & ~_current_umask())  # mkdtemp makes it private; the result is a normal folder
            if path.exists():
                old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
                # (Killed here: clean_stale_temps moves the old folder back on the next run.)
                os.replace(path, old / path.name)
                os.replace(staging, path)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(staging, path)
    finally:
        os.close(fd)
        shutil.rmtree(staging, ignore_errors=True)


def read_keyed_jsonl(path: str | os.PathLike, value_field: str) -> dict[str, Any]:
    """``{entry["key"]: entry[value_field]}`` over an append-only JSON Lines file of keyed entries.

    A missing file is empty; a torn last line is mended (:func:`repair_jsonl_tail`); a damaged
    line is skipped, so it counts as not done rather than crashing a resume.
    """
    import json

    path = Path(path)
    entries: dict[str, Any] = {}
    if not path.exists():
        return entries
    for line in repair_jsonl_tail(path).splitlines():
        try:
            entry = json.loads(line)
            entries[entry["key"]] = entry[value_field]
        except (ValueError, KeyError, TypeError):
            continue
    return entries


def read_json_file(path: str | os.PathLike, missing: str | None = None) -> Any:
    """The JSON value in ``path``; a bad or missing file is a :class:`BelleError` naming it (``missing``
    replaces the message for an absent file)."""
    import json

    from belle_hf.errors import BelleError

    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BelleError(missing or f"{path}: file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise BelleError(f"{path}: not valid JSON: {error}") from None


def check_output_is_not_input(output: str | os.PathLike, inputs: Iterable[str | os.PathLike | None],
                              *, replaces_folder: bool = False) -> None:
    """Refuse an ``output`` that is one of the ``inputs``: the same path, a symlink to it, a
    ``./`` or ``..`` spelling of it, or a hard link (compared with :func:`os.path.samefile`).
    With ``replaces_folder`` (the output folder is swapped whole, :func:`atomic_dir`), an input
    inside it is refused too. ``None`` inputs are skipped; names that are not files
    (``sample:alpaca``, Hub ids) never match a real output.

    Writing over an input replaces the data being read: called by every command that has both.
    """
    out = Path(output)
    out_resolved = out.resolve()
    for source in inputs:
        if source is None:
            continue
        source_path = Path(source)
        same = source_path.resolve() == out_resolved  # also for a second output not written yet
        if not same and out.exists() and source_path.exists():
            with contextlib.suppress(OSError):
                same = os.path.samefile(source_path, out)
        if same:
            raise BelleError(f"{output}: this output is the input {source}; write to another path")
        if replaces_folder and source_path.exists() and out_resolved in source_path.resolve().parents:
            raise BelleError(f"{output}: this output folder holds the input {source} and would be replaced; "
                             "write to another folder")


def relative_path(relpath: Any, what: str) -> PurePosixPath:
    """``relpath`` as a relative POSIX path that cannot climb out of the folder it is joined to.

    Every path read from a file someone else wrote (an XOR manifest from the Hub, an index, a
    card) is checked here before anything is read or written with it; :func:`resolve_inside`
    adds the check against symbolic links on disk. Refused, with a
    :class:`~belle_hf.errors.BelleError` naming ``what`` (e.g. ``xor_manifest.json: files[3].path``):
    a non-string or empty path, an absolute path, a Windows drive or ``\\`` separator (``..\\x``
    escapes on Windows, and makes a confusing name on POSIX), a ``..`` component and a NUL byte.
    """
    from belle_hf.errors import BelleError

    def refuse(reason: str) -> BelleError:
        return BelleError(f"{what}: {relpath!r} {reason}; refusing to use it")

    if not isinstance(relpath, str) or not relpath.strip():
        raise refuse("is not a file path")
    if "\0" in relpath or "\\" in relpath:
        raise refuse("contains a NUL byte or a backslash (paths here use '/')")
    posix = PurePosixPath(relpath)
    if posix.is_absolute() or PureWindowsPath(relpath).drive:
        raise refuse("is an absolute path, not one relative to its folder")
    if ".." in posix.parts:
        raise refuse("climbs out of its folder with '..'")
    if not posix.parts or posix.parts == (".",):
        raise refuse("names the folder itself, not a file in it")
    return posix


def resolve_inside(folder: str | os.PathLike, relpath: Any, what: str) -> Path:
    """``folder / relpath`` after :func:`relative_path`'s checks, refused when it leaves ``folder``
    through a symbolic link already on disk (``resolve`` follows every link on the way, so a link
    to anywhere outside is caught whatever it is named)."""
    from belle_hf.errors import BelleError

    posix = relative_path(relpath, what)
    path = Path(folder) / posix
    root = Path(folder).resolve()
    resolved = path.resolve()
    if resolved == root or not resolved.is_relative_to(root):
        raise BelleError(f"{what}: {relpath!r} leads outside {folder} through a symbolic link; refusing to use it")
    return path
