"""Ray's token authentication: on for every cluster agentctl starts or joins.

Ray 2.60 turns token auth on for a cluster ``ray.init()`` starts (and writes ``~/.ray/auth_token``
0644), but ``ray start --head`` turns it on only when a token already exists, and a driver given an
explicit address uses it only when told ``RAY_AUTH_MODE=token``. So agentctl decides once: token
auth on (unless the user set ``RAY_AUTH_MODE`` themselves), the token made first (0600) for a
cluster it starts, and required before it joins one. Ray finds the token as this module does:
``RAY_AUTH_TOKEN``, else the file ``RAY_AUTH_TOKEN_PATH`` names, else ``~/.ray/auth_token``.
Imports no Ray: the CLI's ``up`` uses it before ``ray start``.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import tempfile
from pathlib import Path

from agentctl.errors import StackError

MODE_VAR = "RAY_AUTH_MODE"


def token_path() -> Path:
    """The file Ray reads the token from (``RAY_AUTH_TOKEN_PATH``, else ``~/.ray/auth_token``)."""
    return Path(os.environ.get("RAY_AUTH_TOKEN_PATH") or Path.home() / ".ray" / "auth_token")


def token_on() -> bool:
    """Whether Ray runs with token auth: agentctl's default, unless ``RAY_AUTH_MODE`` says otherwise."""
    return os.environ.get(MODE_VAR, "token").lower() == "token"


def prepare(starting: bool) -> dict[str, str]:
    """Set Ray's auth mode for this process and return it for the Ray processes it starts; make the
    token if ``starting`` a cluster, else require it (a ``StackError`` naming the fix)."""
    os.environ.setdefault(MODE_VAR, "token")
    if token_on():
        if starting:
            _make_token()
        elif not _has_token():
            raise StackError(
                f"no Ray auth token in {token_path()}: copy the cluster's token there (or set "
                f"RAY_AUTH_TOKEN_PATH to its file), or set {MODE_VAR}=disabled for a cluster "
                "without token auth"
            )
    return {MODE_VAR: os.environ[MODE_VAR]}


def _has_token() -> bool:
    if os.environ.get("RAY_AUTH_TOKEN", "").strip():
        return True
    with contextlib.suppress(OSError):
        return bool(token_path().read_text().strip())
    return False


def _make_token() -> None:
    """The token Ray would generate (``ray get-auth-token --generate``), but readable by the user alone."""
    if os.environ.get("RAY_AUTH_TOKEN", "").strip():
        return
    path = token_path()
    if not _has_token():
        _write_new(path)
    with contextlib.suppress(OSError):  # a token file of Ray's own is 0644; not ours to fail over
        path.chmod(0o600)


def _write_new(path: Path) -> None:
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=path.parent, prefix=".auth_token.")  # mkstemp: 0600
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(32))  # what Ray's own generator makes: 256 random bits
        # Linked into place, never half written; a token another agentctl made meanwhile is kept.
        with contextlib.suppress(FileExistsError):
            os.link(temp, path)
        os.unlink(temp)
    except OSError as exc:
        raise StackError(
            f"cannot write Ray's auth token {path} ({exc.strerror}): fix its directory's "
            "permissions, or set RAY_AUTH_TOKEN_PATH"
        ) from None
