"""IVR prompts: ``prompts/<lang>/<name>.wav`` in telephone format, and their text catalogs.

Each language folder has a ``catalog.yaml`` mapping prompt names to the words spoken, so a
prompt can be heard (synthesised with espeak-ng, converted with sox) before anyone records
it; a real recording is never overwritten unless asked. Prompt names and language codes are
checked against a strict character set and resolved paths are checked again, so a name from
a dial plan or a catalog can never reach a file outside the prompts folder.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import wave
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import yaml

PROMPT_NAME = re.compile(r"[A-Za-z0-9_-]+(?:/[A-Za-z0-9_-]+)*")
STOCK_PREFIX = "asterisk:"  # a prompt named asterisk:<name> is one of Asterisk's own sounds
LANG_CODE = re.compile(r"[A-Za-z0-9_-]+")
CATALOG_FILE = "catalog.yaml"
# espeak-ng voice per language code; other languages use the code itself.
VOICES = {"en": "en-us", "zh": "cmn"}
# sox output options for telephone format: WAV, 8 kHz, mono, signed 16-bit PCM.
TELEPHONE_WAV = ["-t", "wav", "-r", "8000", "-c", "1", "-b", "16", "-e", "signed-integer"]


class PromptError(ValueError):
    """A prompt problem, worded for the operator in one line."""


def check_name(name: str) -> str:
    """Return ``name`` if it is a safe relative prompt name such as ``menus/main``."""
    if not PROMPT_NAME.fullmatch(name):
        raise PromptError(
            f"bad prompt name {name!r}: use letters, digits, '_' and '-', with '/' between folders"
        )
    return name


def check_lang(lang: str) -> str:
    """Return ``lang`` if it is a safe language code such as ``en`` or ``en-GB``."""
    if not LANG_CODE.fullmatch(lang):
        raise PromptError(f"bad language code {lang!r}: use letters, digits, '_' and '-'")
    return lang


def prompt_path(root: Path, lang: str, name: str) -> Path:
    """The ``.wav`` file of prompt ``name`` in language ``lang`` under ``root``."""
    path = root / check_lang(lang) / f"{check_name(name)}.wav"
    if not path.resolve().is_relative_to(root.resolve()):
        raise PromptError(f"prompt {lang}/{name} resolves outside {root}")
    return path


@dataclass(frozen=True)
class Catalog:
    lang: str
    texts: dict[str, str]


def load_catalog(root: Path, lang: str) -> Catalog:
    """Read ``root/lang/catalog.yaml``; a missing file is an empty catalog."""
    path = root / check_lang(lang) / CATALOG_FILE
    try:
        node = yaml.compose(path.read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
    except FileNotFoundError:
        return Catalog(lang, {})
    except UnicodeDecodeError as err:
        raise PromptError(f"{path}: not UTF-8 text ({err})") from err
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise PromptError(f"{where}: {err.problem or err.context}") from err
    if node is None:
        return Catalog(lang, {})

    def fail(at: yaml.Node, message: str) -> PromptError:
        return PromptError(f"{path}:{at.start_mark.line + 1}: {message}")

    if not isinstance(node, yaml.MappingNode):
        raise fail(node, "expected a mapping of prompt name to text")
    texts: dict[str, str] = {}
    lines: dict[str, int] = {}
    for key, value in node.value:
        if not isinstance(key, yaml.ScalarNode):
            raise fail(key, "expected a prompt name as the key")
        name = key.value
        try:
            check_name(name)
        except PromptError as err:
            raise fail(key, str(err)) from None
        if name in texts:
            raise fail(key, f"duplicate prompt {name!r} (first on line {lines[name]})")
        if not (
            isinstance(value, yaml.ScalarNode)
            and value.tag == "tag:yaml.org,2002:str"
            and value.value.strip()
        ):
            raise fail(value, f"prompt {name!r}: expected the words spoken, as non-empty text")
        texts[name] = value.value
        lines[name] = key.start_mark.line + 1
    return Catalog(lang, texts)


def languages(root: Path) -> list[str]:
    """The language folders under ``root``, sorted; other entries are ignored."""
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir() and LANG_CODE.fullmatch(p.name))


def build_missing(root: Path, langs: list[str] | None = None, force: bool = False) -> list[Path]:
    """Synthesise every catalog prompt without a ``.wav`` (all of them with ``force``).

    Returns the paths written. Recordings are left alone unless ``force`` is set.
    """
    todo: list[tuple[str, str, str, Path]] = []
    for lang in languages(root) if langs is None else langs:
        for name, text in load_catalog(root, lang).texts.items():
            path = prompt_path(root, lang, name)
            if force or not path.exists():
                todo.append((lang, name, text, path))
    if not todo:
        return []
    espeak, sox = _tool("espeak-ng"), _tool("sox")
    for lang, name, text, path in todo:
        path.parent.mkdir(parents=True, exist_ok=True)
        speech = _run(
            f"{lang}/{name}",
            [espeak, "-v", VOICES.get(lang, lang), "-b", "1", "--stdin", "--stdout"],
            text.encode("utf-8"),
        )
        partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            _run(f"{lang}/{name}", [sox, "-t", "wav", "-", *TELEPHONE_WAV, str(partial)], speech)
            partial.replace(path)
        finally:
            partial.unlink(missing_ok=True)
    return [path for *_, path in todo]


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise PromptError(f"{name} is not on PATH: install the Debian package {name}")
    return found


def _run(prompt: str, command: list[str], data: bytes) -> bytes:
    try:
        done = subprocess.run(command, input=data, check=True, capture_output=True)
    except subprocess.CalledProcessError as err:
        tool = Path(command[0]).name
        stderr = err.stderr.decode("utf-8", "replace").strip()
        raise PromptError(
            f"cannot build prompt {prompt}: {tool} failed (exit {err.returncode}): {stderr}"
        ) from err
    return done.stdout


def wav_format(path: Path) -> tuple[int, int, int]:
    """(sample rate, channels, sample width in bits) of a PCM WAV file."""
    try:
        with wave.open(str(path), "rb") as wav:
            return wav.getframerate(), wav.getnchannels(), wav.getsampwidth() * 8
    except (wave.Error, EOFError) as err:
        raise PromptError(f"{path}: not a PCM WAV file ({err})") from err


def missing(root: Path, lang: str, names: Iterable[str]) -> list[str]:
    """The prompt names that have neither a ``.wav`` nor catalog text in ``lang``."""
    texts = load_catalog(root, lang).texts
    return [n for n in names if n not in texts and not prompt_path(root, lang, n).is_file()]
