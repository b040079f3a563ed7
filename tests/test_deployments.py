"""Prefect deployments as processes: schema mapping, names, listing from a real Prefect API, and the CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from agentctl.calls.catalog import NO_API, list_for
from agentctl.config import Settings
from agentctl.processes.deployment_schema import arguments_model
from agentctl.processes.deployment_source import Deployment, DeploymentSource
from agentctl.processes.deployments import PrefectAPI, as_process, from_records, list_deployments, to_records, tool_name
from agentctl.processes.discovery import Discovered, with_deployments
from agentctl.processes.registry import NAME_PATTERN
from tests.conftest import base_env, run_cli
from tests.servers import FakeGitHub, FakeLLM, tool_call

# What Prefect 3.8.8 stores for tests/fixtures/deployments/flows.py:load (read from a served deployment).
ETL_SCHEMA: dict[str, Any] = {
    "title": "Parameters",
    "type": "object",
    "properties": {
        "source": {"description": "Where the rows come from", "position": 0, "title": "source", "type": "string"},
        "target": {"$ref": "#/definitions/Target", "description": "The table to load", "position": 1},
        "batch_size": {"default": 100, "description": "Rows per batch", "position": 2, "type": "integer"},
        "mode": {"default": "incremental", "enum": ["full", "incremental"], "position": 3, "type": "string"},
        "columns": {"default": [], "items": {"type": "string"}, "position": 4, "type": "array"},
        "limit": {"anyOf": [{"type": "integer"}, {"type": "null"}], "default": None, "position": 5},
    },
    "required": ["source", "target"],
    "definitions": {
        "Region": {"enum": ["eu", "us"], "title": "Region", "type": "string"},
        "Target": {
            "properties": {
                "table": {"description": "Table name", "title": "Table", "type": "string"},
                "region": {"$ref": "#/definitions/Region", "default": "eu"},
            },
            "required": ["table"],
            "title": "Target",
            "type": "object",
        },
    },
}


def _etl(name: str = "daily-load", **fields: Any) -> Deployment:
    return Deployment(id="d1", flow_name="etl", name=name, parameter_schema=ETL_SCHEMA, **fields)


def test_schema_mapping_keeps_required_defaults_enums_and_nested_objects() -> None:
    model = arguments_model("etl__daily_load", ETL_SCHEMA)

    valid = model.model_validate({"source": "s3://raw", "target": {"table": "sales"}}).model_dump(mode="json")

    assert valid == {
        "source": "s3://raw",
        "target": {"table": "sales", "region": "eu"},
        "batch_size": 100,
        "mode": "incremental",
        "columns": [],
        "limit": None,
    }
    schema = model.model_json_schema()
    assert schema["required"] == ["source", "target"]
    assert schema["properties"]["source"]["description"] == "Where the rows come from"
    assert schema["properties"]["mode"]["enum"] == ["full", "incremental"]
    assert schema["$defs"]["Target"]["properties"]["region"]["enum"] == ["eu", "us"]


@pytest.mark.parametrize(
    ("arguments", "where"),
    [
        ({"target": {"table": "t"}}, "source"),
        ({"source": "s", "target": {"table": "t", "region": "mars"}}, "target.region"),
        ({"source": "s", "target": {}}, "target.table"),
        ({"source": "s", "target": {"table": "t"}, "mode": "some"}, "mode"),
        ({"source": "s", "target": {"table": "t"}, "columns": "a,b"}, "columns"),
        ({"source": "s", "target": {"table": "t"}, "colour": "red"}, "colour"),
    ],
)
def test_arguments_are_validated_before_anything_runs(arguments: dict[str, Any], where: str) -> None:
    process = as_process(_etl())

    with pytest.raises(ValidationError) as caught:
        process.validate(arguments)

    assert where in {".".join(str(p) for p in e["loc"]) for e in caught.value.errors()}


def test_unsupported_schema_parts_become_any_and_odd_names_keep_theirs() -> None:
    schema = {
        "properties": {
            "odd": {"type": "tuple-ish"},
            "loop": {"$ref": "#/definitions/Node"},
            "lost": {"$ref": "#/definitions/Missing"},
            "model_config": {"type": "string"},
            "_private": {"type": "integer", "default": 1},
        },
        "required": ["odd", "model_config"],
        "definitions": {"Node": {"type": "object", "properties": {"next": {"$ref": "#/definitions/Node"}}}},
    }
    model = arguments_model("odd", schema)

    given = {"odd": (1, 2), "loop": {"next": {"next": 3}}, "lost": [1], "model_config": "x", "_private": 2}
    assert model.model_validate(given).model_dump(mode="json") == {**given, "odd": [1, 2]}


def test_tool_names_are_readable_valid_and_stable() -> None:
    assert tool_name(_etl()) == "etl__daily_load"
    assert tool_name(Deployment(id="x", flow_name="My Flow!", name="v2.prod")) == "My_Flow__v2_prod"
    long = Deployment(id="x", flow_name="f" * 80, name="deploy")
    assert NAME_PATTERN.match(tool_name(long)) and tool_name(long) == tool_name(long)
    assert tool_name(long) != tool_name(Deployment(id="y", flow_name="f" * 80, name="deploy2"))


def test_a_deployment_is_a_process_of_kind_deployment_needing_approval() -> None:
    process = as_process(_etl(description="Load a source.\n\nArgs:\n    source: Where", tags=("nightly",)))

    assert (process.name, process.kind, process.confirm) == ("etl__daily_load", "deployment", True)
    assert process.description == "Load a source."
    assert isinstance(process.source, DeploymentSource) and process.source.describe()["tags"] == ["nightly"]
    assert from_records(json.loads(json.dumps(to_records([_etl(tags=("a",))])))) == [_etl(tags=("a",))]


def test_a_name_clash_is_one_problem_and_the_first_process_stays() -> None:
    found = with_deployments(Discovered(), [_etl("daily-load"), _etl("daily load")])

    assert [p.entrypoint for p in found.registry] == ["etl/daily-load"]
    assert len(found.problems) == 1 and "two processes are named 'etl__daily_load'" in found.problems[0]


def test_deployments_configured_without_an_api_is_one_warning(tmp_path: Path) -> None:
    settings = Settings.model_validate({"data_dir": tmp_path, "processes": {"deployments": ["*"]}})

    listing = list_for(settings)

    assert listing.deployments == [] and listing.problems == [NO_API]
    assert list_for(Settings.model_validate({"data_dir": tmp_path})).problems == []


def test_an_unreachable_api_is_one_problem() -> None:
    from agentctl.stack.prefect_server import free_port

    url = f"http://127.0.0.1:{free_port()}/api"  # nothing listens there
    listing = list_deployments(PrefectAPI(url, key="pnu_secret"), ["*"], [])

    assert listing.deployments == []
    assert len(listing.problems) == 1 and url in listing.problems[0] and "cannot connect" in listing.problems[0]
    assert "pnu_secret" not in listing.problems[0]


def test_listing_matches_patterns_and_tags(served_deployments: str) -> None:
    api = PrefectAPI(served_deployments)

    def names(patterns: list[str], tags: list[str]) -> list[str]:
        listing = list_deployments(api, patterns, tags)
        assert listing.problems == []
        return sorted(d.full_name for d in listing.deployments)

    assert names(["etl/*"], []) == ["etl/daily-load", "etl/weekly-load"]
    assert names(["etl/*"], ["nightly", "warehouse"]) == ["etl/daily-load"]
    assert names(["*"], ["team-a"]) == ["reports/daily"]
    assert names(["reports/weekly"], []) == []
    (report,) = list_deployments(api, ["reports/daily"], []).deployments
    assert report.schedules == ("cron 0 0 1 1 *",) and report.tags == ("team-a",)
    assert report.description is not None and report.description.startswith("Build the daily report.")


def test_cli_lists_and_shows_deployments(
    served_deployments: str, tmp_path: Path, llm: FakeLLM, github: FakeGitHub
) -> None:
    user = {
        **base_env(tmp_path, llm, github),
        "PREFECT_API_URL": served_deployments,
        "AGENTCTL_PROCESSES__DEPLOYMENTS": "etl/daily*,reports/*",
        "AGENTCTL_PROCESSES__AUTO_APPROVE": "reports__*",
    }

    listed = run_cli(user, "processes", "list", "--json")
    shown = run_cli(user, "processes", "show", "reports__daily")

    assert listed.code == 0 and listed.stderr == "", listed.stderr
    kinds = {p["name"]: p["kind"] for p in listed.json()}
    assert kinds == {
        "github_repo_info": "flow",
        "text_processing": "task",
        "etl__daily_load": "deployment",
        "reports__daily": "deployment",
    }
    asks = {p["name"]: p["needs_approval"] for p in listed.json()}  # deployments ask unless auto-approved
    assert asks == {
        "github_repo_info": False,
        "text_processing": False,
        "etl__daily_load": True,
        "reports__daily": False,
    }
    assert shown.code == 0, shown.stderr
    for expected in ("deployment", "reports/daily", "team-a", "cron 0 0 1 1 *", "The day, as YYYY-MM-DD", "served"):
        assert expected in shown.stdout


def test_cli_lists_local_processes_with_one_warning_when_the_api_is_down(
    tmp_path: Path, llm: FakeLLM, github: FakeGitHub
) -> None:
    from agentctl.stack.prefect_server import free_port

    down = f"http://127.0.0.1:{free_port()}/api"
    user = {**base_env(tmp_path, llm, github), "PREFECT_API_URL": down, "AGENTCTL_PROCESSES__DEPLOYMENTS": "*"}

    result = run_cli(user, "processes", "list")

    assert result.code == 0
    assert result.stderr.strip().splitlines() == [
        f"warning: could not list Prefect deployments from {down}: cannot connect (ConnectError); is it running?"
    ]
    assert "github_repo_info" in result.stdout


def test_dry_run_routes_to_a_deployment_with_validated_nested_arguments(
    served_deployments: str, tmp_path: Path, llm: FakeLLM, github: FakeGitHub
) -> None:
    wrong = {"source": "s3://raw", "target": {"table": "sales", "region": "mars"}}
    right = {"source": "s3://raw", "target": {"table": "sales", "region": "us"}, "mode": "full", "limit": None}
    llm.script("route", tool_call("etl__daily_load", wrong), tool_call("etl__daily_load", right))
    user = {**base_env(tmp_path, llm, github), "PREFECT_API_URL": served_deployments}
    user |= {"AGENTCTL_PROCESSES__DEPLOYMENTS": "etl/*", "RAY_ADDRESS": "127.0.0.1:1"}  # a dry run starts no cluster

    result = run_cli(user, "ask", "--dry-run", "--json", "load s3://raw into sales in the US, full reload")

    assert result.code == 0, result.stderr
    doc = result.json()
    assert doc["route"] == "etl__daily_load" and doc["needs_approval"] is True
    assert doc["arguments"] == {
        "source": "s3://raw",
        "target": {"table": "sales", "region": "us"},
        "batch_size": 100,
        "mode": "full",
        "columns": [],
        "limit": None,
    }
    first, repair = llm.calls("route")
    tools = {t["function"]["name"]: t["function"] for t in first.body["tools"]}
    assert tools["etl__daily_load"]["strict"] is True
    region = tools["etl__daily_load"]["parameters"]["$defs"]["Target"]["properties"]["region"]
    assert region["anyOf"][0]["enum"] == ["eu", "us"]  # optional in strict mode: the enum or null
    assert "target.region" in json.dumps(repair.body["messages"])


def test_the_router_actors_route_to_the_callers_deployments(
    served_deployments: str, env: dict[str, str], llm: FakeLLM, tmp_path: Path
) -> None:
    cases = tmp_path / "cases.toml"
    cases.write_text(
        '[[case]]\nprompt = "weekly load of s3://raw"\nprocess = "etl__weekly_load"\n'
        'arguments = { source = "s3://raw", target = { table = "sales", region = "eu" } }\n'
    )
    arguments = {"source": "s3://raw", "target": {"table": "sales", "region": "eu"}}
    llm.script("route", tool_call("etl__weekly_load", arguments))
    user = {**env, "PREFECT_API_URL": served_deployments, "AGENTCTL_PROCESSES__DEPLOYMENTS": "etl/weekly-load"}

    result = run_cli(user, "eval", str(cases), "--json")

    assert result.code == 0, result.stderr
    (model,) = result.json()["models"].values()
    assert model["accuracy"] == 1.0 and model["argument_accuracy"] == 1.0, model["failures"]
