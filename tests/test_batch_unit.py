"""Batches in-process: the reader's input forms and malformed lines, memory flat over a long input,
back-pressure and stopping in the driver, --out's records and compaction, the exit codes, and a
dry-run batch routed against the local LLM server (no Ray, no Prefect, no subprocess)."""

from __future__ import annotations

import io
import json
import os
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from agentctl.calls.batch import Options, ask_batch, sqlite_warning
from agentctl.calls.batch.engine import Check, Stopped, drive
from agentctl.calls.batch.reader import Item, Malformed, argument_sets, opened, requests
from agentctl.calls.batch.records import Records
from agentctl.calls.batch.tally import Tally
from agentctl.config import load
from agentctl.views import BatchRecord, ErrorInfo
from tests.conftest import API_KEY
from tests.servers import FakeLLM, say, tool_call
from tests.test_stream_steps import steps


def test_json_lines_with_ids_models_and_malformed_lines() -> None:
    lines = [
        '{"id": "a", "request": "stars for acme/rocket", "model": "gpt-x"}\n',
        "\n",
        '{"request": "  shout hi  "}\n',
        "{not json\n",
        '["a list"]\n',
        '{"id": "b"}\n',
        '{"id": true, "request": "x"}\n',
        '{"id": 7, "request": "y", "model": 3}\n',
    ]
    read = list(requests(lines))
    assert read == [
        Item("a", 1, request="stars for acme/rocket", model="gpt-x"),
        Item(3, 3, request="shout hi"),
        Malformed(4, "not JSON (Expecting property name enclosed in double quotes)"),
        Malformed(5, "not a JSON object"),
        Malformed(6, 'no "request" text'),
        Malformed(7, '"id" is not a non-empty string or an integer'),
        Malformed(8, '"model" is not a string'),
    ]
    assert read[2].message("in.jsonl") == (  # type: ignore[union-attr]
        "in.jsonl line 4: not JSON (Expecting property name enclosed in double quotes); skipped"
    )


def test_plain_text_is_one_request_a_line_with_the_line_number_as_id() -> None:
    assert list(requests(["\n", "stars for acme/rocket\n", "{x} is text here\n"])) == [
        Item(2, 2, request="stars for acme/rocket"),
        Item(3, 3, request="{x} is text here"),
    ]


def test_stdin_is_read_for_a_dash(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("first\nsecond\n"))
    with opened("-") as lines:
        assert [item.request for item in requests(lines) if isinstance(item, Item)] == ["first", "second"]


def test_argument_sets_take_the_id_out() -> None:
    assert list(argument_sets(['{"id": "x", "text": "hi"}', '{"text": "yo"}', "3"])) == [
        Item("x", 1, arguments={"text": "hi"}),
        Item(2, 2, arguments={"text": "yo"}),
        Malformed(3, "not a JSON object"),
    ]


def _lines(count: int) -> Iterator[str]:
    for number in range(count):
        yield json.dumps({"id": f"item-{number}", "request": f"stars for acme/repo-{number} " + "x" * 200}) + "\n"


def _peak_bytes(count: int) -> int:
    tracemalloc.start()
    try:
        for _ in requests(_lines(count)):
            pass
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_the_reader_keeps_memory_flat_over_a_long_input() -> None:
    short, long = _peak_bytes(1_000), _peak_bytes(20_000)
    # 20 times the lines (about 5 MB of input): the peak is the same few lines in flight, not the input.
    assert long < short + 64_000, (short, long)


def _record(item: Item, error: int | None = None) -> BatchRecord:
    record = BatchRecord(id=item.id, request=item.request)
    if error is not None:
        record.error = ErrorInfo(message="it failed", type="ProcessFailed", exit_code=error)
    return record


def test_at_most_n_in_flight_and_the_input_read_as_slots_free_up() -> None:
    pulled, release, busy = [], threading.Semaphore(0), threading.Condition()
    in_flight = [0]

    def reads() -> Iterator[Item]:
        for number in range(1, 11):
            pulled.append(number)
            yield Item(number, number, request=f"r{number}")

    def work(item: Item, check: Check) -> BatchRecord:
        with busy:
            in_flight[0] += 1
            busy.notify_all()
        release.acquire()
        with busy:
            in_flight[0] -= 1
        return _record(item)

    records = drive(reads(), work, concurrency=3)
    waiter = threading.Thread(target=lambda: _wait_for(busy, lambda: in_flight[0] == 3, release))
    waiter.start()
    try:
        first = next(records)  # once three are in flight, one is let finish
        waiter.join()
        # Three slots, all busy until one finished: three items read, not ten.
        assert pulled == [1, 2, 3] and isinstance(first, BatchRecord)
    finally:
        for _ in range(10):  # the rest may finish, whatever was asserted
            release.release()
    assert sorted(r.id for r in records if isinstance(r, BatchRecord)) == sorted({*range(1, 11)} - {first.id})
    assert pulled == list(range(1, 11))


def _wait_for(busy: threading.Condition, condition: Callable[[], bool], release: threading.Semaphore) -> None:
    with busy:
        assert busy.wait_for(condition, timeout=30)
    release.release()


def test_stopping_the_batch_stops_the_items_in_flight() -> None:
    entered, stopped = threading.Barrier(3), []

    def work(item: Item, check: Check) -> BatchRecord:
        if item.id == 1:
            return _record(item)
        entered.wait(timeout=30)
        deadline = time.monotonic() + 30  # a batch that never stops fails the test instead of hanging it
        while time.monotonic() < deadline:
            try:
                check()
            except Stopped:
                stopped.append(item.id)
                raise
            threading.Event().wait(0.01)  # the item's request, polling its check as the pool's stream does
        return _record(item)

    records = drive((Item(n, n, request="r") for n in range(1, 10)), work, concurrency=3)
    assert next(records).id == 1  # type: ignore[union-attr]
    entered.wait(timeout=30)
    records.close()  # what Ctrl-C does to the CLI's loop: the generator ends
    assert sorted(stopped) == [2, 3]


def test_out_is_private_flushed_per_record_and_compacted_to_one_per_id(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    first = Records(out, lambda text: text)
    first.write(_record(Item("a", 1), error=1))
    first.write(_record(Item("b", 2)))
    assert len(out.read_text().splitlines()) == 2  # on disk before the batch ends
    first.close()
    assert os.stat(out).st_mode & 0o777 == 0o600

    again = Records(out, lambda text: text, resume=True)
    assert again.done == {'"b"'}
    again.write(_record(Item("a", 1)))
    again.write(_record(Item("b", 2), error=1))  # a later failure never replaces a success
    again.close()
    kept = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["id"], r["error"]) for r in kept] == [("b", None), ("a", None)]


def test_a_record_of_several_steps_that_answered_succeeded_though_a_call_failed(tmp_path: Path) -> None:
    record = BatchRecord(id="cmp", request="compare stars")
    for event in steps(answer="acme/engine has the most."):
        record.add(event)
    out = tmp_path / "out.jsonl"
    records, tally = Records(out, lambda text: text), Tally()
    records.write(record)
    tally.count(record)
    records.close()

    [line] = out.read_text().splitlines()
    doc = json.loads(line)
    assert list(doc)[:2] == ["id", "request"] and doc["answer"] == "acme/engine has the most."
    assert doc["error"] is None and doc["steps"][0]["calls"][1]["error"]["message"].endswith("acme/missing")
    assert (tally.succeeded, tally.exit_code()) == (1, 0)
    assert Records(out, lambda text: text, resume=True).done == {'"cmp"'}  # --resume does not redo it


def test_resume_needs_out() -> None:
    from agentctl.errors import UsageError

    with pytest.raises(UsageError, match="--resume needs --out"):
        Records(None, lambda text: text, resume=True)


@pytest.mark.parametrize(
    ("outcomes", "code"),
    [
        ([None], 0),
        ([None, 1, 2], 1),
        ([None, 2], 2),
        ([None, "malformed"], 2),
        ([1, "malformed"], 1),
    ],
)
def test_exit_codes(outcomes: list[int | str | None], code: int) -> None:
    tally = Tally()
    for outcome in outcomes:
        tally.count(Malformed(1, "x") if outcome == "malformed" else _record(Item(1, 1), error=outcome))  # type: ignore[arg-type]
    assert tally.exit_code() == code


def test_sqlite_warns_above_four_at_a_time() -> None:
    assert sqlite_warning(True, 4) is None and sqlite_warning(False, 32) is None
    assert "agentctl up --postgres" in (sqlite_warning(True, 5) or "")


def test_a_dry_run_batch_routes_every_item_and_refuses_what_needs_approval(
    llm: FakeLLM, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", f"{llm.url}/v1")
    monkeypatch.setenv("AGENTCTL_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("AGENTCTL_PROCESSES__CONFIRM", "github_repo_info")
    llm.responder = lambda body: (
        tool_call("github_repo_info", {"repo": "acme/rocket"})
        if "acme" in body["messages"][-1]["content"]
        else say("Paris.")
    )
    lines = ["stars for acme/rocket\n", "capital of France?\n"]

    def outcomes(yes: bool) -> dict[object, BatchRecord]:
        found = ask_batch(load(None, {}), requests(lines), Options(dry_run=True, yes=yes))
        return {o.id: o for o in found if isinstance(o, BatchRecord)}

    refused, approved = outcomes(yes=False), outcomes(yes=True)
    assert refused[1].route == "github_repo_info" and refused[1].needs_approval and refused[1].dry_run
    assert refused[1].error is not None and refused[1].error.type == "ApprovalRequired"
    assert "--yes" in refused[1].error.message and refused[1].error.exit_code == 2
    assert refused[2].chat == "Paris." and refused[2].error is None
    assert approved[1].error is None and approved[1].arguments == {"repo": "acme/rocket"}


def _refused(item: Item) -> BatchRecord:
    record = _record(item)
    record.error = ErrorInfo(message="deploy needs approval", type="ApprovalRequired", exit_code=2)
    return record


def _follow(terminal: bool, tmp_path: Path) -> tuple[int, str]:
    from rich.console import Console

    from agentctl.events import Log
    from agentctl.output.batch import follow

    err = io.StringIO()
    console = Console(file=err, force_terminal=terminal, width=100)
    console.soft_wrap = not terminal  # as the CLI's stderr console: off a terminal, lines are not wrapped
    outcomes = [
        Log(time=0, level="WARNING", run_name="agentctl", message="[red]on SQLite[/red]"),
        _record(Item("a", 1)),
        Malformed(2, "not JSON (Expecting value)"),
        _record(Item("b", 3), error=1),
        _refused(Item("c", 4)),
    ]
    code = follow(outcomes, Records(tmp_path / "out.jsonl", lambda text: text), Tally(), console, "in.jsonl", 3)
    return code, err.getvalue()


def test_off_a_terminal_stderr_has_the_warning_the_malformed_line_and_one_summary(tmp_path: Path) -> None:
    code, err = _follow(terminal=False, tmp_path=tmp_path)
    lines = err.splitlines()
    assert code == 1
    assert lines[:2] == ["warning: [red]on SQLite[/red]", "error: in.jsonl line 2: not JSON (Expecting value); skipped"]
    assert lines[2].startswith("batch: 3 records (1 succeeded, 1 failed, 1 refused), 1 malformed line skipped, ")
    assert lines[3:] == [
        "error: 1 item(s) need approval and a batch asks no one: pass --yes, or list them in processes.auto_approve"
    ]


def test_on_a_terminal_stderr_shows_progress(tmp_path: Path) -> None:
    _, err = _follow(terminal=True, tmp_path=tmp_path)
    assert "3 done · 2 failed · " in err and "/s" in err
