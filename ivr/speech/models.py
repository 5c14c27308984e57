"""Vosk model management: list the installed and configured models, install one from a zip.

Vosk models are distributed by alphacephei as zip files whose single top-level folder carries
the model's name (``vosk-model-small-en-us-0.15``) and holds ``am/final.mdl`` and
``conf/model.conf``. Installing is the only step that writes into the model directory, so it
is careful: the archive is checked (optional sha256, every member's CRC, no unsafe member
paths, exactly one model) before anything is unpacked, the model is unpacked into a hidden
temporary folder and renamed into place in one step, and nothing half-written is ever left
behind, so a model folder that exists is always complete.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import shutil
import stat
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

from tqdm import tqdm

# Files that make a folder a vosk model (what the vosk library itself needs to load one).
MODEL_MARKERS = ("am/final.mdl", "conf/model.conf")
# Hidden temporary names inside model_dir; list_models skips dot folders, so a crashed
# install (killed process) is never mistaken for a model.
TMP_PREFIX = ".ivr-install-"
CHUNK = 1 << 20
DOWNLOAD_TIMEOUT = 60
SAMPLE_FREQUENCY = re.compile(r"^\s*--sample-frequency\s*=\s*([0-9.]+)\s*(?:#.*)?$")
SHA256_HEX = re.compile(r"[0-9a-f]{64}")


class ModelError(Exception):
    """A model problem worded for the operator in one line (names the file or URL)."""


@dataclass
class ModelInfo:
    """One model as ``ivr speech models`` shows it; ``problem`` is set for a broken config."""

    name: str
    path: Path
    language: str | None
    size_bytes: int
    sample_rate: int | None
    configured: bool
    problem: str | None = None


def is_vosk_model(path: Path) -> bool:
    """True if ``path`` is a folder the vosk library can load as a model."""
    return all((path / marker).is_file() for marker in MODEL_MARKERS)


def resolve_model(value: str, model_dir: Path) -> Path:
    """The folder a configured model value means: a bare name lives under ``model_dir``.

    The config accepts either a folder or a model name; a value without a path separator is
    a name, unless only a folder of that name (relative to the working directory) exists.
    """
    path = Path(value).expanduser()
    if path.is_absolute() or len(path.parts) != 1 or value.startswith("~"):
        return path
    under = model_dir / value
    if not under.exists() and path.is_dir():
        return path
    return under


def sample_rate(path: Path) -> int | None:
    """The model's sample rate from ``conf/mfcc.conf``, or None where it does not say."""
    try:
        text = (path / "conf" / "mfcc.conf").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        match = SAMPLE_FREQUENCY.match(line)
        if match:
            try:
                return int(float(match.group(1)))
            except ValueError:
                return None
    return None


def _tree_size(path: Path) -> int:
    """Bytes in the files under ``path`` (symlinks not followed, unreadable entries skipped)."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            with suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_size
    return total


def _key(path: Path) -> Path:
    """A comparable identity for a folder, so a configured path and a scanned one match."""
    try:
        return path.resolve()
    except OSError:
        return path.absolute()


def list_models(model_dir: Path, configured: dict[str, str]) -> list[ModelInfo]:
    """Every model folder in ``model_dir`` plus every configured model, sorted by name.

    ``configured`` maps a language code to a folder or a name under ``model_dir``. A
    configured model that is missing or not a model is listed with ``problem`` set instead of
    raising, because the operator runs this command precisely to find such mistakes.
    """
    found: dict[Path, ModelInfo] = {}
    if model_dir.is_dir():
        for child in sorted(model_dir.iterdir()):
            if child.name.startswith(".") or not child.is_dir() or not is_vosk_model(child):
                continue
            found[_key(child)] = ModelInfo(
                name=child.name,
                path=child,
                language=None,
                size_bytes=_tree_size(child),
                sample_rate=sample_rate(child),
                configured=False,
            )
    languages: dict[Path, list[str]] = {}
    for language, value in sorted(configured.items()):
        path = resolve_model(value, model_dir)
        key = _key(path)
        languages.setdefault(key, []).append(language)
        if key in found:
            continue
        if not path.exists():
            problem = f"missing: {path} does not exist"
        elif not path.is_dir():
            problem = f"not a folder: {path}"
        elif not is_vosk_model(path):
            problem = f"not a vosk model: {path} has no am/final.mdl and conf/model.conf"
        else:
            problem = None
        found[key] = ModelInfo(
            name=path.name,
            path=path,
            language=None,
            size_bytes=_tree_size(path) if path.is_dir() else 0,
            sample_rate=None if problem else sample_rate(path),
            configured=True,
            problem=problem,
        )
    for key, langs in languages.items():
        found[key].configured = True
        found[key].language = ", ".join(langs)
    return sorted(found.values(), key=lambda m: (m.name, str(m.path)))


def format_models(models: list[ModelInfo]) -> str:
    """A plain-text table of ``models`` for the terminal, one model a line."""
    if not models:
        return "no vosk models installed or configured"
    header = ("NAME", "LANGUAGE", "RATE", "SIZE MB", "STATUS", "PATH")
    rows = [header]
    for model in models:
        if model.problem:
            status = f"PROBLEM ({model.problem})"
        else:
            status = "configured" if model.configured else "installed"
        rows.append(
            (
                model.name,
                model.language or "-",
                str(model.sample_rate) if model.sample_rate else "-",
                f"{model.size_bytes / 1_000_000:.1f}",
                status,
                str(model.path),
            )
        )
    # STATUS can be long (a problem message), so PATH comes last and stays readable.
    widths = [max(len(row[i]) for row in rows) for i in range(len(header) - 1)]
    lines = []
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        cells[2] = row[2].rjust(widths[2])
        cells[3] = row[3].rjust(widths[3])
        lines.append("  ".join([*cells, row[-1]]).rstrip())
    return "\n".join(lines)


# --- installing -----------------------------------------------------------------------------


def _bar(progress: bool, total: int | None, desc: str) -> tqdm:
    """A byte progress bar on stderr (stdout stays clean for scripts)."""
    return tqdm(
        total=total,
        desc=desc,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        file=sys.stderr,
        disable=not progress,
        leave=False,
    )


def _is_url(source: str) -> bool:
    return urllib.parse.urlsplit(source).scheme.lower() in ("http", "https")


def _download(url: str, target: IO[bytes], progress: bool) -> str:
    """Stream ``url`` into ``target``; returns the sha256 of what arrived."""
    digest = hashlib.sha256()
    request = urllib.request.Request(url, headers={"User-Agent": "ivr-cti model installer"})
    try:
        with urllib.request.urlopen(request, timeout=DOWNLOAD_TIMEOUT) as response:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            received = 0
            with _bar(progress, total, "downloading") as bar:
                while chunk := response.read(CHUNK):
                    target.write(chunk)
                    digest.update(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
    except urllib.error.HTTPError as exc:
        raise ModelError(f"cannot download {url}: HTTP {exc.code} {exc.reason}") from exc
    except urllib.error.URLError as exc:
        raise ModelError(f"cannot download {url}: {exc.reason}") from exc
    except (OSError, http.client.HTTPException, ValueError) as exc:
        raise ModelError(f"cannot download {url}: {exc or type(exc).__name__}") from exc
    if total is not None and received != total:
        raise ModelError(f"cannot download {url}: got {received} of {total} bytes")
    return digest.hexdigest()


def _file_sha256(path: Path, progress: bool) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file, _bar(progress, path.stat().st_size, "checking sha256") as bar:
        while chunk := file.read(CHUNK):
            digest.update(chunk)
            bar.update(len(chunk))
    return digest.hexdigest()


def _check_member(label: str, info: zipfile.ZipInfo) -> None:
    """Refuse a member that would land outside the target folder (zip-slip) or is odd."""
    name = info.filename
    parts = name.replace("\\", "/").split("/")
    if (
        not name
        or "\0" in name
        or name.startswith(("/", "\\"))
        or re.match(r"^[A-Za-z]:", name)
        or ".." in parts
    ):
        raise ModelError(f"{label}: unsafe member path {name!r} in the zip file")
    if stat.S_ISLNK(info.external_attr >> 16):
        raise ModelError(f"{label}: member {name!r} is a symlink; model archives hold files")
    if info.flag_bits & 0x1:
        raise ModelError(f"{label}: member {name!r} is encrypted")


def _verify_crcs(label: str, archive: zipfile.ZipFile, progress: bool) -> None:
    """Read every member once so a corrupt download is refused before unpacking.

    The same check as ``ZipFile.testzip()``, with a progress bar, and with the errors that
    ``testzip`` lets escape (bad deflate data, truncated members) turned into ModelError.
    """
    members = archive.infolist()
    with _bar(progress, sum(i.file_size for i in members), "verifying") as bar:
        for info in members:
            try:
                with archive.open(info) as member:
                    while chunk := member.read(CHUNK):
                        bar.update(len(chunk))
            except (zipfile.BadZipFile, zlib.error, EOFError, OSError, RuntimeError) as exc:
                raise ModelError(
                    f"corrupt zip file: {label} (member {info.filename}: {exc})"
                ) from exc


def _find_model(label: str, names: list[str], fallback: str) -> tuple[str, str]:
    """The archive folder (``prefix/``) holding the one model, and the model's name."""
    members = set(names)
    prefixes = sorted(
        name[: -len(MODEL_MARKERS[0])]
        for name in names
        if name.endswith(MODEL_MARKERS[0])
        and (name == MODEL_MARKERS[0] or name.endswith("/" + MODEL_MARKERS[0]))
        and name[: -len(MODEL_MARKERS[0])] + MODEL_MARKERS[1] in members
    )
    if not prefixes:
        raise ModelError(f"{label} holds no vosk model (no am/final.mdl and conf/model.conf)")
    if len(prefixes) > 1:
        shown = ", ".join(p.rstrip("/") or "(top level)" for p in prefixes)
        raise ModelError(f"{label} holds {len(prefixes)} vosk models ({shown}); expected one")
    prefix = prefixes[0]
    # A model zipped without its folder is named after the zip file.
    name = PurePosixPath(prefix.replace("\\", "/")).name if prefix else fallback
    if not name or name.startswith(".") or not re.fullmatch(r"[\w.+-]+", name):
        raise ModelError(f"{label}: unusable model folder name {name!r}")
    return prefix, name


def _unpack(archive: zipfile.ZipFile, prefix: str, dest: Path, progress: bool, label: str) -> None:
    """Write the members under ``prefix`` into ``dest`` (which must not exist yet)."""
    members = [i for i in archive.infolist() if i.filename.startswith(prefix)]
    dest.mkdir()
    root = dest.resolve()
    with _bar(progress, sum(i.file_size for i in members), "unpacking") as bar:
        for info in members:
            relative = info.filename[len(prefix) :].replace("\\", "/").strip("/")
            if not relative:
                continue
            path = dest / relative
            # Defence in depth: _check_member already refused '..' and absolute names.
            if not path.resolve().is_relative_to(root):
                raise ModelError(f"{label}: unsafe member path {info.filename!r} in the zip file")
            if info.is_dir():
                path.mkdir(parents=True, exist_ok=True)
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                with archive.open(info) as source, path.open("wb") as target:
                    while chunk := source.read(CHUNK):
                        target.write(chunk)
                        bar.update(len(chunk))
            except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
                raise ModelError(
                    f"corrupt zip file: {label} (member {info.filename}: {exc})"
                ) from exc
            except OSError as exc:  # e.g. the disk filled up
                raise ModelError(f"cannot unpack {label}: {path}: {exc.strerror}") from exc


@contextmanager
def _scratch(model_dir: Path) -> Iterator[Path]:
    """A hidden temporary folder in ``model_dir`` (same file system, so rename is atomic).

    Removed whatever happens, which is what guarantees no half-unpacked model survives.
    """
    try:
        scratch = Path(tempfile.mkdtemp(prefix=TMP_PREFIX, dir=model_dir))
    except OSError as exc:
        raise ModelError(f"cannot write to model directory {model_dir}: {exc.strerror}") from exc
    try:
        yield scratch
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _already_installed(target: Path) -> ModelError:
    return ModelError(
        f"model {target.name} is already installed at {target}; "
        f"remove that folder (rm -r {target}) to install it again"
    )


def install(source: str, model_dir: Path, sha256: str | None = None, progress: bool = True) -> Path:
    """Install the vosk model zip at ``source`` (a path or http(s) URL) into ``model_dir``.

    Returns the installed model folder, ``model_dir/<model name>``. Raises ModelError, with
    nothing left behind in ``model_dir``, if the download fails, the sha256 or a CRC does not
    match, the archive is not a zip, has unsafe paths, does not hold exactly one model, or a
    model of that name is already installed.
    """
    expected = sha256.strip().lower() if sha256 else None
    if expected is not None and not SHA256_HEX.fullmatch(expected):
        raise ModelError(f"bad sha256 {sha256!r}: expected 64 hexadecimal digits")
    is_url = _is_url(source)
    if is_url:
        stem = PurePosixPath(urllib.parse.urlsplit(source).path).stem
    else:
        if "://" in source:
            raise ModelError(f"cannot install {source}: only http and https URLs are supported")
        local = Path(source).expanduser()
        if local.is_dir():
            raise ModelError(
                f"not a zip file: {local} is a folder (configure a model folder directly, "
                "or install the model's .zip)"
            )
        if not local.is_file():
            raise ModelError(f"no such file: {local}")
        stem = local.stem
    try:
        model_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ModelError(f"cannot create model directory {model_dir}: {exc.strerror}") from exc

    with _scratch(model_dir) as scratch:
        if is_url:
            local = scratch / "download.zip"
            with local.open("wb") as file:
                actual = _download(source, file, progress)
        else:
            actual = _file_sha256(local, progress) if expected else None
        if expected is not None and actual != expected:
            raise ModelError(
                f"sha256 mismatch for {source}: expected {expected}, got {actual}; "
                "refusing to install"
            )
        if not zipfile.is_zipfile(local):
            raise ModelError(f"not a zip file: {source}")
        try:
            archive = zipfile.ZipFile(local)
        except (zipfile.BadZipFile, OSError) as exc:
            raise ModelError(f"not a zip file: {source} ({exc})") from exc
        with archive:
            for info in archive.infolist():
                _check_member(source, info)
            prefix, name = _find_model(source, archive.namelist(), stem)
            target = model_dir / name
            if target.exists() or target.is_symlink():
                raise _already_installed(target)
            needed = sum(i.file_size for i in archive.infolist() if i.filename.startswith(prefix))
            free = shutil.disk_usage(model_dir).free
            if needed > free:
                raise ModelError(
                    f"cannot install {source}: it needs {needed / 1e6:.0f} MB, "
                    f"{model_dir} has {free / 1e6:.0f} MB free"
                )
            _verify_crcs(source, archive, progress)
            unpacked = scratch / "model"
            _unpack(archive, prefix, unpacked, progress, source)
        if not is_vosk_model(unpacked):  # e.g. markers stored as directory entries
            raise ModelError(f"{source} holds no vosk model (no am/final.mdl and conf/model.conf)")
        if target.exists() or target.is_symlink():  # installed meanwhile by someone else
            raise _already_installed(target)
        try:
            unpacked.rename(target)
        except OSError as exc:
            raise ModelError(f"cannot move the model into {target}: {exc.strerror}") from exc
    return target
