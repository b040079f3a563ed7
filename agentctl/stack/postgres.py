"""A PostgreSQL server for the Prefect API of ``agentctl up --postgres``, from the system's
installation, with its data under ``<data_dir>/postgres`` and a password kept beside it (0600).

PostgreSQL refuses to run as root; as root it runs as the ``postgres`` user the Debian package
creates, which cannot enter root's private data dir (0700): its cluster then lives in that user's
home, ``~postgres/agentctl/<digest of the data dir>``, owned by it and 0700 too.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import secrets
import shutil
import signal
import subprocess
from pathlib import Path

from agentctl.errors import StackError
from agentctl.private import private_dir
from agentctl.stack import proctree
from agentctl.stack.prefect_server import free_port

INSTALL_HINT = "install it (Debian/Ubuntu: sudo apt-get install postgresql) or set database.url"
USER, DATABASE = "agentctl", "prefect"


def binaries(configured: str | None = None) -> Path:
    """The directory holding initdb and pg_ctl: ``configured`` (database.postgres_bin), else on PATH,
    else Debian's /usr/lib/postgresql/<version>/bin."""
    if configured:
        where = Path(configured).expanduser()
        if (where / "initdb").exists() and (where / "pg_ctl").exists():
            return where
        raise StackError(f"no initdb and pg_ctl in {where} (database.postgres_bin): fix it, or {INSTALL_HINT}")
    found = shutil.which("pg_ctl")
    if found and (Path(found).resolve().parent / "initdb").exists():
        return Path(found).resolve().parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: _major(p.parent.parent.name))
    if versions:
        return versions[-1].parent
    raise StackError(f"agentctl up --postgres needs PostgreSQL and none is installed: {INSTALL_HINT}")


def _major(name: str) -> int:
    return int(name) if name.isdigit() else 0


def home_of(data_dir: Path) -> Path:
    """Where the cluster of ``data_dir`` lives: ``<data_dir>/postgres``, or as root in the postgres
    user's home, the one place that user reaches while the data dir stays private."""
    if os.geteuid() != 0:
        return data_dir / "postgres"
    digest = hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:12]
    return Path(_postgres_user().pw_dir) / "agentctl" / digest


def _postgres_user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam("postgres")
    except KeyError:
        raise StackError(
            "PostgreSQL does not run as root and there is no postgres user: run agentctl up "
            f"--postgres as an ordinary user, or {INSTALL_HINT}"
        ) from None


class LocalPostgres:
    """One PostgreSQL server on 127.0.0.1 (no Unix socket), its cluster created on first use."""

    def __init__(self, data_dir: Path, bin_dir: str | None = None, env: dict[str, str] | None = None) -> None:
        self.data_dir, self.home = data_dir, home_of(data_dir)
        self.pgdata = self.home / "data"
        self.log_path = self.home / "server.log"
        self.port = free_port()
        self._bin = binaries(bin_dir)
        self._as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        self._env = dict(os.environ if env is None else env)

    def start(self) -> str:
        """Start the server (creating the cluster and database the first time); return the database URL."""
        self._prepare()
        if not (self.pgdata / "PG_VERSION").exists():
            self._run(
                "initdb",
                "-D",
                str(self.pgdata),
                "-U",
                USER,
                "--auth=scram-sha-256",
                f"--pwfile={self._password_file}",
                "-E",
                "UTF8",
            )
        options = f"-c listen_addresses=127.0.0.1 -c port={self.port} -c unix_socket_directories=''"
        try:  # pg_ctl puts the server in a session of its own: Ctrl-C of up does not reach it
            self._run("pg_ctl", "-D", str(self.pgdata), "-l", str(self.log_path), "-o", options, "-w", "start")
            self._create_database()
        except BaseException:  # failed or interrupted half way: leave no server running
            stop(self.data_dir, str(self._bin), self._env)
            raise
        return self.url(with_password=True)

    def url(self, with_password: bool = False) -> str:
        """The SQLAlchemy URL Prefect uses; without the password for anything shown."""
        password = f":{self._password_file.read_text().strip()}" if with_password else ""
        return f"postgresql+asyncpg://{USER}{password}@127.0.0.1:{self.port}/{DATABASE}"

    @property
    def pid(self) -> int | None:
        """The postmaster's process id, from its pid file."""
        return postmaster(self.pgdata)

    @property
    def _password_file(self) -> Path:
        return self.home / "password"

    def _prepare(self) -> None:
        private_dir(self.home)
        if not self._password_file.exists():
            self._password_file.write_text(secrets.token_urlsafe(24))
        self._password_file.chmod(0o600)
        if self._as:
            self._hand_to_postgres()

    def _hand_to_postgres(self) -> None:
        user = _postgres_user()
        for path in (self.home.parent, self.home, *self.home.rglob("*")):
            os.chown(path, user.pw_uid, user.pw_gid)
        if _execute([*self._as, "test", "-w", str(self.home)], self._env).returncode != 0:
            raise StackError(
                f"the postgres user cannot reach {self.home}: make its home "
                f"({user.pw_dir}) its own, or run agentctl up --postgres as an ordinary user"
            )

    def _create_database(self) -> None:
        env = {**self._env, "PGPASSWORD": self._password_file.read_text().strip()}
        command = [
            *self._as,
            str(self._bin / "createdb"),
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-U",
            USER,
            DATABASE,
        ]
        done = _execute(command, env)
        if done.returncode != 0 and "already exists" not in done.stderr:
            raise StackError(f"createdb failed: {done.stderr.strip()}; see {self.log_path}")

    def _run(self, program: str, *args: str) -> None:
        command = [*self._as, str(self._bin / program), *args]
        done = _execute(command, self._env)
        if done.returncode != 0:
            detail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
            raise StackError(f"{program} failed: {detail[0]}; see {self.log_path}")


def postmaster(pgdata: Path) -> int | None:
    """The pid of the server running on ``pgdata``: its pid file's, if that process is a postgres."""
    try:
        pid = int((pgdata / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    # After a reboot the pid file is stale and its pid may be another process, even another
    # PostgreSQL server: ours names its data directory on its command line.
    return pid if str(pgdata) in proctree.cmdline(pid) else None


def stop(data_dir: Path, bin_dir: str | None = None, env: dict[str, str] | None = None) -> bool:
    """Stop the server of ``data_dir`` if it runs; True when it did."""
    pgdata = home_of(data_dir) / "data"
    if (pid := postmaster(pgdata)) is None:
        return False
    try:
        pg_ctl = binaries(bin_dir) / "pg_ctl"
    except StackError:  # uninstalled since up: SIGINT is PostgreSQL's own fast shutdown
        proctree.send(pid, signal.SIGINT)
        proctree.wait_gone([pid], timeout=30)
        return not proctree.alive(pid)
    prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    command = [*prefix, str(pg_ctl), "-D", str(pgdata), "-m", "fast", "-w", "stop"]
    return _execute(command, env).returncode == 0


def _execute(command: list[str], env: dict[str, str] | None) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(command, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    except OSError as exc:  # runuser or a PostgreSQL program missing
        raise StackError(f"cannot run {command[0]} ({exc.strerror}): {INSTALL_HINT}") from None
