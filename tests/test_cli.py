from __future__ import annotations

import subprocess
from pathlib import Path

from cti.store.db import head_revision
from tests.support.service import IVR


def run(*args: str, cwd: Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [IVR, *args],
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": ""},
    )


def test_help_lists_every_subcommand_with_a_description(tmp_path: Path) -> None:
    out = run("--help", cwd=tmp_path).stdout
    for name, words in [
        ("serve", "FastAGI"),
        ("db", "database"),
        ("user", "users"),
        ("call", "test call"),
        ("config", "configuration"),
    ]:
        line = next(x for x in out.splitlines() if x.strip().startswith(name + " "))
        assert words in line


def test_db_upgrade_then_demo_users_with_a_private_password_file(tmp_path: Path) -> None:
    assert f"schema at {head_revision()}" in run("db", "upgrade", cwd=tmp_path).stdout
    demo = run("db", "demo", cwd=tmp_path)
    creds = tmp_path / "var" / "demo-logins.txt"
    password = creds.read_text().split("password: ")[1].strip()
    assert password not in demo.stdout + demo.stderr
    assert creds.stat().st_mode & 0o777 == 0o600
    assert "exists already" in run("db", "demo", cwd=tmp_path).stdout


def test_user_add_reads_the_password_from_stdin(tmp_path: Path) -> None:
    run("db", "upgrade", cwd=tmp_path)
    ok = run(
        "user",
        "add",
        "ana",
        "--role",
        "agent",
        "--password-stdin",
        cwd=tmp_path,
        stdin="a long enough password\n",
    )
    assert ok.returncode == 0 and "user ana (agent) added" in ok.stdout
    short = run(
        "user", "add", "bo", "--role", "agent", "--password-stdin", cwd=tmp_path, stdin="short\n"
    )
    assert short.returncode == 1 and "at least 10 characters" in short.stderr
    phone = ("--interface", "PJSIP/1001", "--password-stdin")
    first = run("user", "add", "cy", "--role", "agent", *phone, cwd=tmp_path, stdin="x" * 12)
    assert first.returncode == 0, first.stderr
    taken = run("user", "add", "di", "--role", "agent", *phone, cwd=tmp_path, stdin="x" * 12)
    assert taken.returncode == 1
    assert "interface 'PJSIP/1001' belongs to another user" in taken.stderr


def test_call_refuses_keys_it_cannot_press(tmp_path: Path) -> None:
    done = run("call", "5551001", "--press", "1x", cwd=tmp_path)
    assert done.returncode == 1
    assert "keys must be 0-9, *, #, w (half a second) or , (two seconds): '1x'" in done.stderr


def test_call_places_a_simulated_caller_through_ami(asterisk, tmp_path: Path) -> None:
    """No service listens here, so Asterisk's own fallback answers: the safe queue."""
    env = {"PATH": "", "IVR_AMI__SECRET": asterisk.ami.secret.get_secret_value()}
    done = subprocess.run(
        [IVR, "call", "5551001", "--press", "1,2", "--hold", "1"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "calling 5551001: answered"


def test_speech_install_then_models_lists_it(tmp_path: Path) -> None:
    from tests.test_speech_models import make_zip

    archive = make_zip(tmp_path / "model.zip", folder="vosk-model-small-en-us-0.15")
    installed = run("speech", "install", str(archive), cwd=tmp_path)
    assert installed.returncode == 0, installed.stderr
    assert (tmp_path / "var/speech-models/vosk-model-small-en-us-0.15/am/final.mdl").is_file()
    listed = run("speech", "models", cwd=tmp_path).stdout
    assert "vosk-model-small-en-us-0.15" in listed and "16000" in listed
    again = run("speech", "install", str(archive), cwd=tmp_path)
    assert again.returncode == 1 and "already installed" in again.stderr
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"not a zip at all")
    refused = run("speech", "install", str(junk), cwd=tmp_path)
    assert refused.returncode == 1 and f"not a zip file: {junk}" in refused.stderr
