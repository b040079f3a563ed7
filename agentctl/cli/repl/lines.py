"""Where the REPL's lines come from: prompt_toolkit on a terminal, plain lines from a pipe.

On a terminal: history kept in ``<data_dir>/repl_history`` across sessions, Ctrl-R to search it,
completion of slash commands and process names, a trailing ``\\`` or Esc Enter for another line,
Ctrl-C to clear the line, Ctrl-D to leave.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from rich.console import Console

from agentctl.cli.repl.loop import Repl
from agentctl.config import Settings
from agentctl.errors import EXIT_OK, EXIT_USAGE
from agentctl.output.emit import print_error
from agentctl.output.untrusted import literal
from agentctl.processes.approval import EVERYTHING

PROMPT = "agentctl> "
CONTINUATION = "      ... "


def joined(lines: Iterable[str]) -> Iterator[str]:
    """Lines, with those ending in a backslash joined to the next one."""
    pending: list[str] = []
    for line in lines:
        text = line.rstrip("\n")
        if text.endswith("\\"):
            pending.append(text[:-1])
            continue
        yield "\n".join([*pending, text])
        pending = []
    if pending:
        yield "\n".join(pending)


def piped(repl: Repl, stream: IO[str]) -> int:
    """One request per line until end of input; the worst exit code of the requests."""
    for line in joined(decoded(stream, lambda message: _refuse(repl, message))):
        repl.handle(line)
        if not repl.running:
            break
    return repl.state.worst


def decoded(stream: IO[str], refuse: Callable[[str], None]) -> Iterator[str]:
    """The stream's lines; one that is not text in its encoding is refused alone, the rest still come."""
    raw = getattr(stream, "buffer", None)
    if raw is None:  # already text, nothing to decode
        yield from stream
        return
    encoding = getattr(stream, "encoding", None) or "utf-8"
    for number, data in enumerate(raw, 1):
        try:
            yield data.decode(encoding)
        except UnicodeDecodeError:
            refuse(f"input line {number} is not {encoding} text; skipped it")


def _refuse(repl: Repl, message: str) -> None:
    print_error(message, repl.err)
    repl.state.worst = max(repl.state.worst, EXIT_USAGE)


def interactive(repl: Repl, history_path: Path) -> int:
    """Prompt until Ctrl-D or /exit; always 0 (failures were shown as they happened)."""
    from prompt_toolkit.history import FileHistory

    history_path.parent.mkdir(parents=True, exist_ok=True)
    history = FileHistory(str(history_path))
    repl.state.history = list(reversed(list(history.load_history_strings())))[-100:]
    prompt = _prompt_session(repl, history) if os.environ.get("TERM") != "dumb" else _PlainPrompt(history)
    while repl.running:
        try:
            line = _read(prompt)
        except KeyboardInterrupt:
            continue  # Ctrl-C at the prompt clears the line
        except EOFError:
            break
        repl.handle(line)
    return EXIT_OK


def _read(prompt: Any) -> str:
    lines = [prompt.prompt(PROMPT)]
    while lines[-1].endswith("\\"):
        lines[-1] = lines[-1][:-1]
        lines.append(prompt.prompt(CONTINUATION))
    return "\n".join(lines)


class _PlainPrompt:
    """For terminals prompt_toolkit cannot drive (TERM=dumb): Python's own line input."""

    def __init__(self, history: Any) -> None:
        self._history = history

    def prompt(self, message: str) -> str:
        line = input(message)
        self._history.append_string(line)
        return line


def _completions(repl: Repl, text: str) -> tuple[list[str], str]:
    """Candidates for the word being typed: commands first, process names after /show and /run."""
    words = text.split(" ")
    if len(words) == 1:
        return [c for c in repl.names() if c.startswith("/")], words[0]
    if words[0] in ("/show", "/run") and len(words) == 2:
        return [p.name for p in repl.registry], words[1]
    return [], words[-1]


def _completer(repl: Repl) -> Any:
    from prompt_toolkit.completion import Completer, Completion

    class SlashCompleter(Completer):
        def get_completions(self, document: Any, complete_event: Any) -> Any:
            candidates, word = _completions(repl, document.text_before_cursor)
            for candidate in candidates:
                if candidate.startswith(word):
                    yield Completion(candidate, start_position=-len(word))

    return SlashCompleter()


def _prompt_session(repl: Repl, history: Any) -> Any:
    from prompt_toolkit import PromptSession
    from prompt_toolkit.key_binding import KeyBindings

    bindings = KeyBindings()

    @bindings.add("escape", "enter")
    def _newline(event: Any) -> None:
        event.current_buffer.insert_text("\n")

    completer = _completer(repl)
    return PromptSession(history=history, completer=completer, key_bindings=bindings, complete_while_typing=False)


def run(
    settings: Settings,
    out: Console,
    err: Console,
    redact: Callable[[str], str],
    stdin: IO[str],
    standalone: bool,
    yes: bool = False,
) -> int:
    """Open one session, take lines from the terminal or the pipe, close the session."""
    from agentctl.calls.catalog import catalog, list_for
    from agentctl.calls.session import Session

    listing = list_for(settings)  # once: every request of the session routes to these deployments
    found = catalog(settings, listing)
    for problem in found.problems:
        err.print(literal(f"warning: {problem}"), highlight=False)
    session = Session(settings, standalone=standalone, listing=listing)
    try:
        with err.status("Starting Ray, the Prefect API and the router pool…"):
            session.open()
            session.warm()
        if session.notice:
            err.print(literal(f"warning: {session.notice}"), highlight=False)
        repl = Repl(settings, session, found.registry, out, err, redact)
        repl.state.approved = EVERYTHING if yes else repl.state.approved
        if not stdin.isatty():
            return piped(repl, stdin)
        where = f"{session.prefect_url} (agentctl up)" if session.on_stack else session.prefect_url
        err.print(
            literal(
                f"agentctl repl · {len(found.registry)} processes · model {settings.llm.model} · "
                f"Prefect API {where} · /help for commands, Ctrl-D to leave",
                style="dim",
            ),
            highlight=False,
            soft_wrap=True,
        )
        return interactive(repl, settings.data_dir / "repl_history")
    finally:
        session.close()
