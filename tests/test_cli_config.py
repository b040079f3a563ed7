"""Configuration through the command line: where settings come from, and how a bad one is reported.

Dry runs route in the CLI process with no Ray and no Prefect, so the model the LLM server is asked
for shows which setting won.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import base_env, run_cli
from tests.servers import FakeGitHub, FakeLLM, say

# Nothing listens here: a dry run that tried to use Ray or Prefect would fail.
NOWHERE = {"RAY_ADDRESS": "127.0.0.1:1", "PREFECT_API_URL": "http://127.0.0.1:1/api"}


@pytest.fixture
def user(tmp_path: Path, llm: FakeLLM, github: FakeGitHub) -> dict[str, str]:
    return {**base_env(tmp_path, llm, github), **NOWHERE}


def _model_asked_for(user: dict[str, str], llm: FakeLLM, *args: str) -> str:
    llm.script("route", say("Paris."))
    result = run_cli(user, *args, "ask", "--dry-run", "capital of France?")
    assert result.code == 0, result.stderr
    [call] = llm.calls("route")
    return str(call.body["model"])


def _write(path: Path, model: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f'[llm]\nmodel = "{model}"\n')
    return path


def test_the_default_config_file_is_read(user: dict[str, str], llm: FakeLLM) -> None:
    _write(Path(user["XDG_CONFIG_HOME"]) / "agentctl" / "config.toml", "from-xdg-file")

    assert _model_asked_for(user, llm) == "from-xdg-file"


def test_config_flag_names_the_file(user: dict[str, str], llm: FakeLLM, tmp_path: Path) -> None:
    _write(Path(user["XDG_CONFIG_HOME"]) / "agentctl" / "config.toml", "from-xdg-file")
    chosen = _write(tmp_path / "elsewhere.toml", "from-flag-file")

    assert _model_asked_for(user, llm, "--config", str(chosen)) == "from-flag-file"


def test_agentctl_model_beats_the_file(user: dict[str, str], llm: FakeLLM) -> None:
    _write(Path(user["XDG_CONFIG_HOME"]) / "agentctl" / "config.toml", "from-xdg-file")

    assert _model_asked_for({**user, "AGENTCTL_MODEL": "from-env"}, llm) == "from-env"


BAD_POOL = "error: bad config value for pool.size: 'many'; expected a valid integer"


def test_a_bad_config_value_is_one_line_naming_the_key(user: dict[str, str], tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text('[router]\nrepair_attempts = "many"\n')

    result = run_cli(user, "--config", str(config), "ask", "--dry-run", "x")

    assert result.code == 2
    assert len(result.stderr.splitlines()) == 1
    said = "error: bad config value for router.repair_attempts: 'many'; expected a valid integer"
    assert result.stderr.startswith(said)


def test_a_key_set_below_a_value_is_one_line_naming_the_whole_key(user: dict[str, str], tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text("[pool]\nsize = 3\n")

    result = run_cli({**user, "AGENTCTL_POOL__SIZE__MAX": "4"}, "--config", str(config), "ask", "--dry-run", "x")

    assert result.code == 2
    assert result.stderr.splitlines() == ["error: config key pool.size must be a table to set pool.size.max"]


def test_debug_adds_the_traceback(user: dict[str, str]) -> None:
    result = run_cli({**user, "AGENTCTL_POOL__SIZE": "many"}, "--debug", "ask", "--dry-run", "x")

    lines = result.stderr.splitlines()
    assert result.code == 2
    assert lines[0] == "Traceback (most recent call last):" and "ConfigError" in result.stderr
    assert lines[-1].startswith(BAD_POOL)


COUNTED = """
import os
import sys
from pathlib import Path

if "default_worker" in sys.argv[0]:  # imported by a router actor, in a Ray worker process of its own
    Path({where!r}, str(os.getpid())).touch()
"""


def test_pool_size_flag_sets_how_many_actors_start(env: dict[str, str], llm: FakeLLM, tmp_path: Path) -> None:
    started = tmp_path / "actors"
    started.mkdir()
    (tmp_path / "counted.py").write_text(COUNTED.format(where=str(started)))
    env = {**env, "AGENTCTL_POOL__SIZE": "1", "AGENTCTL_PROCESSES__PATHS": str(tmp_path / "counted.py")}
    env["AGENTCTL_POOL__PER_NODE"] = "3"  # the flag is a total: it wins over a per-node count too
    llm.script("route", say("Paris."))

    result = run_cli(env, "ask", "--pool-size", "2", "capital of France?")

    assert result.code == 0, result.stderr
    assert len(list(started.iterdir())) == 2
