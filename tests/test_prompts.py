"""Prompts on real files, built with the real espeak-ng and sox."""

from __future__ import annotations

import re
import wave
from pathlib import Path

import pytest

from ivr.prompts import (
    PromptError,
    build_missing,
    check_lang,
    check_name,
    languages,
    load_catalog,
    missing,
    prompt_path,
    wav_format,
)


def write_catalog(root: Path, lang: str, text: str) -> Path:
    path = root / lang / "catalog.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def write_recording(path: Path, seconds: float = 0.5) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(8000)
        wav.writeframes(b"\x00\x00" * int(8000 * seconds))


def duration(path: Path) -> float:
    with wave.open(str(path), "rb") as wav:
        return wav.getnframes() / wav.getframerate()


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "prompts"
    write_catalog(root, "en", "welcome: Thank you for calling Example Corp.\n")
    write_catalog(root, "zh", "menus/main: 欢迎致电\n")
    return root


def test_builds_english_and_chinese_in_telephone_format(root: Path) -> None:
    built = build_missing(root)

    en, zh = root / "en" / "welcome.wav", root / "zh" / "menus" / "main.wav"
    assert sorted(built) == sorted([en, zh])
    for path in (en, zh):
        assert path.is_file()
        assert wav_format(path) == (8000, 1, 16)
        assert 0.3 < duration(path) < 10
    assert not list(root.rglob("*.tmp"))


def test_builds_only_what_is_missing_unless_forced(root: Path) -> None:
    first = build_missing(root, ["en"])
    inode = first[0].stat().st_ino

    assert build_missing(root, ["en"]) == []
    assert build_missing(root, ["en"], force=True) == first
    assert first[0].stat().st_ino != inode  # replaced by rename, not rewritten in place


def test_recording_is_kept_without_force(root: Path) -> None:
    recording = root / "en" / "welcome.wav"
    write_recording(recording)
    before = recording.read_bytes()

    assert build_missing(root, ["en"]) == []
    assert recording.read_bytes() == before


def test_missing_tool_names_the_debian_package(
    root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(PromptError, match="espeak-ng is not on PATH: install the Debian package"):
        build_missing(root)


def test_tool_failure_names_the_prompt_and_stderr(tmp_path: Path) -> None:
    write_catalog(tmp_path, "xx-nosuch", "hello: Hello.\n")
    with pytest.raises(PromptError, match=r"prompt xx-nosuch/hello: espeak-ng failed .*voice"):
        build_missing(tmp_path)
    assert not list((tmp_path / "xx-nosuch").glob("*.wav"))


@pytest.mark.parametrize(
    "name", ["../x", "/etc/passwd", "a/../../b", "a//b", "a\\b", "", "a b", "x.wav", "a/", "é"]
)
def test_unsafe_names_are_rejected(tmp_path: Path, name: str) -> None:
    with pytest.raises(PromptError, match=re.escape(f"bad prompt name {name!r}")):
        check_name(name)
    with pytest.raises(PromptError):
        prompt_path(tmp_path, "en", name)


@pytest.mark.parametrize("lang", ["..", "en/us", "", "en GB", "/tmp"])
def test_unsafe_languages_are_rejected(tmp_path: Path, lang: str) -> None:
    with pytest.raises(PromptError, match="bad language code"):
        check_lang(lang)
    with pytest.raises(PromptError):
        prompt_path(tmp_path, lang, "welcome")


def test_safe_names_stay_under_the_folder(tmp_path: Path) -> None:
    assert check_name("menus/main-2_b") == "menus/main-2_b"
    assert prompt_path(tmp_path, "en-GB", "menus/main") == tmp_path / "en-GB" / "menus/main.wav"


def test_symlink_out_of_the_folder_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "prompts"
    (root / "en").mkdir(parents=True)
    (root / "en" / "menus").symlink_to(tmp_path)
    with pytest.raises(PromptError, match="resolves outside"):
        prompt_path(root, "en", "menus/main")


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("welcome: Hi.\n\nbad.name: Hello.\n", 3, "bad prompt name 'bad.name'"),
        ("welcome: Hi.\nmenu: 12\n", 2, "prompt 'menu': expected the words spoken"),
        ("welcome: Hi.\nmenu:\n  ''\n", 3, "prompt 'menu': expected the words spoken"),
        ("welcome: Hi.\nmenu: Press 1.\nwelcome: Again.\n", 3, "duplicate prompt 'welcome' (first"),
        ("# prompts\n- welcome\n", 2, "expected a mapping"),
        ("welcome: [unclosed\n", 2, ""),
    ],
    ids=["bad-name", "not-text", "empty", "duplicate", "list", "syntax"],
)
def test_catalog_errors_name_file_and_line(
    tmp_path: Path, text: str, line: int, message: str
) -> None:
    path = write_catalog(tmp_path, "en", text)
    with pytest.raises(PromptError) as caught:
        load_catalog(tmp_path, "en")
    assert str(caught.value).startswith(f"{path}:{line}: {message}")


def test_catalog_reads_texts_and_a_missing_file_is_empty(tmp_path: Path) -> None:
    write_catalog(tmp_path, "zh", "# 中文\nwelcome: 欢迎致电\nmenus/main: '请按 1'\n")
    catalog = load_catalog(tmp_path, "zh")
    assert catalog.lang == "zh"
    assert catalog.texts == {"welcome": "欢迎致电", "menus/main": "请按 1"}
    assert load_catalog(tmp_path, "en").texts == {}
    write_catalog(tmp_path, "fr", "# nothing yet\n")
    assert load_catalog(tmp_path, "fr").texts == {}


def test_missing_reports_names_without_recording_or_text(tmp_path: Path) -> None:
    write_catalog(tmp_path, "en", "welcome: Welcome.\n")
    write_recording(tmp_path / "en" / "menus" / "main.wav")

    names = ["welcome", "menus/main", "goodbye", "menus/other"]
    assert missing(tmp_path, "en", names) == ["goodbye", "menus/other"]
    assert missing(tmp_path, "zh", names) == names


def test_languages_lists_only_valid_folders(tmp_path: Path) -> None:
    for folder in ("zh", "en", "en-GB", ".cache", "not a lang"):
        (tmp_path / folder).mkdir()
    (tmp_path / "README").write_text("not a folder")
    assert languages(tmp_path) == ["en", "en-GB", "zh"]
    assert languages(tmp_path / "absent") == []


def test_wav_format_refuses_what_is_not_pcm_wav(tmp_path: Path) -> None:
    path = tmp_path / "x.wav"
    path.write_bytes(b"not a wav file")
    with pytest.raises(PromptError, match="not a PCM WAV file"):
        wav_format(path)
