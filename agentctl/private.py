"""What agentctl creates is its user's alone: directories 0700, files 0600.

The CLI sets the umask 077 when it starts, so every file and directory it and its children
(Prefect's server, ``ray start``, PostgreSQL, Ray's workers) create is private. A directory that
may exist from before, made with a looser umask, is made private again where it is used.
"""

from __future__ import annotations

from pathlib import Path


def private_dir(path: Path) -> Path:
    """``path`` as a directory only its owner can enter (created with its parents if missing)."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.chmod(0o700)
    return path
