"""Where a batch's records go: one JSON line each, written and flushed as each item finishes.

``--out`` is appended to while the batch runs, so whatever finished is on disk when the batch is
interrupted or the machine stops; at the end the file is compacted (rewritten atomically) to one
record per id: the last successful one, else the last one. Appending then compacting keeps both
promises (every finished record written at once, one record per id at the end) without holding
records in memory: compaction keeps only an index per id.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from agentctl.errors import UsageError
from agentctl.views import BatchRecord

Redact = Callable[[str], str]


def key(item_id: Any) -> str:
    """The id as --out and --resume compare it: ``3`` and ``"3"`` are different ids."""
    return json.dumps(item_id)


class Records:
    """Records to stdout, or to ``path`` (0600) with ``resume`` reading what succeeded there before."""

    def __init__(self, path: Path | None, redact: Redact, resume: bool = False) -> None:
        if resume and path is None:
            raise UsageError("--resume needs --out: the file whose successful records are kept")
        self.path, self._redact = path, redact
        self.done = succeeded_ids(path) if resume and path is not None else set()
        self._file: IO[str] = sys.stdout if path is None else _open_private(path, append=resume)

    def write(self, record: BatchRecord) -> None:
        """Write one record, on disk at once."""
        self._file.write(self._redact(json.dumps(record.document())) + "\n")
        self._file.flush()

    def close(self) -> None:
        """Finish the file: one record per id."""
        if self.path is None:
            return
        self._file.close()
        compact(self.path)


def _open_private(path: Path, append: bool) -> IO[str]:
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else os.O_TRUNC), 0o600)
    except OSError as exc:
        raise UsageError(f"cannot write the records to {path}: {exc.strerror}") from None
    os.fchmod(descriptor, 0o600)  # a file that existed keeps no wider mode: records hold results
    handle = os.fdopen(descriptor, "a", encoding="utf-8")
    if append and not _ends_a_line(path):
        handle.write("\n")  # a record cut short by a crash stays a line of its own, not part of the next
    return handle


def _ends_a_line(path: Path) -> bool:
    with path.open("rb") as raw:
        if raw.seek(0, os.SEEK_END) == 0:
            return True
        raw.seek(-1, os.SEEK_END)
        return raw.read(1) == b"\n"


def _documents(path: Path) -> Iterator[tuple[int, dict[str, Any] | None]]:
    """(line index, the record or None when the line is no record: cut short by a crash)."""
    with contextlib.suppress(FileNotFoundError), path.open(encoding="utf-8", errors="replace") as lines:
        for index, line in enumerate(lines):
            try:
                doc = json.loads(line)
            except json.JSONDecodeError:
                doc = None
            yield index, doc if isinstance(doc, dict) and "id" in doc else None


def succeeded_ids(path: Path) -> set[str]:
    """The ids (as ``key``) with a successful record in ``path``."""
    return {key(doc["id"]) for _, doc in _documents(path) if doc is not None and doc.get("error") is None}


def compact(path: Path) -> None:
    """Rewrite ``path`` atomically with one record per id: its last successful one, else its last one."""
    best: dict[str, tuple[int, bool]] = {}
    for index, doc in _documents(path):
        if doc is not None:
            ok, known = doc.get("error") is None, best.get(key(doc["id"]))
            if ok or known is None or not known[1]:
                best[key(doc["id"])] = (index, ok)
    kept = {index for index, _ in best.values()}
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # 0600, same filesystem
    with os.fdopen(descriptor, "w", encoding="utf-8") as out, path.open(encoding="utf-8", errors="replace") as lines:
        out.writelines(line for index, line in enumerate(lines) if index in kept)
    os.replace(temporary, path)
