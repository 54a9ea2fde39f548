"""Configuration: one TOML file, overridable by environment, secrets from files.

Priority (highest first): ``STOCKSYNCD_...__...`` environment variables,
secret files (systemd ``$CREDENTIALS_DIRECTORY``, Docker ``/run/secrets``),
the TOML file, defaults. Every model forbids unknown keys, so a typo is an
error that names the key rather than a setting silently ignored.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
import stat
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    NestedSecretsSettingsSource,
    PydanticBaseSettingsSource,
    SecretsSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)
from yarl import URL

from stocksyncd.errors import ConfigError
from stocksyncd.http.limits import (
    DEFAULT_MAX_RESPONSE_MIB,
    FALLBACK_MAX_RESPONSE_MIB,
    MIB,
    Limits,
)
from stocksyncd.netaddr import is_loopback

DEFAULT_CONFIG_PATH = "/etc/stocksyncd/config.toml"
ENV_PREFIX = "STOCKSYNCD_"
DEFAULT_SECRET_DIRS = ("/run/secrets",)

_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def parse_duration(value: Any) -> float:
    """Seconds from ``90``, ``"90s"``, ``"2m"``, ``"1h"``, ``"1d"``, ``"500ms"``."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 30s, 2m, 1h")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (m := _DURATION_RE.match(value)):
        seconds = float(m.group(1)) * _UNITS[m.group(2)]
    else:
        raise ValueError(f"{value!r} is not a duration such as 30s, 2m, 1h")
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return seconds


Duration = Annotated[float, BeforeValidator(parse_duration)]


def _check_cron(value: str | None) -> str | None:
    if value is None:
        return None
    from apscheduler.triggers.cron import CronTrigger

    try:
        CronTrigger.from_crontab(value, timezone="UTC")
    except ValueError as exc:
        raise ValueError(f"invalid cron expression {value!r}: {exc}") from exc
    return value


class Strict(BaseModel):
    """Base for config sections: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class DaemonConfig(Strict):
    """``[daemon]``: process-wide settings."""

    # Four slashes: an absolute path, whatever directory the command runs in.
    state_url: str = "sqlite:////var/lib/stocksyncd/state.db"
    log_level: Literal["TRACE", "DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["journal", "text", "json"] = "journal"
    debug_dir: Path | None = None
    shutdown_timeout: Duration = 30.0
    replica: str = Field(default_factory=socket.gethostname)
    lease_ttl: Duration = 60.0
    failures_unhealthy: int = Field(default=3, ge=1)
    # Run history (with its audited changes) is kept within all three bounds; 0 turns
    # one off. Runs per integration, age, and the estimated size of the whole history.
    keep_runs: int = Field(default=20000, ge=0)
    keep_history: Duration = 30 * 86400.0
    history_max_mb: int = Field(default=300, ge=0)

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("state_url")
    @classmethod
    def _state_url(cls, value: str) -> str:
        if not value.startswith(("sqlite", "postgresql", "postgres://")):
            raise ValueError("state_url must start with sqlite:// or postgresql://")
        return value


class WebConfig(Strict):
    """``[web]``: the status page, health and metrics."""

    enabled: bool = True
    listen: str = "127.0.0.1:8780"
    token: SecretStr = SecretStr("")
    # Host names the page may be reached by, besides localhost and the listen
    # address (a name that is not listed is refused: DNS rebinding).
    allowed_hosts: tuple[str, ...] = ()
    # Believe X-Forwarded-Proto/-For: only behind a reverse proxy that sets them.
    trust_proxy: bool = False
    session_lifetime: Duration = 12 * 3600.0
    # Wrong tokens a client may try per login_window before it must wait.
    login_attempts: int = Field(default=5, ge=1)
    login_window: Duration = 300.0
    max_connections: int = Field(default=100, ge=1, le=10000)
    # A connection must send a request's headers this soon after opening (or after
    # the previous response), and is closed after idle_timeout without a request.
    header_timeout: Duration = 10.0
    idle_timeout: Duration = 30.0

    @field_validator("allowed_hosts")
    @classmethod
    def _hosts(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        cleaned = []
        for name in value:
            host = name.strip().lower().rstrip(".").strip("[]")
            if ":" in host:
                try:
                    ipaddress.IPv6Address(host)
                except ValueError:
                    host = ""
            if not host or any(c in host for c in "/ @\\"):
                raise ValueError(f"{name!r} is not a host name (give it without port or path)")
            cleaned.append(host)
        return tuple(cleaned)

    # "en", "ru", or "auto": the browser's Accept-Language picks (English otherwise).
    language: Literal["auto", "en", "ru"] = "auto"
    # IANA zone for the times shown ("Europe/Moscow"); "" = the server's own zone.
    timezone: str = ""

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        if value:
            try:
                ZoneInfo(value)
            except (ZoneInfoNotFoundError, ValueError) as exc:
                raise ValueError(
                    f"{value!r} is not a known time zone (e.g. Europe/Moscow)") from exc
        return value

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError(f"{value!r} is not host:port")
        if not host:
            raise ValueError(f"{value!r} has no host")
        return value

    @property
    def host(self) -> str:
        """The address to bind."""
        return self.listen.rpartition(":")[0].strip("[]")

    @property
    def port(self) -> int:
        """The port to bind."""
        return int(self.listen.rpartition(":")[2])


ApiName = Literal["insales", "moysklad", "kak2c", "mouser", "inventree"]


class HttpConfig(Strict):
    """``[http]``: bounds on what any upstream can make the daemon wait for or read."""

    # The longest wait an upstream may ask for (Retry-After); past it the run fails.
    max_wait: Duration = Field(default=300.0, ge=1.0, le=3600.0)
    min_429_wait: Duration = Field(default=1.0, le=60.0)
    # Rate-limit answers within a minute that open the circuit breaker
    # (MoySklad locks an account at 200 refused requests a minute).
    breaker_429s: int = Field(default=20, ge=1, le=150)
    breaker_pause: Duration = Field(default=300.0, ge=1.0)
    # Largest answer read per API, in MiB (defaults: DEFAULT_MAX_RESPONSE_MIB).
    max_response_mib: dict[ApiName, int] = {}

    @field_validator("max_response_mib")
    @classmethod
    def _sizes(cls, value: dict[ApiName, int]) -> dict[ApiName, int]:
        for api, mib in value.items():
            if not 1 <= mib <= 4096:
                raise ValueError(f"{api}: {mib} MiB is outside 1..4096")
        return value

    def limits(self, api: str) -> Limits:
        """The bounds for requests to ``api``."""
        configured: dict[str, int] = {str(k): v for k, v in self.max_response_mib.items()}
        mib = configured.get(api, DEFAULT_MAX_RESPONSE_MIB.get(api, FALLBACK_MAX_RESPONSE_MIB))
        return Limits(max_wait=self.max_wait, min_429_wait=self.min_429_wait,
                      breaker_429s=self.breaker_429s, breaker_pause=self.breaker_pause,
                      max_response_bytes=mib * MIB)


class ShopConfig(Strict):
    """``[shops.NAME]``: an InSales shop (one rate budget shared by its integrations)."""

    url: str
    api_key: SecretStr
    password: SecretStr
    requests_per_window: int = Field(default=500, ge=1)
    window: Duration = 300.0
    timeout: Duration = 60.0

    @model_validator(mode="before")
    @classmethod
    def _credentials_in_url(cls, data: Any) -> Any:
        """``https://id:pass@shop.myinsales.ru`` (a form InSales documents): the
        credentials move to api_key/password, the URL keeps only the shop."""
        if not isinstance(data, dict) or not isinstance(data.get("url"), str):
            return data
        try:
            parsed = URL(data["url"].strip())
        except ValueError:
            return data
        if parsed.user is None and parsed.password is None:
            return data
        data = {**data, "url": str(parsed.with_user(None))}
        for key, value in (("api_key", parsed.user), ("password", parsed.password)):
            if not value:
                continue
            given = data.get(key)
            if isinstance(given, SecretStr):
                given = given.get_secret_value()
            if given is None or given == "":
                data[key] = value
            elif given != value:
                raise ValueError(
                    f"url: the credentials in the URL differ from {key}; give them once, "
                    "in api_key and password, and the URL as https://SHOP.myinsales.ru"
                )
        return data

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"{value!r} is not an http(s) URL")
        return value.rstrip("/")


class IntegrationBase(Strict):
    """Keys every integration has."""

    enabled: bool = True
    dry_run: bool = False
    every: Duration | None = None
    cron: str | None = None
    jitter: Duration | None = None
    run_at_start: bool = True
    timeout: Duration = 60.0

    _check_cron = field_validator("cron")(classmethod(lambda cls, v: _check_cron(v)))

    @model_validator(mode="after")
    def _one_schedule(self) -> IntegrationBase:
        if self.every is not None and self.cron is not None:
            raise ValueError("give either 'every' or 'cron', not both")
        if self.every is not None and self.every < 1:
            raise ValueError("'every' must be at least 1s")
        return self


class StockSyncOptions(IntegrationBase):
    """Keys shared by the two InSales stock integrations."""

    shop: str
    warehouse: int | None = Field(default=None, ge=0)
    negative: Literal["clamp", "skip"] = "clamp"
    zero_guard: float = Field(default=0.5, ge=0.0, le=1.0)
    full_refresh: Duration = 3600.0
    write_concurrency: int = Field(default=4, ge=1, le=16)
    # How long a written figure may take to show in InSales (its queue) before
    # it is written once more, and after that once more before it is reported.
    confirm_within: Duration = 600.0
    # Anti-oversell: every figure published is lowered by ``safety_buffer``
    # units or by the share ``safety_buffer_share`` (the larger cut), never below 0.
    safety_buffer: int = Field(default=0, ge=0)
    safety_buffer_share: float = Field(default=0.0, ge=0.0, lt=1.0)


class MoySkladInSalesConfig(StockSyncOptions):
    """``type = "moysklad-insales"``."""

    type: Literal["moysklad-insales"]
    every: Duration | None = None
    token: SecretStr
    base_url: str = "https://api.moysklad.ru/api/remap/1.2"
    source_key: Literal["article", "code", "externalCode"] = "article"
    target_key: Literal["sku", "barcode"] = "sku"
    stock_type: Literal["quantity", "stock", "freeStock"] = "quantity"
    store_id: str | None = None
    # Rate-limit units budgeted per request; None follows MoySklad's announced
    # user-token weight of the day (2, 3 from 1 Sep 2026, 4 from 1 Dec 2026).
    request_weight: float | None = Field(default=None, gt=0, le=45)
    # Every run reads only what changed since the last one; everything is read
    # again this often (and after any doubt). MoySklad asks for at least daily.
    source_full_refresh: Duration = Field(default=3600.0, ge=60.0, le=86400.0)
    # How far each changed-since window reaches back before the previous read.
    source_overlap: Duration = Field(default=120.0, ge=5.0, le=3600.0)


class Kak2cInSalesConfig(StockSyncOptions):
    """``type = "kak2c-insales"``."""

    type: Literal["kak2c-insales"]
    login: str
    password: SecretStr
    base_url: str = "https://app.kak2c.ru/api/lite"
    domain: str | None = None
    source_key: Literal["barcode", "variant_id"] = "barcode"
    target_key: Literal["barcode", "sku"] = "barcode"
    stock_field: str = "stockTotal"
    # Kak2c documents no limits: these are assumptions measured against the
    # simulator (docs/benchmarks.md, "Kak2c paging").
    page_size: int = Field(default=500, ge=1, le=1000)
    concurrency: int = Field(default=4, ge=1, le=16)
    requests_per_second: float = Field(default=10.0, gt=0, le=100)


class MouserInvenTreeConfig(IntegrationBase):
    """``type = "mouser-inventree"``."""

    type: Literal["mouser-inventree"]
    inventree_url: str
    inventree_token: SecretStr
    mouser_api_key: SecretStr
    mouser_supplier: int = Field(ge=1)
    base_url: str = "https://api.mouser.com/api/v1"
    proxy: str | None = None
    # Known SKUs are looked up ten to a call, so one call refreshes up to ten parts.
    parts_per_run: int = Field(default=10, ge=1, le=100)
    calls_per_run: int = Field(default=1, ge=1, le=30)
    calls_per_minute: int = Field(default=30, ge=1)
    calls_per_day: int = Field(default=1000, ge=1)
    # Calls of the day kept for the review page's actions when deriving the schedule.
    reserve_calls: int = Field(default=40, ge=0)
    note_format: Literal["marked", "bare"] = "marked"
    packaging_labels: tuple[str, ...] = ("Packaging", "Verpackung")
    search_link: str = "https://www.mouser.com/c/?q={query}"


IntegrationConfig = Annotated[
    MoySkladInSalesConfig | Kak2cInSalesConfig | MouserInvenTreeConfig,
    Field(discriminator="type"),
]

DEFAULT_EVERY = {"moysklad-insales": 60.0, "kak2c-insales": 60.0, "mouser-inventree": 120.0}


def quota_every(cfg: MouserInvenTreeConfig) -> float:
    """The Mouser interval the daily quota allows: the day's calls less the reserve,
    spread evenly (1000 a day, 40 reserved, one call a run: every 90 s)."""
    runs = max(1, (cfg.calls_per_day - cfg.reserve_calls) // cfg.calls_per_run)
    return max(60.0, float(-(-86400 // runs)))


def effective_every(cfg: IntegrationBase, type_: str) -> float | None:
    """The interval in seconds, or None when a cron expression schedules the job."""
    if cfg.cron is not None:
        return None
    if cfg.every is not None:
        return cfg.every
    if isinstance(cfg, MouserInvenTreeConfig):
        return quota_every(cfg)
    return DEFAULT_EVERY[type_]


class NotifyConfig(Strict):
    """``[notify]``: messages through apprise (Telegram, e-mail, webhooks...) on state changes."""

    # One apprise URL per destination; each is a secret (it holds tokens).
    urls: list[SecretStr] = []
    language: Literal["en", "ru"] = "en"
    run_failed: bool = True
    zero_guard: bool = True  # a run aborted by the zero guard
    new_conflicts: bool = True
    failing: bool = True  # a job failing ``failing_after`` times in a row
    failing_after: int = Field(default=3, ge=1)
    recovered: bool = True
    lifecycle: bool = True  # Mouser lifecycle changes
    # While a problem lasts, at most one digest of its repeats per this long.
    digest_every: Duration = 21600.0
    timeout: Duration = 30.0
    # The status page as the owner opens it ("https://stock.example.ru"): messages link
    # to the run. Empty: no links.
    page_url: str = ""


class Config(BaseSettings):
    """The whole configuration."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        case_sensitive=False,
        extra="forbid",
        frozen=True,
        secrets_prefix="",
        secrets_dir_missing="ok",
    )

    daemon: DaemonConfig = DaemonConfig()
    web: WebConfig = WebConfig()
    http: HttpConfig = HttpConfig()
    notify: NotifyConfig = NotifyConfig()
    shops: dict[str, ShopConfig] = {}
    integrations: dict[str, IntegrationConfig] = {}

    @model_validator(mode="after")
    def _references(self) -> Config:
        for name, integ in self.integrations.items():
            shop = getattr(integ, "shop", None)
            if shop is not None and shop not in self.shops:
                known = ", ".join(sorted(self.shops)) or "none"
                raise ValueError(
                    f"integrations.{name}.shop: shop {shop!r} is not defined in [shops] "
                    f"(defined: {known})"
                )
        host = self.web.host
        if self.web.enabled and not is_loopback(host) and not self.web.token.get_secret_value():
            raise ValueError(
                f"web.listen: {self.web.listen} is not a loopback address; set web.token "
                "to expose the web page beyond this machine"
            )
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Environment over secret files over TOML over defaults."""
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        assert isinstance(file_secret_settings, SecretsSettingsSource)
        sources.append(NestedSecretsSettingsSource(file_secret_settings))
        toml = _toml_path.get()
        if toml is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml))
        return tuple(sources)

    def secret_values(self) -> list[str]:
        """Every secret in the config, for log redaction."""
        found: list[str] = []

        def walk(obj: Any) -> None:
            if isinstance(obj, SecretStr):
                found.append(obj.get_secret_value())
            elif isinstance(obj, BaseModel):
                for name in type(obj).model_fields:
                    walk(getattr(obj, name))
            elif isinstance(obj, dict):
                for v in obj.values():
                    walk(v)
            elif isinstance(obj, list | tuple):
                for v in obj:
                    walk(v)

        walk(self)
        return [s for s in found if s]


class _TomlPath:
    """The TOML file for the load in progress (settings sources are classmethods)."""

    def __init__(self) -> None:
        self._path: Path | None = None

    def get(self) -> Path | None:
        return self._path

    def set(self, path: Path | None) -> None:
        self._path = path


_toml_path = _TomlPath()


def default_config_path() -> Path:
    """``$STOCKSYNCD_CONFIG``, else ``/etc/stocksyncd/config.toml``."""
    return Path(os.environ.get("STOCKSYNCD_CONFIG") or DEFAULT_CONFIG_PATH)


def secret_dirs() -> list[Path]:
    """Directories holding secret files: systemd credentials, then Docker secrets."""
    dirs: list[Path] = []
    if cred := os.environ.get("CREDENTIALS_DIRECTORY"):
        dirs.append(Path(cred))
    dirs.extend(Path(d) for d in DEFAULT_SECRET_DIRS)
    return [d for d in dirs if d.is_dir()]


def load_config(path: Path | str | None = None) -> Config:
    """Read, merge and validate the configuration; raise ``ConfigError`` naming the key."""
    import tomllib

    path = Path(path) if path is not None else default_config_path()
    try:
        found = path.stat()
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except OSError as exc:
        # A directory this user may not enter: say so rather than "not found".
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    if not stat.S_ISREG(found.st_mode):
        raise ConfigError(f"config file not found: {path} is not a file")
    try:
        with path.open("rb") as fh:
            raw = tomllib.load(fh)  # syntax errors with line numbers, before pydantic sees it
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: TOML syntax error: {exc}") from exc
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from exc
    _toml_path.set(path)
    dirs = secret_dirs()
    try:
        config = Config(_secrets_dir=dirs or None)  # type: ignore[call-arg]
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, path, dirs)) from None
    finally:
        _toml_path.set(None)
    if not config.integrations:
        # A daemon with nothing to do looks healthy and syncs nothing: almost
        # always the wrong file, an unfinished one, or a section name typo.
        what = "is empty" if not raw else "configures no integration"
        raise ConfigError(
            f"{path}: {what}; add at least one [integrations.NAME] section "
            "(see config.example.toml)"
        )
    return config


_TAGS = {"moysklad-insales", "kak2c-insales", "mouser-inventree"}


def _key_path(loc: tuple[int | str, ...]) -> list[str]:
    """The config key of a pydantic error location, without the union's type tag."""
    parts = [str(p) for p in loc]
    # integrations.NAME.<tag>.key: the tag is the third part only, so an
    # integration named like its type keeps its name.
    if len(parts) >= 3 and parts[0] == "integrations" and parts[2] in _TAGS:
        del parts[2]
    return parts


def value_source(parts: list[str], dirs: list[Path] | None = None) -> str | None:
    """The environment variable or secret file that set ``parts`` (or a section of it).

    None when the value came from the TOML file or a default. Follows the load's
    priority: environment first, then secret files.
    """
    env = {name.upper() for name in os.environ}
    prefixes = [parts[:n] for n in range(len(parts), 0, -1)]
    for prefix in prefixes:
        name = ENV_PREFIX + "__".join(prefix).upper()
        if name in env:
            return f"environment variable {name}"
    for directory in dirs if dirs is not None else secret_dirs():
        for prefix in prefixes:
            candidate = directory / "__".join(prefix)
            if candidate.is_file():
                return f"secret file {candidate}"
    return None


def format_validation_error(exc: ValidationError, path: Path | None = None,
                            dirs: list[Path] | None = None) -> str:
    """One line per problem: ``key.path: what is wrong``, naming where the value came from.

    A value set by an environment variable or a secret file is blamed on it, not
    on the TOML file, which may not even contain the key.
    """
    lines = []
    from_file = False
    for err in exc.errors(include_url=False, include_input=False):
        parts = _key_path(err["loc"])
        key = ".".join(parts) or "(top level)"
        kind = err["type"]
        msg = err["msg"]
        if kind == "extra_forbidden":
            msg = "unknown key"
        elif kind == "missing":
            msg = "required key is missing"
        elif kind == "union_tag_invalid":
            msg = f"unknown integration type; use one of {', '.join(sorted(_TAGS))}"
        elif kind == "union_tag_not_found":
            msg = "'type' is missing; use one of " + ", ".join(sorted(_TAGS))
        elif msg.startswith("Value error, "):
            msg = msg.removeprefix("Value error, ")
        if kind == "value_error" and msg.startswith(("integrations.", "web.")):
            key, _, msg = msg.partition(": ")
            parts = key.split(".")
        source = value_source(parts, dirs) if kind != "missing" else None
        if source is None:
            from_file = True
            lines.append(f"{key}: {msg}")
        else:
            lines.append(f"{key}: {msg} (set by {source})")
    where = f"{path}: " if path and from_file else ""
    return where + "invalid configuration\n  " + "\n  ".join(lines)
