"""Finding processes: the ``agentctl.processes`` entry points (the built-ins among them), the
modules and files named in config, each loaded on its own so one broken source spoils nothing else.

An entry point names either a module, whose ``@process``-decorated objects are collected, or a
callable that returns processes or decorated objects. ``processes.modules`` names modules;
``processes.paths`` names ``.py`` files to load and directories to put on the import path. The
current directory is on the import path too, as with ``python -m``.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import shutil
import sys
import sysconfig
import types
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any

from agentctl.config import Settings
from agentctl.processes.declare import declaration, function_of
from agentctl.processes.deployment_source import Deployment
from agentctl.processes.deployments import as_process
from agentctl.processes.mcp_tools import McpListing
from agentctl.processes.python_source import to_process
from agentctl.processes.registry import Process, Registry

GROUP = "agentctl.processes"


@dataclass
class Discovered:
    """The registry, and one line per source that could not be loaded or clashed."""

    registry: Registry = field(default_factory=Registry)
    problems: list[str] = field(default_factory=list)


def discover(settings: Settings) -> Discovered:
    """Load every process source; problems are collected, never raised."""
    extend_import_path(settings)
    found = Discovered()
    disabled = set(settings.processes.disable)
    for label, load in _sources(settings):
        try:
            processes = list(load())
        except Exception as exc:  # a user's module can fail in any way; report it and go on
            found.problems.append(f"could not load processes from {label}: {type(exc).__name__}: {exc}")
            continue
        for process in processes:
            if process.name not in disabled:
                _add(found, process, label)
    return found


def with_deployments(found: Discovered, deployments: Iterable[Deployment], disabled: Iterable[str] = ()) -> Discovered:
    """``found`` plus a process for each deployment not ``disabled``, in a registry of its own; clashes
    are problems, as between other processes."""
    combined = Discovered(Registry(found.registry), list(found.problems))
    hidden = set(disabled)
    for deployment in deployments:
        try:
            process = as_process(deployment)
        except Exception as exc:  # a schema pydantic cannot build: that deployment only is left out
            combined.problems.append(f"could not use deployment {deployment.full_name}: {type(exc).__name__}: {exc}")
            continue
        if process.name not in hidden:
            _add(combined, process, f"the Prefect deployment {deployment.full_name}")
    return combined


def with_mcp_tools(found: Discovered, listing: McpListing, disabled: Iterable[str] = ()) -> Discovered:
    """``found`` plus the MCP servers' tools of ``listing`` not ``disabled``, in a registry of its own; its
    problems and clashes are problems, as between other processes."""
    combined = Discovered(Registry(found.registry), [*found.problems, *listing.problems])
    hidden = set(disabled)
    for process in listing.processes:
        if process.name not in hidden:
            _add(combined, process, f"the MCP tool {process.entrypoint}")
    return combined


def import_path(settings: Settings) -> list[str]:
    """Directories processes are imported from: the current one and those in processes.paths."""
    dirs = [str(Path.cwd())]
    for entry in settings.processes.paths:
        path = Path(entry).expanduser().resolve()
        dirs.append(str(path if path.is_dir() else path.parent))
    return list(dict.fromkeys(dirs))


def extend_import_path(settings: Settings) -> None:
    """Put import_path() on sys.path of this Python process."""
    for directory in reversed(import_path(settings)):
        if directory not in sys.path:
            sys.path.insert(0, directory)


def _add(found: Discovered, process: Process, label: str) -> None:
    existing = found.registry.get(process.name)
    if existing is not None:
        found.problems.append(
            f"two processes are named {process.name!r} ({existing.entrypoint} and {process.entrypoint} "
            f"from {label}); the second is ignored: rename one or list it in processes.disable"
        )
        return
    found.registry.add(process)


Source = tuple[str, Callable[[], Iterable[Process]]]


def _sources(settings: Settings) -> Iterable[Source]:
    # The built-ins come first so that a plugin cannot shadow them by loading earlier.
    for ep in sorted(
        entry_points(group=GROUP), key=lambda e: (e.value != "agentctl.processes.builtin:builtins", e.name)
    ):
        yield f"entry point {ep.name} ({ep.value})", partial(_from_entry_point, ep)
    for name in settings.processes.modules:
        yield f"module {name}", partial(_from_module_name, name)
    for entry in settings.processes.paths:
        if entry.endswith(".py"):
            yield f"file {entry}", partial(_from_file, Path(entry).expanduser())


def _from_entry_point(ep: EntryPoint) -> Iterable[Process]:
    return _from_object(ep.load())


def _from_module_name(name: str) -> Iterable[Process]:
    return _from_module(importlib.import_module(name))


def _from_file(path: Path) -> Iterable[Process]:
    return _from_module(_import_file(path))


def _from_object(obj: Any) -> Iterable[Process]:
    if isinstance(obj, types.ModuleType):
        return _from_module(obj)
    if callable(obj) and declaration(obj) is None:
        return [item if isinstance(item, Process) else to_process(item) for item in obj()]
    return [to_process(obj)]


def _from_module(module: types.ModuleType) -> list[Process]:
    found = []
    for value in list(vars(module).values()):
        if declaration(value) is not None and getattr(function_of(value), "__module__", None) == module.__name__:
            found.append(to_process(value))
    return found


def _import_file(path: Path) -> types.ModuleType:
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    name = file_module(path)
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path.resolve())
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def file_module(path: Path) -> str:
    """The module name a file of processes.paths is imported as, here and, shipped, in the actors."""
    # A name of its own, so a file called json.py or utils.py cannot replace a real module.
    digest = hashlib.sha256(str(path.expanduser().resolve()).encode()).hexdigest()[:8]
    return f"agentctl_file_{digest}_{path.stem}"


def shipped(settings: Settings) -> Settings:
    """``settings`` as the actors see them once ``to_ship`` travelled in Ray's runtime_env: the
    files of processes.paths become the modules they were shipped as, the directories are gone
    (what the actors import from them travels as modules), so no actor reads this machine's disk."""
    files = [p for p in settings.processes.paths if p.endswith(".py")]
    modules = [*settings.processes.modules, *(file_module(Path(f)) for f in files)]
    processes = settings.processes.model_copy(update={"modules": modules, "paths": []})
    return settings.model_copy(update={"processes": processes, "mcp": _anchored_mcp(settings)})


def _anchored_mcp(settings: Settings) -> Any:
    """The MCP servers as this directory and PATH see them: the actors start their commands there
    (a bare command name is the one this PATH finds, a server's cwd by default this directory)."""
    servers = [
        server.model_copy(
            update={
                "cwd": str(Path(server.cwd or ".").expanduser().resolve()),
                "command": [shutil.which(server.command[0]) or server.command[0], *server.command[1:]],
            }
        )
        if server.command
        else server
        for server in settings.mcp.servers
    ]
    return settings.mcp.model_copy(update={"servers": servers})


def to_ship(settings: Settings) -> tuple[list[Path], dict[str, Path]]:
    """What the actors need from this machine: the top-level package or file of each module in
    processes.modules found outside the installed packages, and the files of processes.paths by the
    module name each is shipped as (``file_module``)."""
    extend_import_path(settings)
    found = (_user_code(name) for name in settings.processes.modules)
    modules = list(dict.fromkeys(path for path in found if path is not None))
    files = [Path(p).expanduser() for p in settings.processes.paths if p.endswith(".py")]
    return modules, {file_module(f): f.resolve() for f in files if f.is_file()}


def _user_code(name: str) -> Path | None:
    """Where module ``name``'s top-level package or file is, unless installed (the nodes have those)."""
    try:
        spec = importlib.util.find_spec(name.split(".")[0])
    except (ImportError, ValueError):
        return None  # not importable here: the actors report it, as they would anyway
    if spec is None or spec.origin in ("built-in", "frozen"):
        return None
    if spec.submodule_search_locations:  # a package; a namespace package has no origin, only its dirs
        path = Path(spec.origin).parent if spec.origin else Path(next(iter(spec.submodule_search_locations)))
    elif spec.origin:
        path = Path(spec.origin)
    else:
        return None
    return None if _installed(path) else path


def _installed(path: Path) -> bool:
    """Whether ``path`` is part of Python's standard library or an installed package."""
    roots = {Path(sysconfig.get_paths()[key]).resolve() for key in ("stdlib", "platstdlib", "purelib", "platlib")}
    return any(path.resolve().is_relative_to(root) for root in roots)


def anchored(settings: Settings) -> Settings:
    """``settings`` with processes.paths made absolute, for processes that run elsewhere (actors)."""
    paths = [str(Path(p).expanduser().resolve()) for p in settings.processes.paths]
    processes = settings.processes.model_copy(update={"paths": paths})
    return settings.model_copy(update={"processes": processes})
