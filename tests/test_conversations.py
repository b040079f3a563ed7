"""Conversations in-process: the store's files, ids and bounds, the turn of a one-call request, how
``--json`` names the conversation and how ``/history`` shows it. No Ray, no Prefect, no subprocess."""

from __future__ import annotations

import json
import re
import stat
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from agentctl.calls.conversations import Conversation, Store, estimate
from agentctl.errors import EXIT_USAGE, UsageError, redact
from agentctl.events import ChatReply, Turn
from agentctl.output.conversation import turns_text
from agentctl.views import AskOutput, BatchRecord
from tests.turns import call_turn, chat_turn

SECRET = "sk-test-7d1c0a9e55"


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "data", lambda text: redact(text, [SECRET]))


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_files_are_private_and_hold_no_secret(store: Store) -> None:
    talk = store.pick()
    turn = call_turn(f"stars with token {SECRET}", "github_repo_info", {"token": SECRET}, {"echo": SECRET}, 4000)
    store.add(talk, turn.messages)

    saved = store.root / f"{talk.id}.json"
    text = saved.read_text()
    assert SECRET not in text and "stars with token ***" in text
    assert mode(store.root) == 0o700 and mode(saved) == 0o600 and mode(store.root / "last") == 0o600
    assert sorted(p.name for p in store.root.iterdir()) == sorted([saved.name, "last"])  # no temporary left


def test_ids_can_be_typed_and_the_last_is_continued(store: Store) -> None:
    first = store.pick()
    store.add(first, chat_turn("capital of France?", "Paris.").messages)
    second = store.pick()

    assert first.id != second.id and all(re.fullmatch("[0-9a-f]{8}", i) for i in (first.id, second.id))
    assert store.pick(continue_last=True).id == second.id
    again = store.pick(named=first.id)
    assert again.turns == first.turns  # read back from its file
    assert store.pick(continue_last=True).id == first.id  # the one used last is the last


def test_continuing_with_no_conversation_yet_starts_one(store: Store) -> None:
    talk = store.pick(continue_last=True)
    assert talk.turns == [] and (store.root / f"{talk.id}.json").is_file()


@pytest.mark.parametrize("typed", ["nope1234", "../outside", ""])
def test_an_unknown_id_names_how_to_start_one(store: Store, typed: str) -> None:
    store.pick()
    (store.root.parent / "outside.json").write_text('{"id": "outside"}')  # a file the id must not reach
    with pytest.raises(UsageError) as caught:
        store.pick(named=typed)
    assert caught.value.exit_code == EXIT_USAGE
    assert str(caught.value).startswith(f"no conversation {typed!r}") and "agentctl ask -c" in str(caught.value)


def test_continue_and_a_named_conversation_together_are_refused(store: Store) -> None:
    with pytest.raises(UsageError, match="give one of them"):
        store.pick(continue_last=True, named=store.pick().id)


def test_a_damaged_file_is_a_usage_error(store: Store) -> None:
    talk = store.pick()
    (store.root / f"{talk.id}.json").write_text('{"id": 3}')
    with pytest.raises(UsageError, match="cannot be read"):
        store.load(talk.id)


def _turn(label: str, chars: int) -> list[dict[str, Any]]:
    return chat_turn(label, "x" * chars).messages


def test_the_window_drops_the_oldest_turns_first() -> None:
    turns = [_turn("one", 400), _turn("two", 400), _turn("three", 400)]
    talk = Conversation(id="abc", turns=turns)
    each = estimate(turns[0])
    assert 100 < each < 130  # about four characters a token

    assert talk.window(3 * each) == [m for t in turns for m in t]
    assert talk.window(3 * each - 1) == turns[1] + turns[2]
    assert talk.window(each) == turns[2]
    assert talk.window(each - 1) == [] and talk.window(0) == []
    assert [talk.fitting(b) for b in (0, each, 2 * each, 10 * each)] == [0, 1, 2, 3]


def test_the_newest_turns_are_kept_whatever_the_size_of_older_ones() -> None:
    talk = Conversation(id="abc", turns=[_turn("old", 4000), _turn("mid", 10), _turn("new", 10)])
    assert talk.window(estimate(talk.turns[1]) + estimate(talk.turns[2])) == talk.turns[1] + talk.turns[2]


def test_a_turn_too_large_stops_the_window_though_older_ones_are_small() -> None:
    talk = Conversation(id="abc", turns=[_turn("small", 10), _turn("huge", 10_000), _turn("last", 10)])
    assert talk.window(500) == talk.turns[2]  # never a gap: what is sent is the newest turns, in a row


def test_the_ask_document_names_the_conversation_not_the_turn() -> None:
    view = AskOutput(request="capital?", conversation="3f9a2b1c")
    turn = chat_turn("capital?", "Paris.")
    for event in (ChatReply(text="Paris."), turn):
        view.add(event)

    assert view.turn == turn.messages
    document = view.document()
    assert document["conversation"] == "3f9a2b1c" and "turn" not in document
    assert "conversation" not in BatchRecord(id=1, request="capital?").document()  # batch items: none


def test_history_shows_each_turn_literally_and_what_is_no_longer_sent() -> None:
    turns = [
        call_turn("stars of [red]x[/red]", "github_repo_info", {"repo": "a/b"}, {"stars": 4}, 4000).messages,
        chat_turn("and \x1b[2J?", f"No {SECRET}.\nBye.").messages,
    ]
    console = Console(file=StringIO(), width=200, color_system=None)
    console.print(turns_text("3f9a2b1c", turns, 1, lambda text: redact(text, [SECRET])))
    shown = console.file.getvalue()  # type: ignore[attr-defined]

    assert shown.splitlines() == [
        "conversation 3f9a2b1c · 2 turns",
        "  1  stars of [red]x[/red]",
        "     → github_repo_info(repo='a/b')",
        '     ← {"stars": 4}',
        "  2  and \\x1b[2J?",
        "     No ***.\\nBye.",  # one line a message
        "(turn 1 is no longer sent to the model: router.history_tokens)",
    ]


def test_the_turn_event_crosses_as_json() -> None:
    turn = chat_turn("a", "b")
    assert Turn.model_validate(json.loads(turn.model_dump_json())) == turn


def test_a_dry_run_takes_no_conversation(tmp_path: Path) -> None:
    from agentctl.cli.commands.ask import _conversation
    from agentctl.config import Settings

    settings = Settings.model_validate({"data_dir": str(tmp_path)})
    with pytest.raises(UsageError, match="--dry-run routes one request alone"):
        _conversation(settings, True, True, None)
    assert _conversation(settings, True, False, None)[1] is None
    assert not (tmp_path / "conversations").exists()  # nothing ran: no conversation started
