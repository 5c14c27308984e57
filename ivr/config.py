"""Service configuration: one YAML file, overridden by ``IVR_<SECTION>__<KEY>`` variables.

Every setting has a default that works on one machine, so the file is optional.
A bad value is refused with a message naming the key (and the variable or file
it came from) and what was expected. Secret values are ``SecretStr`` and never
appear in messages or logs.
"""

from __future__ import annotations

import os
import secrets
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_origin
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

if TYPE_CHECKING:
    from cti.reports.kpis import Thresholds

ENV_PREFIX = "IVR_"
DEFAULT_CONFIG_FILE = "ivr.yaml"


class ConfigError(Exception):
    """A configuration problem, worded for the operator in one line."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class DatabaseSettings(_Section):
    url: str = Field("sqlite:///var/ivr.sqlite3", description="SQLAlchemy URL of the database.")

    @field_validator("url")
    @classmethod
    def _known_backend(cls, url: str) -> str:
        if not url.startswith(("sqlite:", "postgresql:", "postgresql+psycopg:")):
            raise ValueError("expected a sqlite:/// or postgresql:// URL")
        return url


class BusSettings(_Section):
    backend: Literal["inprocess", "redis"] = "inprocess"
    redis_url: str = "redis://127.0.0.1:6379/0"
    # Pub/sub ignores Redis database numbers: deployments sharing a server need their own.
    channel_prefix: str = Field("ivr.", pattern=r"^[A-Za-z0-9_.:-]{1,64}$")


class AmiSettings(_Section):
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(5038, ge=1, le=65535)
    username: str = "ivr"
    secret: SecretStr = SecretStr("")
    reconnect_max_delay: float = Field(30.0, gt=0, description="Backoff cap in seconds.")


class AgiSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(4573, ge=0, le=65535)
    allow: list[str] = Field(default_factory=lambda: ["127.0.0.1"], description="Peer addresses.")
    command_timeout: float = Field(30.0, gt=0, description="Seconds any AGI command may take.")
    safe_queue: str = Field("main", description="Queue a call goes to when our code fails.")
    drain_timeout: float = Field(
        60.0, ge=0, description="Seconds calls may take to finish on stop."
    )


class WebSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    secret_key: SecretStr = SecretStr("")
    threads: int = Field(16, ge=1, description="Worker threads for page requests.")


OUTCOME_CODES = ["resolved", "needs_follow_up", "escalated", "callback_scheduled", "wrong_number"]


class CtiSettings(_Section):
    region: str = Field("US", pattern=r"^[A-Z]{2}$", description="Where national numbers are from.")
    outcome_codes: list[str] = Field(default_factory=lambda: list(OUTCOME_CODES), min_length=1)
    history: int = Field(5, ge=0, le=50, description="Recent calls a screen pop shows.")


class TwilioSettings(_Section):
    account_sid: str = ""
    auth_token: SecretStr = SecretStr("")


class PathSettings(_Section):
    dialplans: Path = Path("dialplans")
    prompts: Path = Path("prompts")
    spool: Path = Path("var/spool")


class SpeechSettings(_Section):
    """Speech recognition for menus that listen for words (see docs/dialplans.md)."""

    engine: Literal["auto", "vosk", "pocketsphinx"] = Field(
        "auto", description="auto: vosk where a model is configured, else pocketsphinx."
    )
    models: dict[str, str] = Field(
        default_factory=dict,
        description="Vosk model per language: a folder, or a name under model_dir.",
    )
    model_dir: Path = Field(Path("var/speech-models"), description="Where models install.")
    host: str = Field("127.0.0.1", description="AudioSocket listener Asterisk streams to.")
    port: int = Field(4574, ge=0, le=65535)
    workers: int = Field(1, ge=1, le=64, description="Recogniser processes (one model each).")


class ReportSettings(_Section):
    """KPI thresholds and the center's time zone (see docs/kpis.md)."""

    timezone: str = Field(
        "UTC", description="The center's IANA time zone: the hour and day of a call."
    )
    service_level_seconds: float = Field(
        20.0, ge=0, description="Service level: answered within this many seconds."
    )
    short_abandon_seconds: float = Field(
        5.0, ge=0, description="Abandons in the queue shorter than this count nowhere."
    )
    repeat_hours: float = Field(
        72.0, gt=0, le=8784, description="Another call of the customer within this is a repeat."
    )
    rollup_seconds: float = Field(
        30.0, gt=0, description="How often `ivr serve` brings the KPI interval rollups up to date."
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, name: str) -> str:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            raise ValueError("unknown time zone, expected an IANA name like Europe/Paris") from None
        return name

    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def thresholds(self) -> Thresholds:
        from cti.reports.kpis import Thresholds

        return Thresholds(
            answer_seconds=self.service_level_seconds,
            short_abandon_seconds=self.short_abandon_seconds,
            repeat_hours=self.repeat_hours,
        )


class DialerSettings(_Section):
    """Outbound campaigns' dialer (docs/campaigns.md): in `ivr serve`, or `ivr dialer`."""

    enabled: bool = Field(True, description="Dial the active campaigns (needs AMI).")
    name: str = Field(
        "",
        pattern=r"^[A-Za-z0-9_.-]{0,64}$",
        description="This dialer's name, the same across restarts; default: the host name.",
    )
    channel: str = Field(
        "PJSIP/{number}@trunk",
        pattern=r"\{number\}",
        description="Dial string of an outbound call; {number} is the E.164 number.",
    )
    context: str = Field("ivr-outbound", description="Where an answered call goes.")
    agi_server: str = Field(
        "",
        pattern=r"^([A-Za-z0-9.-]+:[0-9]{1,5})?$",
        description="host:port of the FastAGI service answered calls run on; '': in `ivr"
        " serve`, its own; in `ivr dialer`, Asterisk's IVR_AGI_SERVER.",
    )
    poll_seconds: float = Field(1.0, gt=0, le=60, description="How often it looks for work.")

    def dialer_name(self) -> str:
        return self.name or socket.gethostname()


class CampaignSettings(_Section):
    """Contacts the service adds to campaigns by itself (docs/campaigns.md)."""

    callbacks: str = Field(
        "callbacks", description="Campaign for callbacks asked for in the IVR or by agents."
    )
    abandons: str = Field("", description="Campaign to call back queue abandons; '': none.")
    abandon_min_wait_seconds: float = Field(
        30.0, ge=0, description="Only abandons that waited at least this long."
    )
    surveys: str = Field("", description="Campaign for post-call survey opt-ins.")
    sweep_seconds: float = Field(
        10.0, gt=0, le=3600, description="How often the log is read for new contacts."
    )


class LogSettings(_Section):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["logfmt", "json"] = "logfmt"


class Settings(_Section):
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    bus: BusSettings = Field(default_factory=BusSettings)
    ami: AmiSettings = Field(default_factory=AmiSettings)
    agi: AgiSettings = Field(default_factory=AgiSettings)
    web: WebSettings = Field(default_factory=WebSettings)
    cti: CtiSettings = Field(default_factory=CtiSettings)
    twilio: TwilioSettings = Field(default_factory=TwilioSettings)
    paths: PathSettings = Field(default_factory=PathSettings)
    speech: SpeechSettings = Field(default_factory=SpeechSettings)
    reports: ReportSettings = Field(default_factory=ReportSettings)
    dialer: DialerSettings = Field(default_factory=DialerSettings)
    campaigns: CampaignSettings = Field(default_factory=CampaignSettings)
    log: LogSettings = Field(default_factory=LogSettings)

    def secret_values(self) -> list[str]:
        """Every non-empty secret, so that logging can mask it wherever it shows up."""
        found = [self.ami.secret, self.web.secret_key, self.twilio.auth_token]
        return [s.get_secret_value() for s in found if s.get_secret_value()]

    def session_key(self) -> str:
        """The web session key; a random one per process when none is configured."""
        key = self.web.secret_key.get_secret_value()
        if not key:
            key = secrets.token_urlsafe(32)
            self.web.secret_key = SecretStr(key)
        return key


def _env_overrides(environ: dict[str, str]) -> dict[tuple[str, ...], str]:
    """``IVR_AMI__SECRET=x`` becomes ``{("ami", "secret"): "x"}``; IVR_CONFIG is not a key."""
    found = {}
    for name, value in environ.items():
        if name.startswith(ENV_PREFIX) and "__" in name:
            found[tuple(name[len(ENV_PREFIX) :].lower().split("__"))] = value
    return found


def _is_list_setting(path: tuple[str, ...]) -> bool:
    section = Settings.model_fields.get(path[0])
    model = section.annotation if section is not None and len(path) == 2 else None
    field = getattr(model, "model_fields", {}).get(path[1]) if model else None
    return field is not None and get_origin(field.annotation) is list


def _set_path(tree: dict[str, Any], path: tuple[str, ...], value: str, origin: str) -> None:
    """Put one environment value into the settings tree; lists are comma-separated."""
    node = tree
    for part in path[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"{origin}: {'.'.join(path)}: {part} is not a section")
        node = child
    node[path[-1]] = (
        [item.strip() for item in value.split(",") if item.strip()]
        if _is_list_setting(path)
        else value
    )


def _is_secret_key(key: str) -> bool:
    return any(word in key for word in ("secret", "token", "password", "key"))


def config_path(explicit: str | os.PathLike[str] | None, environ: dict[str, str]) -> Path | None:
    """The file to read: --config, else $IVR_CONFIG, else ./ivr.yaml when present."""
    if explicit:
        return Path(explicit)
    if environ.get("IVR_CONFIG"):
        return Path(environ["IVR_CONFIG"])
    default = Path(DEFAULT_CONFIG_FILE)
    return default if default.exists() else None


def load_settings(
    path: str | os.PathLike[str] | None = None, environ: dict[str, str] | None = None
) -> Settings:
    """Read the YAML file (optional), apply environment overrides, and validate."""
    environ = dict(os.environ if environ is None else environ)
    file = config_path(path, environ)
    tree: dict[str, Any] = {}
    if file is not None:
        try:
            loaded = yaml.safe_load(file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"{file}: config file not found") from None
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" line {mark.line + 1}" if mark else ""
            raise ConfigError(f"{file}:{where}: not valid YAML") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"{file}: expected a mapping of sections at the top level")
        tree = loaded or {}

    env = _env_overrides(environ)
    for key_path, value in env.items():
        var = ENV_PREFIX + "__".join(key_path).upper()
        _set_path(tree, key_path, value, var)

    try:
        return Settings.model_validate(tree)
    except ValidationError as exc:
        error = exc.errors()[0]
        key = ".".join(str(p) for p in error["loc"])
        var = ENV_PREFIX + "__".join(str(p) for p in error["loc"]).upper()
        origin = var if tuple(str(p) for p in error["loc"]) in env else str(file or "defaults")
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            message = "unknown key"
        elif not _is_secret_key(key) and "input" in error and not isinstance(error["input"], dict):
            message += f", got {error['input']!r}"
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise ConfigError(f"{origin}: {key}: {message}{more}") from None
