"""The user's process code for router actors on any node: it travels in the Ray job's runtime_env
(``py_modules``), uploaded once when the driver connects, so a node without the user's checkout
imports it. Installed packages are the nodes' own; secrets never travel this way (see worker_env)."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from agentctl.config import Settings
from agentctl.processes.discovery import to_ship
from agentctl.stack import ray_cluster


@contextlib.contextmanager
def staged(settings: Settings) -> Iterator[list[str]]:
    """The ``py_modules`` of the runtime_env, valid for the block (``ray.init`` uploads them): the
    user's modules as they are, each processes.paths file as a copy named after its module."""
    modules, files = to_ship(settings)
    with tempfile.TemporaryDirectory(prefix="agentctl-ship-") as stage:  # 0700, gone after the upload
        copies = [_copy(source, Path(stage) / f"{name}.py") for name, source in files.items()]
        yield [str(path) for path in [*modules, *copies]]


def _copy(source: Path, target: Path) -> Path:
    shutil.copyfile(source, target)
    os.chmod(target, 0o600)
    return target


def connect(settings: Settings, env_vars: dict[str, str]) -> bool:
    """``ray_cluster.connect`` for a driver that starts router actors: the user's code goes along."""
    with staged(settings) as py_modules:
        return ray_cluster.connect(settings, env_vars, py_modules)
