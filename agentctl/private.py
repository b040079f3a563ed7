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


def kept_token(path: Path) -> tuple[str, bool]:
    """The bearer token kept in ``path`` (0600, in a 0700 directory), made now if missing; and
    whether it was made now."""
    import os
    import secrets

    private_dir(path.parent)
    token = path.read_text(encoding="utf-8").strip() if path.is_file() else ""
    if token:
        path.chmod(0o600)  # a file copied in with a looser mode
        return token, False
    token = secrets.token_urlsafe(32)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        file.write(token + "\n")
    return token, True
