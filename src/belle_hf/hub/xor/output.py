"""Where ``belle xor decode`` writes: never into a folder that holds files of something else.

A stale file beside a decoded model is worse than a failed decode: ``from_pretrained`` prefers
a leftover ``model.safetensors`` to the decoded shards and silently loads other weights. So the
output folder must be new, empty, or a previous decode of the same diff: every file in it is one
the manifest names, with the manifest's checksum. Such a folder is completed in place (each file
is replaced atomically, so nothing in it is ever half-written).

A new decode is staged in ``OUT.partial`` beside ``OUT`` and renamed to ``OUT`` only when every
file matches its checksum. A failed check removes the staging folder; an interruption (Ctrl-C,
SIGTERM, SIGKILL) leaves it, and the rerun resumes it, keeping its verified files. It carries a
marker naming the diff (the manifest's SHA-256), so a rerun resumes only its own diff's work and
never adopts a folder it did not create. (:func:`belle_hf.io.atomic_dir` stages in a folder with
a random name, which a rerun after a SIGKILL could not find; a multi-GB decode must resume.)
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
from pathlib import Path
from typing import Callable, Iterator

from belle_hf.errors import BelleError
from belle_hf.io import atomic_write_text, relative_path

logger = logging.getLogger(__name__)

MARKER_NAME = ".belle-xor-decode.json"
PARTIAL_SUFFIX = ".partial"
_TEMP_NAME = re.compile(r"\.(?P<name>.+)\.[A-Za-z0-9_]+\.tmp")
"""What :func:`belle_hf.io.atomic_write` and the shard writer name their temporary files."""


class DecodeOutput:
    """The folder a decode writes into: ``OUT`` itself (resuming a previous decode of the same
    diff) or its staging folder ``OUT.partial``; see the module docstring.

    Construction checks everything and writes nothing; :meth:`writing` does the writing.
    ``is_complete(entry, path)`` says whether ``path`` already holds ``entry``'s verified bytes.
    """

    def __init__(self, out_dir: str | os.PathLike, manifest: dict, manifest_sha256: str,
                 is_complete: Callable[[dict, Path], bool]):
        self.shown = Path(out_dir)
        self.out_dir = self.shown.resolve()
        self.staging = self.out_dir.with_name(self.out_dir.name + PARTIAL_SUFFIX)
        self.manifest_sha256 = manifest_sha256
        self.entries = {relative_path(entry["path"], "manifest path").as_posix(): entry for entry in manifest["files"]}
        self.complete: set[str] = set()
        """Manifest paths whose output is already complete and verified: not decoded again."""
        self._discard_staging = False
        if self.out_dir.exists() and not self.out_dir.is_dir():
            raise BelleError(f"{self.shown}: exists and is not a folder")
        present = self._survey(self.out_dir, self.shown) if self.out_dir.is_dir() else []
        self.in_place = bool(present)
        if self.in_place:
            for rel in present:
                if not is_complete(self.entries[rel], self.out_dir / rel):
                    raise BelleError(f"{self.shown / rel}: differs from the file the diff rebuilds, so {self.shown} is "
                                     "not a decode of this diff; decode into a new or empty folder")
            self.complete = set(present)
            logger.info("%s: completing a previous decode of this diff (%d of %d files already there)",
                        self.shown, len(present), len(self.entries))
        elif self.staging.exists():
            self._adopt_staging(is_complete)

    @property
    def folder(self) -> Path:
        return self.out_dir if self.in_place else self.staging

    def _survey(self, folder: Path, shown: Path) -> list[str]:
        """Manifest paths present in ``folder``; refuses a folder holding anything else."""
        present, stale = [], []
        for path in sorted(folder.rglob("*")):
            rel = path.relative_to(folder).as_posix()
            if path.is_dir() and not path.is_symlink():
                continue
            if rel in self.entries and path.is_file() and not path.is_symlink():
                present.append(rel)
            elif not (self._is_leftover(rel) or (folder == self.staging and rel == MARKER_NAME)):
                stale.append(rel)
        if stale:
            more = f" (and {len(stale) - 1} more)" if len(stale) > 1 else ""
            raise BelleError(f"{shown}: not empty and not a decode of this diff: it holds {stale[0]}{more}, which the "
                             "diff does not rebuild (a stale file from_pretrained could load instead of the decoded "
                             "ones); decode into a new or empty folder")
        return present

    def _is_leftover(self, rel: str) -> bool:
        """A temporary file an interrupted decode left beside one of the manifest's files."""
        parent, _, name = rel.rpartition("/")
        match = _TEMP_NAME.fullmatch(name)
        return bool(match) and (f"{parent}/{match['name']}" if parent else match["name"]) in self.entries

    def _adopt_staging(self, is_complete: Callable[[dict, Path], bool]) -> None:
        marker = self.staging / MARKER_NAME
        try:
            made_for = json.loads(marker.read_text(encoding="utf-8")).get("manifest_sha256")
        except (OSError, ValueError, AttributeError):
            raise BelleError(f"{self.staging}: exists and is not a partial decode made by belle (no {MARKER_NAME}); "
                             "remove or rename it") from None
        if made_for != self.manifest_sha256:
            logger.warning("%s: discarding a partial decode of another diff", self.staging)
            self._discard_staging = True
            return
        present = self._survey(self.staging, self.staging)
        self.complete = {rel for rel in present if is_complete(self.entries[rel], self.staging / rel)}
        logger.info("%s: resuming an interrupted decode (%d of %d files already verified)",
                    self.staging, len(self.complete), len(self.entries))

    def _remove_leftovers(self, folder: Path) -> None:
        for path in folder.rglob(".*.tmp"):
            if path.is_file() and self._is_leftover(path.relative_to(folder).as_posix()):
                logger.info("removing %s, left by an interrupted decode", path)
                path.unlink()

    @contextlib.contextmanager
    def writing(self) -> Iterator[Path]:
        """Yield the folder to write the files in; on success the result is ``OUT``."""
        if self.in_place:
            self._remove_leftovers(self.out_dir)
            yield self.out_dir
            return
        if self._discard_staging:
            shutil.rmtree(self.staging)
        self.staging.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.staging / MARKER_NAME, json.dumps({"manifest_sha256": self.manifest_sha256}) + "\n")
        self._remove_leftovers(self.staging)
        try:
            yield self.staging
        except BelleError:
            shutil.rmtree(self.staging, ignore_errors=True)  # failed verification: nothing half-written stays
            raise
        except BaseException:
            logger.warning("interrupted: the files decoded so far are kept in %s; rerun the same command to resume",
                           self.staging)
            raise
        (self.staging / MARKER_NAME).unlink()
        if self.out_dir.is_dir():  # empty but for empty folders (checked): rename(2) replaces an empty folder
            for path in sorted(self.out_dir.rglob("*"), reverse=True):
                path.rmdir()
        os.replace(self.staging, self.out_dir)
