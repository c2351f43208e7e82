"""Split the inputs of a pipeline into tasks, keeping their order.

datatrove's readers give each task whole files, but a BELLE corpus is one multi-GB JSON Lines
file, so one file must feed many tasks. :func:`plan_inputs` cuts every JSON Lines file at line
boundaries into byte ranges of about equal size and numbers their first lines (one pass that
only counts newlines), so task ``r`` reads a contiguous slice of the concatenated inputs and
still reports exact ``file:line`` locations. Tasks in rank order are the inputs in order, which
is what "keep the first occurrence" needs across shards and corpora. Parquet files, JSON arrays
and non-local sources (corpus names, Hub ids) go whole to one task.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

from belle_hf.data.files import RECORD_SUFFIXES, is_json_lines

_SCAN_CHUNK = 1 << 23


@dataclass(frozen=True)
class Segment:
    """A part of one source a task reads: a whole source, or the JSON Lines lines starting in ``[start, end)``."""

    source: str
    start: int = 0
    end: int | None = None
    first_line: int = 1

    @property
    def byte_range(self) -> tuple[int, int, int] | None:
        return None if self.end is None else (self.start, self.end, self.first_line)

    def to_dict(self) -> dict:
        return asdict(self)


def expand_sources(sources: list[str | os.PathLike]) -> list[str]:
    """Local folders become their record files (sorted, hidden files skipped); other sources stay."""
    expanded: list[str] = []
    for source in sources:
        path = Path(source).expanduser()
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in RECORD_SUFFIXES
                           and not any(part.startswith(".") for part in p.relative_to(path).parts))
            expanded += [str(p) for p in files]
        else:
            expanded.append(str(path) if path.is_file() else str(source))
    return expanded


def default_tasks(sources: list[str], bytes_per_task: int = 64 << 20) -> int:
    """One task per ``bytes_per_task`` of local input (at least one)."""
    total = sum(Path(s).stat().st_size for s in sources if Path(s).is_file())
    return max(1, -(-total // bytes_per_task))


def plan_inputs(sources: list[str], tasks: int) -> list[list[Segment]]:
    """``tasks`` lists of segments that, read in rank order, are ``sources`` in order."""
    sizes = [Path(s).stat().st_size if Path(s).is_file() else 0 for s in sources]
    total = sum(sizes)
    target = total / tasks if total else 1.0
    plan: list[list[Segment]] = [[] for _ in range(tasks)]
    offset = 0

    def task_at(cumulative: int) -> int:
        return min(tasks - 1, int(cumulative // target))

    for source, size in zip(sources, sizes):
        if not Path(source).is_file() or size == 0 or not is_json_lines(source):
            plan[task_at(offset)].append(Segment(source))
            offset += size
            continue
        boundaries = [int(k * target) - offset for k in range(1, tasks) if offset < k * target < offset + size]
        cuts = [(0, 1)] + _line_starts_after(Path(source), boundaries) + [(size, -1)]
        for (start, first_line), (end, _) in zip(cuts, cuts[1:]):
            if end > start:
                plan[task_at(offset + start)].append(Segment(source, start, end, first_line))
        offset += size
    return plan


def _line_starts_after(path: Path, positions: list[int]) -> list[tuple[int, int]]:
    """For each position (ascending), the first line start at or after it and its line number.

    Reads the file once: newlines are counted up to each cut, never parsed.
    """
    found: list[tuple[int, int]] = []
    counted_to = newlines = 0
    size = path.stat().st_size
    with open(path, "rb") as handle:
        for position in positions:
            cut = 0 if position <= 0 else size
            if position > 0:  # the line holding byte position-1 ends at the next newline
                handle.seek(position - 1)
                at = position - 1
                while chunk := handle.read(1 << 16):
                    newline = chunk.find(b"\n")
                    if newline >= 0:
                        cut = at + newline + 1
                        break
                    at += len(chunk)
            cut = max(cut, counted_to)
            handle.seek(counted_to)
            while counted_to < cut:
                chunk = handle.read(min(cut - counted_to, _SCAN_CHUNK))
                newlines += chunk.count(b"\n")
                counted_to += len(chunk)
            found.append((cut, newlines + 1))
    return found
