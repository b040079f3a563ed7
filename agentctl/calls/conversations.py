"""Conversations: the turns of earlier requests, kept in the data dir and sent with the next request.

A conversation is one file, ``<data_dir>/conversations/<id>.json`` (0600, in a 0700 directory): its
id and its turns, each the chat messages one request added (its ``Turn`` event). Every string is
redacted with the configuration's secrets before it is written, as batch records are. The file
``last`` names the conversation used last: the one ``ask -c`` continues.

What a request carries is bounded by ``router.history_tokens``: whole turns, the newest first, while
they fit; the oldest are dropped. Tokens are estimated, not counted: one per four characters of the
messages' JSON, rounded up (close for English text, and no tokenizer to import).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from agentctl.errors import UsageError, redact_all
from agentctl.events import Event, Turn
from agentctl.private import private_dir

Message = dict[str, Any]
Redact = Callable[[str], str]
_ID = re.compile(r"[0-9a-z]{1,32}")  # also what keeps a typed id inside the directory
START = 'a plain `agentctl ask "..."` starts one, `agentctl ask -c` continues the last'


class Conversation(BaseModel):
    """A conversation's id and its turns, oldest first: the messages each request added."""

    id: str
    turns: list[list[Message]] = []

    def fitting(self, budget: int) -> int:
        """How many of the newest turns fit in ``budget`` tokens together."""
        used = count = 0
        for turn in reversed(self.turns):
            used += estimate(turn)
            if used > budget:
                break
            count += 1
        return count

    def window(self, budget: int) -> list[Message]:
        """The messages of the newest turns that fit in ``budget`` tokens together, oldest first."""
        kept = self.turns[len(self.turns) - self.fitting(budget) :]
        return [message for turn in kept for message in turn]


def estimate(messages: list[Message]) -> int:
    """The tokens ``messages`` cost, estimated: one per four characters of their JSON, rounded up."""
    return -(-len(json.dumps(messages, ensure_ascii=False)) // 4)


class Store:
    """The conversations of a data dir; what it writes is redacted with ``redact``."""

    def __init__(self, data_dir: Path, redact: Redact) -> None:
        self.root = data_dir / "conversations"
        self._redact = redact

    def pick(self, continue_last: bool = False, named: str | None = None) -> Conversation:
        """The conversation a request joins: ``named``, else the last (``continue_last``), else a new one.

        It becomes the last. With no last conversation yet, ``continue_last`` starts one.
        """
        if continue_last and named is not None:
            raise UsageError("-c/--continue and --conversation both name a conversation: give one of them")
        chosen = named if named is not None else self._last_id() if continue_last else None
        conversation = Conversation(id=self._new_id()) if chosen is None else self.load(chosen)
        self.save(conversation)
        return conversation

    def load(self, conversation_id: str) -> Conversation:
        """The stored conversation ``conversation_id``; a UsageError naming how to start one if unknown."""
        path = self.root / f"{conversation_id}.json"
        if not _ID.fullmatch(conversation_id) or not path.is_file():
            raise UsageError(f"no conversation {conversation_id!r} in {self.root}: {START}")
        try:
            return Conversation.model_validate_json(path.read_text(encoding="utf-8"))
        except (ValidationError, UnicodeDecodeError) as exc:
            reason = f"{exc.error_count()} invalid fields" if isinstance(exc, ValidationError) else "not utf-8"
            raise UsageError(f"conversation file {path} cannot be read ({reason}): {START}") from None

    def add(self, conversation: Conversation, messages: list[Message]) -> None:
        """Append one request's messages to ``conversation`` as a turn, and write it."""
        conversation.turns.append(messages)
        self.save(conversation)

    def save(self, conversation: Conversation) -> None:
        """Write ``conversation`` (redacted, 0600, whole or not at all) and remember it as the last."""
        document = redact_all(conversation.model_dump(mode="json"), self._redact)
        _write(self.root, f"{conversation.id}.json", json.dumps(document, ensure_ascii=False))
        _write(self.root, "last", conversation.id)

    def recording(self, conversation: Conversation, events: Iterator[Event]) -> Iterator[Event]:
        """``events`` as they come; the messages of their ``Turn`` are added to ``conversation``."""
        for event in events:
            if isinstance(event, Turn):
                self.add(conversation, event.messages)
            yield event

    def _last_id(self) -> str | None:
        try:
            text = (self.root / "last").read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return None
        return text if _ID.fullmatch(text) and (self.root / f"{text}.json").is_file() else None

    def _new_id(self) -> str:
        while (self.root / f"{(candidate := secrets.token_hex(4))}.json").exists():
            pass  # 4 billion ids: a clash is rare, but a clash would merge two conversations
        return candidate


def _write(directory: Path, name: str, text: str) -> None:
    """Replace ``directory/name`` by ``text`` at once (a temporary file, 0600, renamed over it)."""
    private_dir(directory)
    descriptor, temporary = tempfile.mkstemp(dir=directory, prefix=f".{name}.")  # mkstemp makes it 0600
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(temporary, directory / name)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
