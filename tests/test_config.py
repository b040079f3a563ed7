"""Configuration: precedence, and errors that name the key and what is allowed."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentctl.config import Settings, load
from agentctl.errors import ConfigError, MissingCredential


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(__import__("os").environ):
        if name.startswith(("AGENTCTL_", "OPENAI_", "AZURE_", "GITHUB_", "RAY_ADDRESS", "PREFECT_API_URL")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "no-config"))


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def test_defaults() -> None:
    settings = load()
    assert settings.llm.model == "gpt-4o-mini"
    assert settings.pool.size == 2
    assert settings.ray.dashboard is False
    assert settings.github.api_url == "https://api.github.com"


def test_precedence_flags_then_env_then_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, '[llm]\nmodel = "from-file"\ntimeout = 5\n[pool]\nsize = 3\n')
    assert load(path).llm.model == "from-file"
    monkeypatch.setenv("AGENTCTL_LLM__MODEL", "from-env")
    settings = load(path)
    assert (settings.llm.model, settings.llm.timeout, settings.pool.size) == ("from-env", 5, 3)
    assert load(path, {"llm.model": "from-flag"}).llm.model == "from-flag"


def test_well_known_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:11434/v1")
    monkeypatch.setenv("GITHUB_API_URL", "http://127.0.0.1:8000")
    monkeypatch.setenv("RAY_ADDRESS", "auto")
    settings = load()
    assert settings.llm.base_url == "http://127.0.0.1:11434/v1"
    assert settings.github.api_url == "http://127.0.0.1:8000"
    assert settings.ray.address == "auto"


def test_config_file_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTCTL_CONFIG", str(write(tmp_path, "[pool]\nsize = 5\n")))
    assert load().pool.size == 5


def test_bad_value_names_key_and_allowed(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"pool\.size: 'many'; expected a valid integer"):
        load(write(tmp_path, '[pool]\nsize = "many"\n'))
    with pytest.raises(ConfigError, match=r"llm\.provider: 'anthropic'; expected 'openai' or 'azure'"):
        load(write(tmp_path, '[llm]\nprovider = "anthropic"\n'))


def test_unknown_key_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown config key llm\.modle"):
        load(write(tmp_path, '[llm]\nmodle = "x"\n'))


def test_missing_and_broken_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load(tmp_path / "nope.toml")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load(write(tmp_path, "[llm\n"))


def test_api_key_error_names_variable_and_key(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(MissingCredential, match="OPENAI_API_KEY.*llm.api_key_env"):
        Settings().api_key()
    azure = Settings.model_validate({"llm": {"provider": "azure"}})
    with pytest.raises(MissingCredential, match="AZURE_OPENAI_API_KEY"):
        azure.api_key()
    monkeypatch.setenv("MY_KEY", "sk-abcdef")
    assert Settings.model_validate({"llm": {"api_key_env": "MY_KEY"}}).api_key() == "sk-abcdef"


def test_example_config_matches_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    example = Path(__file__).parent.parent / "config.example.toml"
    loaded = load(example).model_dump(exclude={"data_dir"})
    assert loaded == Settings().model_dump(exclude={"data_dir"})


# The documented well-known variables (config.example.toml), each with the key it sets.
WELL_KNOWN = [
    ("OPENAI_BASE_URL", "llm.base_url", "http://127.0.0.1:11434/v1"),
    ("AGENTCTL_MODEL", "llm.model", "gpt-4o"),
    ("AZURE_OPENAI_ENDPOINT", "llm.azure_endpoint", "https://r.openai.azure.com"),
    ("OPENAI_API_VERSION", "llm.api_version", "2024-10-21"),
    ("GITHUB_API_URL", "github.api_url", "http://127.0.0.1:8000"),
    ("RAY_ADDRESS", "ray.address", "auto"),
    ("PREFECT_API_URL", "prefect.api_url", "http://127.0.0.1:4200/api"),
    ("AGENTCTL_DATA_DIR", "data_dir", "/srv/agentctl"),
]


def value_of(settings: Settings, key: str) -> object:
    found: object = settings
    for part in key.split("."):
        found = getattr(found, part)
    return str(found) if key == "data_dir" else found


def generic_name(key: str) -> str:
    return "AGENTCTL_" + key.upper().replace(".", "__")


@pytest.mark.parametrize(("variable", "key", "value"), WELL_KNOWN)
def test_a_well_known_variable_sets_its_key_over_the_file(
    variable: str, key: str, value: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    section, _, leaf = key.rpartition(".")
    path = write(tmp_path, f'[{section}]\n{leaf} = "from-file"\n' if section else f'{leaf} = "/from-file"\n')
    monkeypatch.setenv(variable, value)

    assert value_of(load(path), key) == value


@pytest.mark.parametrize(("variable", "key", "value"), [w for w in WELL_KNOWN if "." in w[1]])
def test_the_agentctl_section_key_name_beats_the_well_known_one(
    variable: str, key: str, value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(variable, value)
    monkeypatch.setenv(generic_name(key), "from-generic")

    assert value_of(load(), key) == "from-generic"


def test_empty_variables_leave_the_file_value(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, '[llm]\nbase_url = "http://file/v1"\n[pool]\nsize = 3\n')
    monkeypatch.setenv("OPENAI_BASE_URL", "")
    monkeypatch.setenv("AGENTCTL_POOL__SIZE", "")

    settings = load(path)

    assert (settings.llm.base_url, settings.pool.size) == ("http://file/v1", 3)


def test_layers_merge_key_by_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, '[llm]\nmodel = "file"\ntimeout = 5\n[pool]\nsize = 3\n[ray]\naddress = "file:1"\n')
    monkeypatch.setenv("AGENTCTL_MODEL", "well-known")
    monkeypatch.setenv("AGENTCTL_RAY__ADDRESS", "env:2")

    settings = load(path, {"llm.model": "flag"})

    assert (settings.llm.model, settings.llm.timeout, settings.llm.max_retries) == ("flag", 5, 2)
    assert (settings.pool.size, settings.ray.address) == (3, "env:2")


def test_lists_from_the_environment_are_comma_separated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, '[processes]\npaths = ["a,b.py"]\ndisable = ["x"]\n')
    monkeypatch.setenv("AGENTCTL_PROCESSES__MODULES", " one, two,, three ")
    monkeypatch.setenv("AGENTCTL_PROCESSES__DISABLE", "y,z")

    processes = load(path).processes

    assert (processes.modules, processes.paths, processes.disable) == (["one", "two", "three"], ["a,b.py"], ["y", "z"])


def test_environment_errors_name_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTCTL_LLM__MODLE", "x")
    with pytest.raises(ConfigError, match=r"^unknown config key llm\.modle: see config\.example\.toml"):
        load()
    monkeypatch.delenv("AGENTCTL_LLM__MODLE")
    monkeypatch.setenv("AGENTCTL_LMM__MODEL", "x")
    with pytest.raises(ConfigError, match=r"^unknown config key lmm: see config\.example\.toml"):
        load()
    monkeypatch.delenv("AGENTCTL_LMM__MODEL")
    monkeypatch.setenv("AGENTCTL_RAY__NUM_CPUS", "0")
    with pytest.raises(ConfigError, match=r"^bad config value for ray\.num_cpus: '0'; expected greater than or equal"):
        load()


def test_data_dir_from_the_environment_expands_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("AGENTCTL_DATA_DIR", "~/state")

    assert load().data_dir == tmp_path / "state"


def test_a_key_below_a_value_names_the_whole_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTCTL_POOL__SIZE__MAX", "4")

    with pytest.raises(ConfigError, match=r"^config key pool\.size must be a table to set pool\.size\.max$"):
        load(write(tmp_path, "[pool]\nsize = 3\n"))
