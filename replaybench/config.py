"""Settings: `replaybench.yaml` plus the environment, read and validated in this one place.

The environment variables replaybench honours are read here too (the simulator, a program of its
own, reads its own). Secrets never live in the file: the file names the environment variables that hold them
(`api_key_env`), and `Settings.api_key` resolves them.
"""

from __future__ import annotations

import difflib
import hashlib
import ipaddress
import os
import re
import subprocess
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlparse
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from replaybench.errors import ConfigError, register_secret

DEFAULT_CONFIG = "replaybench.yaml"
LOGGED_MODEL = "@logged"  # a candidate `model:` meaning "whatever model the request was logged with"


def aws_region() -> str | None:
    """`AWS_REGION`, which the AWS CLI v2 honours ahead of AWS_DEFAULT_REGION but botocore does
    not read by itself (it reads the endpoint, the keys and the profile on its own)."""
    return os.environ.get("AWS_REGION") or None


def on_this_machine(url: str) -> bool:
    """True when the URL's host is a loopback address or `localhost` (an IP parsed as an IP:
    `127.attacker.example` is a name, not a loopback address)."""
    host = urlparse(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Price(_Strict):
    """USD per one million tokens."""

    input: float = Field(ge=0, description="Uncached input tokens.")
    cached_input: float | None = Field(None, ge=0, description="Cache-hit input tokens.")
    output: float = Field(ge=0, description="Output tokens, reasoning tokens included.")


class Retry(_Strict):
    """How a failed request is tried again (429, 408, 409, 5xx, timeouts, unreadable bodies)."""

    max_attempts: int = Field(6, ge=1, le=50, description="Attempts per request, the first included.")
    deadline_s: float = Field(600.0, gt=0, description="Total time per request, retries and waits "
                              "included; a wait the endpoint asks for that would pass it fails the "
                              "request at once.")
    backoff_s: float = Field(0.5, ge=0, description="First backoff; doubles per attempt, with jitter.")
    max_backoff_s: float = Field(60.0, ge=0, description="Longest wait between two attempts, "
                                 "a wait the endpoint asks for (Retry-After, reset headers) included.")
    breaker: int = Field(20, ge=1, description="Consecutive failed requests (with no success) after "
                                               "which the rest fail fast as the endpoint is down.")


class Candidate(_Strict):
    """A model endpoint to replay production traffic against."""

    name: str = Field(description="How the candidate appears in the warehouse and the report.")
    provider: str = Field("openai", description="API dialect: a module of replaybench/providers/ "
                                                "(openai, anthropic).")
    base_url: str = Field(description="Endpoint root, e.g. https://api.z.ai/api/paas/v4.")
    model: str = Field(description="The model string sent in each request; `@logged` sends each "
                                   "request to the model it was logged with (replaying production "
                                   "itself measures the noise floor).")
    api_key_env: str | None = Field(None, description="Environment variable holding the key.")
    max_concurrency: int = Field(32, ge=1, le=1024, description="Requests in flight at once, "
                                                              "across every process on this machine.")
    requests_per_minute: int | None = Field(None, ge=1, description="Request rate limit.")
    tokens_per_minute: int | None = Field(None, ge=1, description="Token rate limit (input + output).")
    timeout_s: float = Field(120.0, gt=0, description="Per-attempt timeout in seconds.")
    retry: Retry = Field(default_factory=Retry)
    stream: bool = Field(True, description="Stream answers (needed to measure TTFT).")
    max_response_bytes: int = Field(
        16 * 1024 * 1024, ge=1, description="Largest answer read, in bytes (a body, or a whole "
                                             "stream): reading stops there and the request fails "
                                             "as bad_response.")
    max_stream_s: float | None = Field(
        None, gt=0, description="Longest a streamed answer may keep arriving, in seconds from "
                                "the request: reading stops there and the request fails as "
                                "bad_response. Unset: timeout_s (which ends every attempt anyway).")
    max_tokens_field: Literal["max_tokens", "max_completion_tokens"] = Field(
        "max_tokens", description="Which name the endpoint wants for the output-token cap "
                                  "(OpenAI's reasoning models want max_completion_tokens).")
    params: dict[str, object] = Field(
        default_factory=dict, description="Sampling parameters that override the logged ones."
    )
    price: Price | None = Field(None, description="Overrides the price table for this model.")
    trusted: bool = Field(False, description="Send this endpoint the requests as logged, personal "
                          "data included (with redact.enabled: auto). Only for an endpoint that "
                          "keeps data in-house: a gateway on localhost that forwards to a "
                          "provider is not.")

    @field_validator("provider")
    @classmethod
    def _known_provider(cls, v: str) -> str:
        from replaybench.providers import names  # the registry imports config: imported late

        if v not in names():
            raise ValueError(f"unknown provider {v!r}; known: {', '.join(names())}")
        return v

    @field_validator("name")
    @classmethod
    def _name_not_baseline(cls, v: str) -> str:
        if v == "production":
            raise ValueError("'production' is reserved for the logged answers")
        return v

    @property
    def replays_production(self) -> bool:
        """This candidate sends each request to its logged model: it measures the noise floor."""
        return self.model == LOGGED_MODEL

    @property
    def is_loopback(self) -> bool:
        """True when the endpoint lives on this machine (e.g. the local model fleet)."""
        return on_this_machine(self.base_url)


class SampleFilter(_Strict):
    """Which logged requests may be sampled at all."""

    endpoints: list[str] | None = Field(None, description="Only these endpoints.")
    model_ids: list[str] | None = Field(None, description="Only traffic of these production models.")
    successful_only: bool = Field(False, description="Only requests production answered (status ok).")


class Sample(_Strict):
    """How each night's requests are drawn from the logs: stratified by prompt_version."""

    per_prompt_version: int = Field(200, ge=1, alias="max_per_prompt_version",
                                    description="The most requests a prompt_version gets in a "
                                                "night (with allocation: equal); fewer when its "
                                                "open decisions need fewer.")
    monitor_per_prompt_version: int = Field(0, ge=0, description="Requests a prompt_version whose "
                                            "decisions are all reached still gets (0: none).")
    budget_usd: float | None = Field(None, gt=0, description="The most a night may spend on "
                                     "candidates (estimated from past answers); quotas shrink "
                                     "to fit.")
    allocation: Literal["equal", "proportional"] = Field(
        "equal", description="equal: per_prompt_version each; proportional: `size` in all, shared "
                             "by traffic, at least min_per_prompt_version each.")
    size: int = Field(1000, ge=1, description="Requests in all, with allocation: proportional.")
    min_per_prompt_version: int = Field(30, ge=1, description="The least a prompt_version gets "
                                                            "(when it has that many requests).")
    seed: int = Field(7, description="Same seed and data give the same sample.")
    window_days: int = Field(1, ge=1, le=366, description="Days of traffic a run draws from.")
    filter: SampleFilter = SampleFilter()
    min_detectable_difference: float = Field(
        0.05, gt=0, lt=1, description="The smallest change in pass rate worth detecting: each "
                                      "decision's plan is sized to catch it.")
    power: float = Field(0.9, gt=0, lt=1, description="Chance that a decision catches that change "
                                                      "within its planned pairs.")


class Decide(_Strict):
    """How a decision is reached across nights (replaybench/decide/)."""

    alpha: float = Field(0.05, gt=0, lt=0.5, description="Family-wise error rate, shared by the "
                         "decisions opened on the same night.")
    margin: float = Field(0.03, gt=0, lt=0.5, description="Non-inferiority / equivalence margin "
                          "in pass rate (0.03 = 3 points).")
    power: float = Field(0.8, gt=0, lt=1, description="Chance to show non-inferiority of a "
                         "candidate as good as the baseline, within the planned pairs.")


class Ingest(_Strict):
    """How log files are read."""

    prompt_version_key: str = Field("prompt_version", description="Metadata key that holds the "
                                    "prompt version where a format has no field of its own.")
    max_field_chars: int = Field(1_000_000, ge=1, description="A text field longer than this "
                                 "rejects its record (a broken export, not a log).")
    langfuse_latency_unit: Literal["auto", "s", "ms"] = Field(
        "auto", description="The unit of `latency` in Langfuse blob-storage exports: seconds now, "
        "milliseconds for integrations created before 2026-04-01; auto tells them apart from the "
        "start and end times and rejects a row where it cannot.")


_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)?\s*")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}


def _duration(value: object) -> object:
    """`90`, `90s`, `30m`, `6h`, `1d` (a number alone is seconds) as a timedelta."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return timedelta(seconds=value)
    if isinstance(value, str):
        m = _DURATION.fullmatch(value)
        if not m:
            raise ValueError(f"not a duration: {value!r} (write 90s, 30m, 6h or 1d)")
        return timedelta(seconds=float(m.group(1)) * _UNIT_S[m.group(2)])
    return value


# written as seconds, which `_duration` reads back (a flow run's parameters hold settings as JSON)
Duration = Annotated[timedelta, BeforeValidator(_duration),
                     PlainSerializer(timedelta.total_seconds, return_type=float, when_used="json")]


class LangfuseApi(_Strict):
    """Langfuse's public API as a source: the generations of each night's window, paginated.
    The keys are read from the environment variables named here, never from this file."""

    host: str = Field(description="The Langfuse server, e.g. https://cloud.langfuse.com.")
    public_key_env: str = "LANGFUSE_PUBLIC_KEY"
    secret_key_env: str = "LANGFUSE_SECRET_KEY"
    page_size: int = Field(100, ge=1, le=1000, description="Observations per page.")
    max_requests_per_s: float = Field(0.5, gt=0, description="The pace of page requests (Langfuse "
                                      "rate-limits its public API; a 429 is waited out as well).")
    timeout_s: float = Field(30.0, gt=0, description="Per page request.")

    def keys(self) -> tuple[str, str]:
        """(public key, secret key) from the environment; a clear error naming what is missing."""
        found = {name: os.environ.get(name) for name in (self.public_key_env, self.secret_key_env)}
        missing = [name for name, value in found.items() if not value]
        if missing:
            raise ConfigError(f"No {' or '.join(missing)} in the environment: set it for the "
                              f"Langfuse source {self.host}")
        for value in found.values():
            register_secret(value)
        return found[self.public_key_env], found[self.secret_key_env]

    @field_validator("host")
    @classmethod
    def _http(cls, v: str) -> str:
        if urlparse(v).scheme not in ("http", "https") or not urlparse(v).hostname:
            raise ValueError(f"host must be an http(s) URL, not {v!r}")
        return v.rstrip("/")


class Source(_Strict):
    """Where a night finds its logs: a file pattern (a folder or glob, local or object storage)
    with an optional `{date:...}` template, or Langfuse's API."""

    path: str | None = Field(None, description="A file, a glob, or a URL (s3://bucket/prefix/...); "
                             "{date:%Y/%m/%d} stands for each day of the run's window.")
    format: str = Field("auto", description="The log format (see docs/log-formats.md).")
    langfuse: LangfuseApi | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Source:
        if (self.path is None) == (self.langfuse is None):
            raise ValueError("a source has either a path or a langfuse block")
        from replaybench.ingest.formats import FORMATS  # the registry (it imports no config)

        if self.format != "auto" and self.format not in FORMATS:
            raise ValueError(f"unknown format {self.format!r}; known: auto, {', '.join(FORMATS)}")
        return self

    @property
    def name(self) -> str:
        """How the ledger and the report name this source."""
        return self.path if self.path is not None else f"langfuse:{self.langfuse.host}"


class Freshness(_Strict):
    """When a night's logs count as complete, and how long the night waits for late ones."""

    max_lag: Duration = Field(timedelta(hours=6), description="The newest log of the window must be "
                              "at most this long before the window's end.")
    wait: Duration = Field(timedelta(0), description="How long the night waits (reading the "
                           "sources again every `poll`) for late logs before it runs on what it "
                           "has and ends partial.")
    poll: Duration = Field(timedelta(minutes=5), description="How often the sources are read again "
                           "while waiting.")


class Smtp(_Strict):
    host: str = "127.0.0.1"
    port: int = 25
    starttls: bool = False
    ssl: bool = False
    username_env: str | None = None
    password_env: str | None = None
    plaintext_on_loopback: bool = Field(False, description="Allow logging in without TLS to a "
                                        "relay on this machine (never to another host).")

    @model_validator(mode="after")
    def _no_password_in_clear(self) -> Smtp:
        loopback_ok = self.plaintext_on_loopback and on_this_machine(f"smtp://{self.host}")
        if (self.username_env or self.password_env) and not (self.starttls or self.ssl
                                                             or loopback_ok):
            raise ValueError(
                "SMTP credentials would be sent without TLS: set starttls: true (port 587) or "
                "ssl: true (port 465); for a relay on this machine only, "
                "plaintext_on_loopback: true")
        return self

    def credentials(self) -> tuple[str | None, str | None]:
        """(username, password) from the environment variables named; both registered as secrets."""
        values = []
        for env in (self.username_env, self.password_env):
            value = os.environ.get(env) if env else None
            if env and not value:
                raise ConfigError(f"No {env} in the environment: set it, or remove it from email.smtp")
            register_secret(value)
            values.append(value)
        return values[0], values[1]


class Email(_Strict):
    to: list[str]
    from_: str = Field(alias="from")
    smtp: Smtp = Smtp()
    block: str | None = Field(None, description="Name of a Prefect EmailServerCredentials block "
                                                "to send with instead of the smtp settings.")
    enabled: bool = Field(True, description="false: keep the settings but send nothing.")


class Report(_Strict):
    """Where each night's report and the index of runs are published for readers on other
    machines: a folder a web server serves at `base_url`, an S3-compatible bucket (endpoint and
    keys from the environment, as for sources), or the http(s) URL `reports_dir` itself is served
    at (then nothing is copied)."""

    publish_to: str | None = Field(None, description="A folder, s3://bucket/prefix, or the http(s) "
                                   "URL that reports_dir is served at.")
    base_url: str | None = Field(None, description="The http(s) URL readers open what publish_to "
                                 "holds at: required for a folder; for a bucket, by default the "
                                 "objects' URL at the store's endpoint.")

    @field_validator("publish_to", "base_url")
    @classmethod
    def _known_form(cls, v: str | None) -> str | None:
        if v is None:
            return None
        url = urlparse(v)
        if url.scheme in ("http", "https") and url.hostname:
            return v.rstrip("/") + "/"  # a base: pages are named relative to it
        if url.scheme in ("s3", "s3a") and url.netloc:
            return v.rstrip("/")
        if not url.scheme:
            return v.rstrip("/") or "/"
        raise ValueError(f"{v!r} is no folder, s3://bucket/prefix or http(s) URL")

    @model_validator(mode="after")
    def _readers_can_open_it(self) -> Report:
        kind = self.publish_kind
        if self.base_url is not None and urlparse(self.base_url).scheme not in ("http", "https"):
            raise ValueError(f"base_url must be an http(s) URL, not {self.base_url!r}")
        if self.base_url is not None and kind in (None, "url"):
            raise ValueError("base_url is where readers open a published folder or bucket: "
                             + ("set publish_to" if kind is None else
                                "publish_to is already that URL, leave base_url out"))
        if kind == "folder" and self.base_url is None:
            raise ValueError("publish_to is a folder: set base_url, the http(s) URL a web server "
                             "serves it at (a file path opens on no other machine)")
        return self

    @property
    def publish_kind(self) -> Literal["folder", "s3", "url"] | None:
        """How the reports are published; None: they are not."""
        if not self.publish_to:
            return None
        scheme = urlparse(self.publish_to).scheme
        return "url" if scheme in ("http", "https") else "s3" if scheme else "folder"


class Gx(_Strict):
    """The Great Expectations project the answers are validated in, and its Data Docs."""

    project: Path = Field(Path("gx"), description="The GX project folder (great_expectations.yml, "
                          "suites generated from `suites:`); created when missing.")
    docs_dir: Path | None = Field(None, description="Where the Data Docs site is built; "
                                  "default <reports_dir>/data-docs.")


class Fleet(_Strict):
    """The local model fleet that `replaybench demo` starts."""

    port: int = Field(8400, description="Candidates whose base_url is on this loopback port are "
                                        "pointed at the fleet the demo starts.")
    time_scale: float = Field(1.0, ge=0, description="Fraction of simulated latency to sleep.")


class RedactPattern(_Strict):
    """A site-specific kind of personal data, e.g. {name: customer_id, regex: 'CUST-\\d{6}'}."""

    name: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_]*$",
                      description="Names the placeholder (<CUSTOMER_ID_1>) and the audit row.")
    regex: str = Field(description="A Python regular expression; every match is replaced.")


class Redact(_Strict):
    """Personal data taken out of each request before it is sent to a candidate."""

    enabled: Literal["auto", "always", "never"] = Field(
        "auto", description="auto: for every candidate and judge not marked `trusted: true`; "
                            "always: for every one, trusted or not; never: for none.")
    patterns: list[RedactPattern] = Field(default_factory=list,
                                          description="Redacted as well as the built-in kinds.")

    @field_validator("patterns")
    @classmethod
    def _patterns_compile(cls, v: list[RedactPattern]) -> list[RedactPattern]:
        for p in v:
            try:
                re.compile(p.regex)
            except re.error as exc:
                raise ValueError(f"pattern {p.name!r} is not a valid regex ({exc}): {p.regex!r}") from None
        return v


class Judge(_Strict):
    """An OpenAI-compatible endpoint that scores answers for suites with a `judge:` block."""

    base_url: str = Field(description="Endpoint root, e.g. http://127.0.0.1:8400/v1.")
    model: str = Field(description="The model string sent in each judge request.")
    api_key_env: str | None = Field(None, description="Environment variable holding the key.")
    max_concurrency: int = Field(8, ge=1, le=1024, description="Judge requests in flight at once.")
    timeout_s: float = Field(60.0, gt=0, description="Per-request timeout in seconds.")
    trusted: bool = Field(False, description="Send the judge answers and requests unredacted "
                          "(with redact.enabled: auto).")

    @property
    def name(self) -> str:
        """How the judge is named in messages (Settings.api_key)."""
        return "judge"

    @property
    def is_loopback(self) -> bool:
        """True when the endpoint lives on this machine (e.g. the local model fleet)."""
        return on_this_machine(self.base_url)


class Runner(_Strict):
    """Where the replay's requests are sent from: this process, or the workers of a Dask cluster.
    Either way the answers land in Parquet shards and one short step loads them."""

    kind: Literal["local", "dask"] = Field("local", description="local: every candidate from this "
                                           "process; dask: chunks of requests on Dask workers.")
    address: str | None = Field(None, description="A running Dask scheduler (tcp://host:8786); "
                                "without it a local cluster of `workers` processes is started.")
    workers: int = Field(2, ge=1, le=256, description="Worker processes of the local cluster.")
    chunk_size: int = Field(500, ge=1, description="Requests per Dask task (a candidate's requests "
                            "are split so that several workers share a big candidate).")


class Settings(_Strict):
    """The whole configuration; paths are resolved against the config file's folder."""

    timezone: str = "UTC"
    warehouse: Path = Path("data/warehouse.duckdb")
    reports_dir: Path = Path("reports")
    logs: list[Path] = Field(default_factory=list, description="Older configs: files to read, "
                             "the same as `sources: [{path: FILE}]` for each.")
    sources: list[Source] = Field(default_factory=list)
    freshness: Freshness = Freshness()
    sample: Sample = Sample()
    decide: Decide = Decide()
    ingest: Ingest = Ingest()
    baseline: str = "production"
    candidates: list[Candidate] = Field(default_factory=list)
    suites: Path = Path("data/suites")
    prices: Path = Path("data/prices.yaml")
    email: Email | None = None
    report: Report = Report()
    gx: Gx = Gx()
    fleet: Fleet = Fleet()
    redact: Redact = Redact()
    runner: Runner = Runner()
    judge: Judge | None = Field(None, description="Scores answers for suites with a judge block; "
                                                 "without it those blocks are skipped.")
    source: Path | None = Field(None, exclude=True, description="The file this was loaded from.")

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown timezone {v!r} (use an IANA name like Europe/Berlin)") from None
        return v

    @field_validator("candidates")
    @classmethod
    def _unique_names(cls, v: list[Candidate]) -> list[Candidate]:
        names = [c.name for c in v]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"candidate names must be unique; repeated: {', '.join(dupes)}")
        return v

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def noise_floor(self) -> frozenset[str]:
        """Names of the candidates that replay production itself (no candidates to move to)."""
        return frozenset(c.name for c in self.candidates if c.replays_production)

    def candidate(self, name: str) -> Candidate:
        for c in self.candidates:
            if c.name == name:
                return c
        raise ConfigError(f"no candidate named {name!r} in {self.source or DEFAULT_CONFIG}")

    def api_key(self, candidate: Candidate) -> str | None:
        """The candidate's API key from the environment, or None if it needs none."""
        if not candidate.api_key_env:
            return None
        key = os.environ.get(candidate.api_key_env)
        if not key:
            raise ConfigError(
                f"No {candidate.api_key_env} in the environment: set it, "
                f"or remove {candidate.name} from candidates"
            )
        register_secret(key)
        return key

    def needs_redaction(self, endpoint: Candidate | Judge) -> bool:
        """Whether requests to this candidate (or the judge) are redacted before they are sent:
        by default every endpoint is, wherever it is, unless the config marks it trusted."""
        if self.redact.enabled == "auto":
            return not endpoint.trusted
        return self.redact.enabled == "always"

    def default_date(self) -> date:
        """Today in the configured timezone: `run` without --date covers the day before it."""
        return datetime.now(self.tz).date()

    def window(self, run_date: date) -> tuple[datetime, datetime]:
        """The UTC bounds of the days before `run_date` (local midnight to local midnight)."""
        end = datetime.combine(run_date, datetime.min.time(), self.tz)
        start = end - timedelta(days=self.sample.window_days)
        utc = ZoneInfo("UTC")
        return start.astimezone(utc), end.astimezone(utc)

    def config_hash(self) -> str:
        """A short hash of everything that can change a run's result."""
        blob = self.model_dump_json(exclude={"email", "source", "fleet", "sources", "freshness",
                                             "report"})
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    def with_fleet(self, fleet_url: str) -> Settings:
        """Point every candidate served by the local fleet's port at a fleet running elsewhere."""
        def on_fleet(c: Candidate) -> bool:
            return c.is_loopback and urlparse(c.base_url).port == self.fleet.port

        moved = [c.model_copy(update={"base_url": fleet_url}) if on_fleet(c) else c
                 for c in self.candidates]
        return self.model_copy(update={"candidates": moved})


def load_settings(path: str | Path = DEFAULT_CONFIG) -> Settings:
    """Read and validate a config file; any problem is a ConfigError naming the key."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} not found (pass --config PATH)")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}".splitlines()[0]) from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path} must hold a mapping of settings")
    try:
        settings = Settings.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{path}: {_describe(exc)}") from None
    return _resolve_paths(settings, path)


def as_settings(config: str | Path | Settings | dict) -> Settings:
    """Settings handed down as they are (or as a flow run's parameters serialised them); a path
    is read with `load_settings`."""
    if isinstance(config, Settings):
        return config
    if isinstance(config, dict):  # serialised from Settings: its paths are resolved already
        return Settings.model_validate(config)
    return load_settings(config)


# What a flow's `config` parameter takes: a config file's path (what a deployment passes), or the
# settings a caller in the same process already parsed, so that a run parses its config once. The
# JSON schema (the deployment's parameter form) offers the path alone.
ConfigParam = Annotated[str | Settings, WithJsonSchema(
    {"type": "string", "title": "config", "description": "The configuration file."})]


def _resolve_paths(s: Settings, path: Path) -> Settings:
    root = path.resolve().parent

    def rel(p: Path) -> Path:
        return p if p.is_absolute() else root / p

    return s.model_copy(
        update={
            "warehouse": rel(s.warehouse),
            "reports_dir": rel(s.reports_dir),
            "report": s.report.model_copy(update={"publish_to": str(rel(Path(s.report.publish_to)))})
            if s.report.publish_kind == "folder" else s.report,
            "logs": [],
            "sources": [_resolve_source(src, root) for src in
                        [*s.sources, *(Source(path=str(p)) for p in s.logs)]],
            "gx": s.gx.model_copy(update={"project": rel(s.gx.project),
                                          "docs_dir": rel(s.gx.docs_dir) if s.gx.docs_dir else None}),
            "suites": rel(s.suites),
            "prices": rel(s.prices),
            "source": path.resolve(),
        }
    )


def _resolve_source(source: Source, root: Path) -> Source:
    """A local path relative to the config file's folder; URLs (scheme://) as they are."""
    if source.path is None or "://" in source.path or Path(source.path).is_absolute():
        return source
    return source.model_copy(update={"path": str(root / source.path)})


def _describe(exc: ValidationError) -> str:
    """One line per problem, naming the key, with a suggestion for misspelled keys."""
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        if err["type"] == "extra_forbidden":
            key = str(err["loc"][-1])
            model = _model_at(err["loc"][:-1])
            known = list(model.model_fields) if model else []
            known += [f.alias for f in (model.model_fields.values() if model else []) if f.alias]
            hint = difflib.get_close_matches(key, known, n=1)
            lines.append(f"unknown key {loc!r}" + (f" (did you mean {hint[0]!r}?)" if hint else ""))
        else:
            lines.append(f"{loc}: {err['msg']}")
    return "; ".join(lines)


def _model_at(loc: tuple) -> type[BaseModel] | None:
    model: type[BaseModel] = Settings
    for part in loc:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(str(part))
        if field is None:
            return None
        ann = field.annotation
        inner = getattr(ann, "__args__", None)
        candidates = [ann, *(inner or ())]
        nxt = next((a for a in candidates if isinstance(a, type) and issubclass(a, BaseModel)), None)
        if nxt is None:
            return None
        model = nxt
    return model


# --- the process environment -------------------------------------------------------------

def state_home() -> Path:
    """Where replaybench keeps local state (Prefect's database); REPLAYBENCH_HOME relocates it."""
    return Path(os.environ.get("REPLAYBENCH_HOME", ".replaybench")).resolve()


def warehouse_wait_s() -> float:
    """How long a process waits for another's turn at the warehouse file, in seconds:
    REPLAYBENCH_WAREHOUSE_WAIT_S, default an hour."""
    return float(os.environ.get("REPLAYBENCH_WAREHOUSE_WAIT_S", 3600))


def prepare_environment() -> None:
    """Keep Prefect and Great Expectations local, quiet and offline, unless told otherwise."""
    home = state_home()
    defaults = {
        "PREFECT_HOME": str(home / "prefect"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_LOGGING_LEVEL": "CRITICAL",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
        "PREFECT_LOGGING_LEVEL": "WARNING",
        # ... except the flow's own account of itself: a line per phase, on the console and
        # in the Prefect UI (task runs' chatter stays at WARNING)
        "PREFECT_LOGGING_LOGGERS_PREFECT_FLOW_RUNS_LEVEL": "INFO",
        "GX_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
    }
    for key, value in defaults.items():
        os.environ.setdefault(key, value)
    # Prefect creates its home without parents, and then cannot open its database
    Path(os.environ["PREFECT_HOME"]).mkdir(parents=True, exist_ok=True)


def git_revision(root: Path | None = None) -> str | None:
    """The checkout's short git revision, for run metadata; None outside a checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True,
            timeout=5,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None
