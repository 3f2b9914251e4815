"""Configuration: `--config FILE`, else `$DUNNING_CONFIG`, else `./config.yaml`, else built-in defaults.

Values are converted as they load (paths resolved against the config file's folder, time zones checked), so
nothing downstream sees raw strings. Secrets never live in YAML: the database URL can come from
`$DUNNING_DATABASE_URL`, and channel options name the environment variables that hold passwords.
"""

from __future__ import annotations

import os
import zoneinfo
from datetime import time
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from engine.channel_options import channel_option_problems
from engine.errors import ConfigError, Problem
from engine.web.settings import WebSettings
from engine.yamlsource import load_located, validation_problems

CONFIG_ENV = "DUNNING_CONFIG"
DATABASE_ENV = "DUNNING_DATABASE_URL"

#: Channel names the shipped policies use, and what each sends to, until a real channel is configured.
DEFAULT_CHANNELS: dict[str, dict[str, Any]] = {
    "log": {"type": "log", "recipient": "email"},
    "email": {"type": "log", "recipient": "email"},
    "phone": {"type": "log", "recipient": "phone"},
    "letter": {"type": "log", "recipient": "address"},
    "visit": {"type": "log", "recipient": "address"},
    "legal": {"type": "log", "recipient": "address"},
}

RECIPIENT_FIELDS = ("email", "phone", "address", "name", "id")


#: Channel options that name a file or folder.
CHANNEL_PATH_OPTIONS = ("output_dir", "eml_dir", "path")


class ChannelSettings(BaseModel):
    """One named channel: which implementation (`type`) and its options (any other keys)."""

    model_config = ConfigDict(extra="allow")

    type: str
    #: The customer field a notification on this channel is addressed to.
    recipient: str = "email"

    @field_validator("recipient")
    @classmethod
    def _known_recipient(cls, value: str) -> str:
        if value not in RECIPIENT_FIELDS:
            raise ValueError(f"must be one of {', '.join(RECIPIENT_FIELDS)}, got {value!r}")
        return value

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class DispatchSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    batch_size: int = Field(500, ge=1)
    max_attempts: int = Field(8, ge=1)
    #: First retry delay; each further attempt doubles it, up to `max_backoff_seconds`.
    backoff_seconds: float = Field(60, gt=0)
    max_backoff_seconds: float = Field(6 * 3600, gt=0)
    #: How long a claimed notification stays reserved before another dispatcher may take it over.
    lease_seconds: float = Field(300, gt=0)
    concurrency: int = Field(4, ge=1)


class StatementSettings(BaseModel):
    """Statements of account sent on a schedule (engine.statement): off unless `schedule` is set."""

    model_config = ConfigDict(extra="forbid")

    #: monthly: on the first sweep on or after `day` of each month, every customer with open items gets one.
    schedule: Literal["monthly"] | None = None
    day: int = Field(1, ge=1, le=28)
    #: The channel the statements go out on (an email channel attaches the statement PDF).
    channel: str = "email"


class ScheduleSettings(BaseModel):
    """When the daemon works. Intervals are in real seconds; the sweep is a crontab in the company zone."""

    model_config = ConfigDict(extra="forbid")

    #: Crontab (minute hour day month day-of-week) in the company time zone. Keep it outside 02:00-03:00
    #: local time in zones with daylight saving (that hour is skipped or repeated once a year).
    sweep: str = "0 9 * * mon-fri"
    #: Crontab of the credit review (`dunning credit review --apply`, rules/credit.yaml); none: no scheduled review.
    credit_review: str | None = None
    #: How often the outbox is sent (new notifications, and retries whose time has come).
    dispatch_every_seconds: float = Field(5, gt=0)
    #: How often the daemon checks whether a scheduled sweep instant has passed.
    tick_seconds: float = Field(1, gt=0)
    #: How often `rules/` is checked for changes (SIGHUP reloads at once).
    watch_rules_seconds: float = Field(2, gt=0)
    #: Database upkeep (SQLite WAL checkpoint) and a summary line in the log.
    housekeeping_every_seconds: float = Field(3600, gt=0)
    #: On SIGTERM/SIGINT, how long in-flight sends may take to finish before the daemon exits anyway.
    shutdown_timeout_seconds: float = Field(30, gt=0)

    @field_validator("sweep", "credit_review")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        from engine.service.scheduler import check_cron  # the one module that imports apscheduler

        return None if value is None else check_cron(value)


class QuietHoursSettings(BaseModel):
    """When customers are not contacted, in *their* time zone (customers.timezone, else the company's)."""

    model_config = ConfigDict(extra="forbid")

    #: Local time quiet hours begin (inclusive) and end (exclusive); start later than end spans midnight.
    start: time = time(20, 0)
    end: time = time(8, 0)
    #: Hold messages on weekends (as the country defines them; CN make-up working days are working days).
    weekends: bool = True
    #: Hold messages on public holidays of the customer's country.
    holidays: bool = True
    #: Country for holidays when a customer has no `country:XX` tag; default: the top-level `country`.
    country: str | None = None

    @field_validator("country")
    @classmethod
    def _known_country(cls, value: str | None) -> str | None:
        from engine.policy.calendar import is_known_country

        if value is not None and not is_known_country(value.partition("-")[0]):  # GB-ENG: a subdivision
            raise ValueError(f"unknown country {value!r}; use an ISO code the `holidays` package knows, e.g. DE")
        return value


class ContactCapSettings(BaseModel):
    """At most `max` messages per customer in any `per_days` days, across all channels."""

    model_config = ConfigDict(extra="forbid")

    max: int = Field(1, ge=1)
    per_days: float = Field(2, gt=0)


class ImapSettings(BaseModel):
    """An IMAP mailbox to read (`dunning inbound fetch`, the daemon). Credentials come from the environment."""

    model_config = ConfigDict(extra="forbid")

    host: str
    port: int | None = Field(None, ge=1, le=65535)
    #: ssl (IMAPS, port 993), starttls (port 143, then TLS) or plain (only for a server on this machine).
    security: Literal["ssl", "starttls", "plain"] = "ssl"
    #: A CA bundle to trust instead of the system's (a private mail server's certificate).
    ca_file: Path | None = None
    folder: str = "INBOX"
    #: Environment variables holding the user name and password.
    user_env: str = "DUNNING_IMAP_USER"
    password_env: str = "DUNNING_IMAP_PASSWORD"
    #: Move processed messages to this folder (created if missing); otherwise they are only marked seen.
    move_to: str | None = None
    #: Delete processed messages (off: nothing is deleted from the mailbox unless this is set).
    delete: bool = False
    timeout_seconds: float = Field(30, gt=0)
    #: The daemon waits for new mail in IMAP IDLE where the server offers it (else it polls every
    #: `inbound.every_seconds`); each IDLE is ended and issued again after this many seconds, within the
    #: 29 minutes after which RFC 2177 lets a server drop an idle client.
    idle: bool = True
    idle_seconds: float = Field(1500, gt=0, le=1740)


class InboundSettings(BaseModel):
    """Reading replies, bounces and auto-replies back (engine.replies)."""

    model_config = ConfigDict(extra="forbid")

    #: A drop folder of `.eml` files, or a maildir (its new/ and cur/ are read).
    folder: Path | None = None
    #: Move processed files into this folder (relative to `folder`); otherwise they stay where they are.
    move_to: str | None = None
    imap: ImapSettings | None = None
    #: Business days a human reply pauses the notices of the invoices it answers (0: no pause).
    pause_business_days: int = Field(3, ge=0, le=60)
    #: Hold notices to a customer whose out-of-office gives a return date until that date.
    hold_until_return: bool = False
    #: How often the daemon reads the sources (seconds).
    every_seconds: float = Field(300, gt=0)


class CompanySettings(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: str = "Your Company Ltd"
    address: str = ""
    email: str = ""
    phone: str = ""
    payment_instructions: str = ""


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    database: str = "sqlite:///dunning.db"
    rules: Path = Path("rules")
    templates: Path | None = None
    timezone: str = "UTC"
    #: Country whose public holidays `days: business` skips when a policy names none.
    country: str | None = None
    channels: dict[str, ChannelSettings] = Field(default_factory=dict)
    dispatch: DispatchSettings = Field(default_factory=DispatchSettings)
    company: CompanySettings = Field(default_factory=CompanySettings)
    #: Who collector actions are recorded as when neither --actor nor $DUNNING_ACTOR names someone.
    actor: str | None = None
    #: The daemon's timetable (`dunning daemon`).
    schedule: ScheduleSettings = Field(default_factory=ScheduleSettings)
    #: Statements of account on a schedule (`statements: {schedule: monthly, day: 1, channel: email}`).
    statements: StatementSettings = Field(default_factory=StatementSettings)
    #: Hold notifications at night, on weekends and holidays (customer-local); off unless configured.
    quiet_hours: QuietHoursSettings | None = None
    #: Limit messages per customer across channels; off unless configured.
    contact_cap: ContactCapSettings | None = None
    #: Reading replies, bounces and auto-replies back; off unless configured.
    inbound: InboundSettings | None = None
    #: How long a writer waits for another one on SQLite before giving up with a clear message.
    database_busy_seconds: float = Field(default=30.0, gt=0, le=3600)
    #: How far ahead of the clock `dunning run --as-of` may sweep without `--allow-future` (a typo such as
    #: 3026 would otherwise block every real sweep for a thousand years).
    max_future_days: int = Field(default=7, ge=0, le=3650)
    #: The web workspace (`dunning serve`): public URL for customer links, session and link lifetimes.
    web: WebSettings = Field(default_factory=WebSettings)
    #: Where the file-writing channels (log, letters...) put their output.
    output_dir: Path = Path("out")
    #: Folder relative paths are resolved against (the config file's folder); not a YAML key.
    base_dir: Path = Field(default_factory=Path.cwd, exclude=True)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}; use an IANA name such as 'Europe/Berlin'") from None
        return value

    @property
    def zone(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.timezone)

    @property
    def rules_path(self) -> Path:
        return self._resolve(self.rules)

    @property
    def templates_path(self) -> Path:
        return self._resolve(self.templates) if self.templates else self.rules_path / "templates"

    @property
    def output_path(self) -> Path:
        return self._resolve(self.output_dir)

    @property
    def database_url(self) -> str:
        url = os.environ.get(DATABASE_ENV) or self.database
        prefix = "sqlite:///"
        if url.startswith(prefix) and url != "sqlite:///:memory:" and not url.startswith(prefix + "/"):
            url = prefix + str(self._resolve(Path(url[len(prefix) :])))
        return url

    def channel_settings(self) -> dict[str, ChannelSettings]:
        """Every channel with its folder and file options (`output_dir`, `eml_dir`, `path`) resolved against
        the configuration file's folder, as every other path here is: under the systemd unit the working
        directory is not the configuration's folder."""
        merged = {name: ChannelSettings(**spec) for name, spec in DEFAULT_CHANNELS.items()}
        merged.update(self.channels)
        return {name: self._with_resolved_paths(spec) for name, spec in merged.items()}

    def _with_resolved_paths(self, spec: ChannelSettings) -> ChannelSettings:
        paths = {
            key: str(self._resolve(Path(str(value))))
            for key, value in spec.options.items()
            if key in CHANNEL_PATH_OPTIONS and value
        }
        return spec.model_copy(update=paths) if paths else spec

    def _resolve(self, path: Path) -> Path:
        return path if path.is_absolute() else (self.base_dir / path)


def load_settings(path: str | Path | None = None) -> Settings:
    """The settings in force: the named file, `$DUNNING_CONFIG`, `./config.yaml`, or defaults."""
    explicit = path or os.environ.get(CONFIG_ENV)
    if explicit:
        file = Path(explicit)
        if not file.is_file():
            source = "--config" if path else f"${CONFIG_ENV}"
            raise ConfigError(f"{file}: configuration file not found (named by {source}); check the path")
    else:
        file = Path("config.yaml")
        if not file.is_file():
            return Settings(base_dir=Path.cwd())
    return settings_from_text(file.read_text(encoding="utf-8"), file)


def settings_from_text(text: str, file: Path) -> Settings:
    """Settings from YAML text; every problem is reported as `FILE:LINE:COLUMN: message`."""
    located = load_located(text, file)
    problems = list(located.problems)
    data = located.data if located.parsed else None
    if located.parsed and data is None:
        data = {}
    if located.parsed and not isinstance(data, dict):
        problems.append(Problem(str(file), 1, 1, "the configuration must be a mapping of keys to values"))
    if not problems:
        try:
            settings = Settings.model_validate({**data, "base_dir": file.resolve().parent})
        except ValidationError as exc:
            problems += validation_problems(exc, located, model=Settings)
        else:
            problems += channel_option_problems(located, settings.channels)  # `form:` for `from:` is an error
            if not problems:
                return settings
    raise ConfigError("invalid configuration:\n" + "\n".join(str(p) for p in sorted(problems)))
