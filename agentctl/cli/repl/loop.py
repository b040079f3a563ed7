"""``agentctl repl``: many requests on one warm session, with slash commands.

``Repl.handle()`` takes one line (a request or a slash command) whatever it came from; the
terminal's line editor and the reader of piped input live in ``repl_input``.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from agentctl.calls.approval import Approval
from agentctl.calls.conversations import Conversation, Store
from agentctl.calls.session import Session
from agentctl.config import Settings
from agentctl.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, AgentctlError, UsageError, first_line
from agentctl.events import Event
from agentctl.output.emit import emit, print_error
from agentctl.output.untrusted import literal
from agentctl.processes.approval import NOTHING, Approved
from agentctl.processes.registry import Registry

COMMANDS = {
    "/help": "this list",
    "/processes": "the registered processes",
    "/show NAME": "one process: parameters, schema, source",
    "/run NAME k=v ...": "run a process by hand, without the LLM",
    "/dry-run on|off": "route requests without running them",
    "/json on|off": "print each request's outcome as one JSON document",
    "/model [NAME|default]": "the LLM model for the next requests",
    "/new": "start a new conversation: the next request goes without the earlier turns",
    "/history [input]": "the conversation's turns; with input, the last lines typed",
    "/exit": "leave (or Ctrl-D)",
}


@dataclass
class ReplState:
    """What the slash commands change."""

    json: bool = False
    dry_run: bool = False
    model: str | None = None
    history: list[str] = field(default_factory=list)  # the lines typed, as the line editor keeps them
    conversation: Conversation | None = None  # started by the first request, and again after /new
    worst: int = EXIT_OK
    approved: Approved = NOTHING  # --yes, and the processes answered "always"


class Repl:
    """Turns lines into requests and commands on an open session."""

    def __init__(
        self,
        settings: Settings,
        session: Session,
        registry: Registry,
        out: Console,
        err: Console,
        redact: Callable[[str], str],
    ) -> None:
        self.settings, self.session, self.registry = settings, session, registry
        self.out, self.err, self.redact = out, err, redact
        self.state = ReplState()
        self.running = True
        self._commands: dict[str, Callable[[list[str]], int]] = {
            "/help": self._help,
            "/processes": self._processes,
            "/show": self._show,
            "/run": self._run,
            "/dry-run": self._dry_run,
            "/json": self._json,
            "/model": self._model,
            "/new": self._new,
            "/history": self._history,
            "/exit": self._exit,
            "/quit": self._exit,
        }

    def handle(self, line: str) -> int:
        """Handle one line; return its exit code (0 for success). ``running`` turns False on /exit."""
        text = line.strip()
        if not text:
            return EXIT_OK
        self.state.history.append(text)
        try:
            code = self._command(text) if text.startswith("/") else self._request(text)
        except AgentctlError as exc:
            print_error(self.redact(str(exc)), self.err)
            code = exc.exit_code
        except KeyboardInterrupt:
            self.err.print(Text("cancelled", style="yellow"))
            code = EXIT_INTERRUPTED
        except Exception as exc:  # one bad line must not end the session
            print_error(f"{type(exc).__name__}: {self.redact(first_line(str(exc)))}", self.err)
            code = EXIT_FAILED
        if code not in (EXIT_OK, EXIT_INTERRUPTED):
            self.state.worst = max(self.state.worst, code)
        return code

    def names(self) -> list[str]:
        """Slash commands and process names, for completion."""
        return [*self._commands, *(p.name for p in self.registry)]

    def _request(self, text: str) -> int:
        # A dry run runs nothing, so it neither joins the conversation nor is sent the earlier turns.
        joined = None if self.state.dry_run else self._conversation()
        return self._render(lambda approval: self._events(text, approval, joined), text, joined)

    def _conversation(self) -> Conversation:
        """The session's conversation; the first request (or the first after /new) starts one."""
        if self.state.conversation is None:
            self.state.conversation = self._store().pick()
        return self.state.conversation

    def _store(self) -> Store:
        return Store(self.settings.data_dir, self.redact)

    def _events(self, text: str, approval: Approval, joined: Conversation | None) -> Iterator[Event]:
        settings = self.settings
        if self.state.model:
            settings = settings.model_copy(update={"llm": settings.llm.model_copy(update={"model": self.state.model})})
        settings.api_key()
        if joined is None:
            from agentctl.calls.dry_run import dry_run

            return dry_run(settings, text)
        history = joined.window(settings.router.history_tokens)
        return self._store().recording(joined, self.session.ask(text, self.state.model, approval, history=history))

    def _render(
        self, events: Callable[[Approval], Iterator[Event]], label: str, joined: Conversation | None = None
    ) -> int:
        """Render the events of one request, whose approval asks y / n / always on a terminal."""
        from agentctl.cli.approve import TerminalAsk, can_ask
        from agentctl.output.stream import renderer

        conversation = joined.id if joined else None
        show = renderer(self.out, self.err, self.redact, json=self.state.json, label=label, conversation=conversation)
        ask = TerminalAsk(self.err, show.paused, self.redact, always=True) if can_ask(self.state.json) else None
        approval = Approval(self.state.approved, ask)
        try:
            return show.render(events(approval))
        finally:
            self.state.approved = approval.approved

    def _command(self, text: str) -> int:
        try:
            name, *args = shlex.split(text)
        except ValueError as exc:
            raise UsageError(f"cannot read that command ({exc}): check its quotes") from None
        handler = self._commands.get(name)
        if handler is None:
            known = ", ".join(c.split()[0] for c in COMMANDS)
            self.err.print(literal(f"unknown command {name}; the commands are: {known}", style="yellow"))
            return EXIT_USAGE
        return handler(args)

    def _help(self, args: list[str]) -> int:
        table = Table(
            "command", "what it does", title="requests are plain language; commands start with /", title_justify="left"
        )
        for command, what in COMMANDS.items():
            table.add_row(command, what)
        table.add_row("line ending in \\", "continue the request on the next line (or Esc Enter)")
        table.add_row("Ctrl-R / Ctrl-C", "search the history / cancel the request in flight")
        self.out.print(table)
        return EXIT_OK

    def _processes(self, args: list[str]) -> int:
        from agentctl.output.views import processes_output

        emit(processes_output(self.registry, self.settings), json=False, out=self.out)
        return EXIT_OK

    def _show(self, args: list[str]) -> int:
        from agentctl.output.views import process_output

        emit(process_output(self._lookup(args, "/show NAME"), self.settings), json=False, out=self.out)
        return EXIT_OK

    def _run(self, args: list[str]) -> int:
        from agentctl.processes.params import parse

        process = self._lookup(args, "/run NAME k=v ...")
        arguments = parse(process, args[1:], None)
        return self._render(
            lambda approval: self.session.run(process.name, arguments, approval), f"/run {process.name}"
        )

    def _lookup(self, args: list[str], usage: str) -> Any:
        if not args:
            raise UsageError(f"usage: {usage}")
        process = self.registry.get(args[0])
        if process is None:
            known = ", ".join(p.name for p in self.registry)
            raise UsageError(f"no process named {args[0]!r}; the processes are: {known}")
        return process

    def _dry_run(self, args: list[str]) -> int:
        self.state.dry_run = _switch(args, "/dry-run", self.state.dry_run)
        self.out.print(f"dry run {'on: requests are routed, not run' if self.state.dry_run else 'off'}")
        return EXIT_OK

    def _json(self, args: list[str]) -> int:
        self.state.json = _switch(args, "/json", self.state.json)
        self.out.print(f"json {'on' if self.state.json else 'off'}")
        return EXIT_OK

    def _model(self, args: list[str]) -> int:
        if args:
            self.state.model = None if args[0] == "default" else args[0]
        self.out.print(literal(f"model: {self.state.model or self.settings.llm.model}"))
        return EXIT_OK

    def _new(self, args: list[str]) -> int:
        self.state.conversation = None
        self.out.print("new conversation: the next request goes without the earlier turns")
        return EXIT_OK

    def _history(self, args: list[str]) -> int:
        if args and args[0] != "input":
            raise UsageError("usage: /history [input]")
        if args:
            for number, entry in enumerate(self.state.history[-21:-1], 1):
                self.out.print(literal(f"{number:>3}  {entry}"))
            return EXIT_OK
        return self._turns()

    def _turns(self) -> int:
        from agentctl.output.conversation import turns_text

        joined = self.state.conversation
        if joined is None or not joined.turns:
            self.out.print("no turns yet: each request and its outcome become one (/history input: the lines typed)")
            return EXIT_OK
        sent = joined.fitting(self.settings.router.history_tokens)
        self.out.print(turns_text(joined.id, joined.turns, sent, self.redact))
        return EXIT_OK

    def _exit(self, args: list[str]) -> int:
        self.running = False
        return EXIT_OK


def _switch(args: list[str], command: str, current: bool) -> bool:
    if not args:
        return not current
    if args[0] not in ("on", "off"):
        raise UsageError(f"usage: {command} on|off")
    return args[0] == "on"
