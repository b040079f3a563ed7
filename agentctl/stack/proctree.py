"""Local processes by what they are, not by what we started: Ray's daemons under a temp dir and
their descendants, liveness checks, signals. Reads /proc; Linux only, like Ray's own tooling here.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

_RAYLET, _GCS = "/raylet/raylet", "/gcs/gcs_server"  # the head's daemons, by their programs


def ray_pids(temp_dir: str) -> list[int]:
    """Processes of the Ray head started with ``temp_dir``: the daemons that name it, and their
    descendants (agents and workers rename themselves ``ray::...``)."""
    parents: dict[int, int] = {}
    found: set[int] = set()
    marks = (temp_dir, _session_of(temp_dir))
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or entry.name == str(os.getpid()):
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(") ", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if _names_as_option(cmdline, marks):
            found.add(int(entry.name))
    return sorted(pid for pid in parents if _descends(pid, found, parents))


def ray_head_runs(temp_dir: str) -> bool:
    """Whether the Ray head started with ``temp_dir`` can serve: its GCS server and its raylet both
    run (without either, what is left of it only makes Ray's clients wait a minute, then fail)."""
    programs = [_program(pid) for pid in ray_pids(temp_dir)]
    return any(p.endswith(_RAYLET) for p in programs) and any(p.endswith(_GCS) for p in programs)


def ray_stop_order(pids: list[int]) -> list[list[int]]:
    """``pids`` in the order ``ray stop`` terminates them: the raylets, the rest, the GCS servers."""
    raylets = [p for p in pids if _program(p).endswith(_RAYLET)]
    gcs = [p for p in pids if _program(p).endswith(_GCS)]
    return [raylets, [p for p in pids if p not in raylets and p not in gcs], gcs]


def _names_as_option(cmdline: str, marks: tuple[str, ...]) -> bool:
    # Ray's daemons get the directory as an option (--temp-dir=..., --log_dir=..., --session-dir=...);
    # a pager or a shell that merely names a log file under it does not count.
    return any(arg.startswith("--") and any(mark in arg for mark in marks) for arg in cmdline.split())


def cmdline(pid: int) -> str:
    """The command line of ``pid``, "" when it is gone."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def stop_group(pid: int, timeout: float = 15) -> None:
    """SIGTERM the process group ``pid`` leads, SIGKILL it if it outlives ``timeout``."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, sig)
        wait_gone([pid], timeout)
        if not alive(pid):
            return


def _program(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0", 1)[0].decode(errors="replace")
    except OSError:
        return ""


def _descends(pid: int, roots: set[int], parents: dict[int, int]) -> bool:
    while pid > 1:
        if pid in roots:
            return True
        pid = parents.get(pid, 0)
    return False


def _session_of(temp_dir: str) -> str:
    latest = Path(temp_dir) / "session_latest"
    return str(latest.resolve()) if latest.exists() else f"{temp_dir}/session_"


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie does not)."""
    try:
        os.kill(pid, 0)
        return not Path(f"/proc/{pid}/stat").read_text().split(") ")[-1].startswith("Z")
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False


def send(pid: int, sig: int) -> None:
    """Signal ``pid`` if it still exists."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def wait_gone(pids: list[int], timeout: float = 15) -> None:
    """Wait until none of ``pids`` runs, at most ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
