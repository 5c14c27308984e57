from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from ivr.config import ConfigError, Settings, load_settings
from tests.support.service import IVR, REPO


def test_defaults_work_on_one_machine() -> None:
    settings = load_settings(environ={})
    assert settings.database.url == "sqlite:///var/ivr.sqlite3"
    assert settings.bus.backend == "inprocess"
    assert (settings.ami.host, settings.ami.port) == ("127.0.0.1", 5038)
    assert (settings.agi.host, settings.agi.port) == ("127.0.0.1", 4573)
    assert (settings.web.host, settings.web.port) == ("127.0.0.1", 8080)


def test_file_is_read_and_environment_overrides_it(tmp_path: Path) -> None:
    file = tmp_path / "ivr.yaml"
    file.write_text("agi:\n  port: 4600\n  allow: [10.0.0.5]\nweb:\n  port: 9000\n")
    settings = load_settings(file, environ={"IVR_WEB__PORT": "9100", "IVR_AGI__ALLOW": "a, b"})
    assert settings.agi.port == 4600
    assert settings.web.port == 9100
    assert settings.agi.allow == ["a", "b"]


def test_config_file_named_by_environment(tmp_path: Path) -> None:
    file = tmp_path / "other.yaml"
    file.write_text("ami:\n  username: ops\n")
    assert load_settings(environ={"IVR_CONFIG": str(file)}).ami.username == "ops"


@pytest.mark.parametrize(
    ("text", "env", "message"),
    [
        ("ami:\n  port: abc\n", {}, "ivr.yaml: ami.port: Input should be a valid integer"),
        ("ami:\n  prot: 1\n", {}, "ivr.yaml: ami.prot: unknown key"),
        ("", {"IVR_WEB__PORT": "70000"}, "IVR_WEB__PORT: web.port: Input should be less than"),
        ("database:\n  url: mysql://x\n", {}, "database.url: Value error, expected a sqlite"),
        ("log:\n  level: loud\n", {}, "log.level: Input should be 'debug', 'info'"),
        ("agi: [1, 2]\n", {}, "ivr.yaml: agi: Input should be a valid dictionary"),
    ],
)
def test_bad_values_name_the_key_and_what_was_expected(
    tmp_path: Path, text: str, env: dict[str, str], message: str
) -> None:
    file = tmp_path / "ivr.yaml"
    file.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_settings(file, environ=env)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    file = tmp_path / "ivr.yaml"
    file.write_text("ami:\n  port: 1\n bad: [\n")
    with pytest.raises(ConfigError, match=r"ivr.yaml: line 3: not valid YAML"):
        load_settings(file, environ={})


def test_a_bad_secret_value_is_not_echoed(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(environ={"IVR_AMI__SECRET__X": "hunter2-secret"})
    assert "hunter2-secret" not in str(caught.value)


def test_config_check_hides_secrets(tmp_path: Path) -> None:
    env = {"IVR_AMI__SECRET": "s3cret-ami", "IVR_TWILIO__AUTH_TOKEN": "tok-twilio", "PATH": ""}
    done = subprocess.run(
        [IVR, "config", "check"], env=env, cwd=tmp_path, capture_output=True, text=True, check=True
    )
    assert "secret: '**********'" in done.stdout
    assert "s3cret-ami" not in done.stdout + done.stderr
    assert "tok-twilio" not in done.stdout + done.stderr


def test_serve_with_a_broken_config_exits_with_one_line_naming_the_key(tmp_path: Path) -> None:
    (tmp_path / "ivr.yaml").write_text("web:\n  port: eighty\n")
    done = subprocess.run(
        [IVR, "serve"], cwd=tmp_path, capture_output=True, text=True, timeout=30, env={"PATH": ""}
    )
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "web.port" in lines[0] and "valid integer" in lines[0]


def test_the_example_file_documents_every_key_with_its_default() -> None:
    example = REPO / "ivr.example.yaml"
    assert load_settings(example, environ={}).model_dump() == load_settings(environ={}).model_dump()
    documented = yaml.safe_load(example.read_text())
    for section, fields in Settings.model_fields.items():
        keys = set(fields.annotation.model_fields)  # type: ignore[union-attr]
        assert set(documented[section]) == keys, section
