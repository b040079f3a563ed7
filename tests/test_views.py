"""In-process tests of the views, emit() and the error line: no Ray, no Prefect, no subprocess."""

from __future__ import annotations

import json
from io import StringIO
from typing import Any

import pytest
from pydantic import TypeAdapter
from rich.console import Console

from agentctl.config import Settings
from agentctl.events import Event, Failed, LLMBudget, Log, PrefectRetries, Result, RetryPolicy, Routed, RunInfo, Usage
from agentctl.output.emit import emit, print_error
from agentctl.output.stream import JsonRenderer, RichRenderer, renderer
from agentctl.output.views import processes_output
from agentctl.views import (
    Choice,
    EvalFailure,
    EvalOutput,
    Latency,
    LogRow,
    ModelSummary,
    RunDetail,
    RunRow,
    RunsOutput,
    StateRow,
    Tokens,
    View,
)

ROW = {
    "id": "0b6f3d2e-1111-4222-8333-444455556666",
    "name": "clever-fox",
    "kind": "flow",
    "process": "github_repo_info",
    "state": "Completed",
    "started": "2026-12-02T07:00:01.123456+00:00",
    "duration": 1.25,
    "url": None,
}
DETAIL = {
    **ROW,
    "parameters": {"repo": "acme/rocket"},
    "message": "All states completed.",
    "result": {"stars": 3},
    "states": [{"time": "2026-12-02T07:00:01.000000+00:00", "state": "Completed", "message": None}],
    "logs": [{"time": "2026-12-02T07:00:01.500000+00:00", "level": "INFO", "logger": "x", "message": "hello"}],
    "children": [],  # the runs under it: none for a process's flow run without tasks
}
SUMMARY = {
    "cases": 2,
    "accuracy": 0.5,
    "argument_accuracy": None,
    "errors": 0,
    "latency": {"p50": 0.1, "p90": 0.2, "p99": 0.25},
    "tokens": {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12},
    "failures": [
        {
            "prompt": "weather please",
            "expected": {"process": "none", "arguments": None},
            "got": {"process": "github_repo_info", "arguments": {"repo": "a/b"}},
            "error": None,
        }
    ],
}


def views() -> list[tuple[View, Any]]:
    """Each view, built the typed way, and the JSON document --json printed before views had types."""
    summary = ModelSummary(
        cases=2,
        accuracy=0.5,
        argument_accuracy=None,
        errors=0,
        latency=Latency(p50=0.1, p90=0.2, p99=0.25),
        tokens=Tokens(prompt_tokens=10, completion_tokens=2, total_tokens=12),
        failures=[
            EvalFailure(
                prompt="weather please",
                expected=Choice(process="none", arguments=None),
                got=Choice(process="github_repo_info", arguments={"repo": "a/b"}),
                error=None,
            )
        ],
    )
    detail = RunDetail(
        **ROW,
        parameters={"repo": "acme/rocket"},
        message="All states completed.",
        result={"stars": 3},
        states=[StateRow(time="2026-12-02T07:00:01.000000+00:00", state="Completed", message=None)],
        logs=[LogRow(time="2026-12-02T07:00:01.500000+00:00", level="INFO", logger="x", message="hello")],
    )
    return [
        (
            EvalOutput(cases="evals/x.toml", models={"gpt-4o-mini": summary}),
            {"cases": "evals/x.toml", "models": {"gpt-4o-mini": SUMMARY}},
        ),
        (RunsOutput(runs=[RunRow(**ROW)], api_url="http://127.0.0.1:4200/api"), [ROW]),
        (detail, DETAIL),
    ]


def printed(view: View, json_output: bool, width: int = 100) -> str:
    out = Console(file=StringIO(), width=width)
    emit(view, json=json_output, out=out)
    return out.file.getvalue()  # type: ignore[attr-defined]


@pytest.mark.parametrize(("view", "document"), views(), ids=lambda v: type(v).__name__)
def test_json_of_each_view_is_the_document_it_replaced(view: View, document: Any) -> None:
    assert json.loads(printed(view, json_output=True)) == document


@pytest.mark.parametrize(("view", "document"), views(), ids=lambda v: type(v).__name__)
def test_each_view_renders_in_rich_without_its_json(view: View, document: Any) -> None:
    text = printed(view, json_output=False)
    assert text.strip() and not text.lstrip().startswith(("{", "["))


def test_rich_views_show_what_a_user_looks_for() -> None:
    eval_text, runs_text, detail_text = (printed(v, json_output=False) for v, _ in views())
    assert "gpt-4o-mini" in eval_text and "50%" in eval_text and "weather please" in eval_text
    assert ROW["id"] in runs_text and "1.25s" in runs_text and "Completed" in runs_text
    assert "acme/rocket" in detail_text and "hello" in detail_text and "1.25 s" in detail_text


def test_emit_redacts_the_json_document() -> None:
    view = RunsOutput(runs=[RunRow(**{**ROW, "name": "sk-secret-123"})], api_url="http://x")
    out = Console(file=StringIO(), width=100)
    emit(view, json=True, out=out, redact=lambda t: t.replace("sk-secret-123", "***"))
    assert json.loads(out.file.getvalue())[0]["name"] == "***"  # type: ignore[attr-defined]


def test_processes_view_json_and_table() -> None:
    from agentctl.processes.builtin import builtin_registry

    view = processes_output(builtin_registry(), Settings())
    document = json.loads(printed(view, json_output=True))
    assert [p["name"] for p in document] == ["github_repo_info", "text_processing"]
    assert set(document[0]) == {"name", "kind", "description", "entrypoint", "needs_approval", "schema"}
    assert "repo: string" in printed(view, json_output=False)


def test_renderer_picks_json_or_rich() -> None:
    console = Console(file=StringIO())
    assert isinstance(renderer(console, console, str, json=True, label="x"), JsonRenderer)
    assert isinstance(renderer(console, console, str, json=False, label="x"), RichRenderer)


def policy() -> RetryPolicy:
    return RetryPolicy(
        prefect=PrefectRetries(retries=2, retry_delay_seconds=5, timeout_seconds=None),
        note=None,
        llm=LLMBudget(timeout=60.0, max_retries=2, repair_attempts=1),
        worst_case_routing_requests=6,
    )


def test_dry_run_policy_in_json_keeps_its_shape() -> None:
    out = Console(file=StringIO())
    routed = Routed(process="p", process_kind="flow", arguments={}, policy=policy())
    JsonRenderer(out, "req", str).render([routed])
    document = json.loads(out.file.getvalue())  # type: ignore[attr-defined]
    assert document["dry_run"] is True
    assert document["policy"] == {
        "prefect": {"retries": 2, "retry_delay_seconds": 5, "timeout_seconds": None},
        "note": None,
        "llm": {"timeout": 60.0, "max_retries": 2, "repair_attempts": 1},
        "worst_case_routing_requests": 6,
    }


def test_a_request_record_has_the_same_keys_whatever_happened() -> None:
    out = Console(file=StringIO())
    log = Log(time=1.0, level="INFO", run_name="r", message="counting")
    run = RunInfo(id="1", name="r", state="Failed")
    events = [Routed(process="p", process_kind="flow", arguments={"n": 1}), log, Usage(requests=1)]
    code = JsonRenderer(out, "req", str).render([*events, Failed(message="boom", exit_code=1, run=run)])
    document = json.loads(out.file.getvalue())  # type: ignore[attr-defined]
    assert code == 1 and list(document) == [
        *("request", "route", "arguments", "reason", "chat", "result", "run", "logs"),
        *("steps", "answer", "usage", "error"),
    ]
    assert document["logs"] == [{k: v for k, v in log.model_dump().items() if k != "kind"}]
    assert document["usage"]["requests"] == 1 and "kind" not in document["usage"]
    assert document["error"] == {"message": "boom", "type": "AgentctlError", "exit_code": 1}
    assert document["run"]["state"] == "Failed"
    [[call]] = [step["calls"] for step in document["steps"]]  # the one call, cut short by the failure
    assert call["error"] == document["error"] and call["run"]["state"] == "Failed" and document["answer"] is None


def test_a_result_keeps_its_run_and_value() -> None:
    out = Console(file=StringIO())
    run = RunInfo(id="1", name="r")
    assert JsonRenderer(out, "req", str).render([Result(process="p", value={"stars": 3}, run=run)]) == 0
    document = json.loads(out.file.getvalue())  # type: ignore[attr-defined]
    assert (document["result"], document["run"]["id"], document["error"]) == ({"stars": 3}, "1", None)


def test_events_are_told_apart_by_kind() -> None:
    events: TypeAdapter[Event] = TypeAdapter(Event)
    routed = Routed(process="p", process_kind="flow", arguments={"a": 1}, policy=policy())
    assert events.validate_python(routed.model_dump(mode="json")) == routed
    with pytest.raises(ValueError, match="kind"):
        events.validate_python({"kind": "nonsense", "text": "hi"})


def test_error_line_is_one_escaped_line(capsys: pytest.CaptureFixture[str]) -> None:
    print_error("bad \x1b[31m thing")
    assert capsys.readouterr().err == "error: bad \\x1b[31m thing\n"


def test_error_line_through_a_console_is_the_same_line() -> None:
    err = Console(file=StringIO(), width=100)
    print_error("bad \x1b[31m [bold]thing", err)
    assert err.file.getvalue() == "error: bad \\x1b[31m [bold]thing\n"  # type: ignore[attr-defined]
