"""Service settings, read from the environment once and passed in explicitly."""

from __future__ import annotations

import os
from collections.abc import Mapping
from urllib.parse import urlsplit

import msgspec

MiB = 1024 * 1024
GiB = 1024 * MiB


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """Every tunable of vasset; each field maps to VASSET_<FIELD upper-case>."""

    database_url: str = "mysql+asyncmy://root@127.0.0.1:3306/vasset"
    # Connections kept per process; beyond it up to db_pool_overflow more are opened and closed
    # per use, which costs a handshake each: size the pool for the expected concurrency.
    db_pool_size: int = 32
    db_pool_overflow: int = 32
    redis_url: str = "redis://127.0.0.1:6379/0"
    # Prefix of every Redis key, so several deployments (or test runs) can share one Redis.
    redis_prefix: str = "vasset:"
    # Redis connections per process; a request waits up to redis_pool_timeout seconds for a free
    # one (then 503) instead of failing at once when a burst needs more.
    redis_pool_size: int = 64
    redis_pool_timeout: float = 5.0
    # How Redis is reached: standalone (redis_url), cluster (redis_url names any seed node) or
    # sentinel (the master named redis_sentinel_master, found through redis_sentinels).
    redis_mode: str = "standalone"
    redis_sentinels: str = ""  # host:port,host:port,...
    redis_sentinel_master: str = "mymaster"
    storage_url: str = "file://./var/storage"
    # Scratch space for workers (downloads, FFmpeg outputs before publishing).
    temp_dir: str = "./var/tmp"

    # Seconds `vasset serve` gives in-flight requests after SIGTERM before closing connections.
    shutdown_grace: float = 5.0

    # Public base URL of the API, used to build URLs the API serves itself (local-disk playback).
    public_url: str = "http://127.0.0.1:8000"

    # Upload limits (reported by GET /video/upload/limits).
    max_file_size: int = 50 * GiB
    min_part_size: int = 100 * 1024
    max_part_size: int = 5 * GiB
    max_part_count: int = 10_000
    upload_ttl: int = 24 * 3600
    # Seconds after which another request may take over a completion whose claimer stopped
    # renewing it (the claimer renews every third of it while it runs: a crash costs this long).
    completion_lease: int = 30

    # Standard resumable uploads (tus 1.0, the IETF draft): where they are served, how long a
    # ticket lives by default and at most, the largest Upload-Metadata, the largest storage
    # part a PATCH body is cut into, and how long a dead request keeps an upload locked.
    tus_path: str = "/files/"
    ticket_ttl: int = 3600
    ticket_max_ttl: int = 24 * 3600
    tus_metadata_max: int = 4096
    tus_part_size: int = 64 * MiB
    tus_lock_ttl: float = 10.0

    # Signing.
    signature_window: int = 300
    nonce_ttl: int = 900
    # Signed calls per second per app_key across all API instances (0: unlimited).
    rate_limit: int = 0
    # Seconds an API process may reuse an app row. Enabling or disabling an app is announced
    # through Redis and takes effect at once; this bounds the delay if Redis missed it.
    app_cache_ttl: float = 5.0

    # Playback URLs.
    url_expires_default: int = 3600
    url_expires_max: int = 7 * 24 * 3600
    # Seconds a playurl answer's database rows may be reused by the same API process.
    playurl_cache_ttl: float = 1.0
    max_concurrent_streams: int = 50
    # File streams across all API instances (0: no global cap, only the per-instance one).
    max_concurrent_streams_global: int = 0
    # Bytes per second per app for local-disk streaming, across instances (0: unlimited).
    stream_rate_per_app: int = 0
    # Thumbnails made on demand by the API process: FFmpeg runs at once per process (beyond it
    # 503 ThumbnailUnavailable) and the seconds one may take.
    thumbnail_concurrency: int = 2
    thumbnail_timeout: float = 20.0
    # Captions (PUT /video/captions): the largest body accepted and the most cues a file may have.
    captions_max_bytes: int = 1 * MiB
    captions_max_cues: int = 20_000
    cdn_domain: str = ""
    cdn_auth_key: str = ""

    # Image assets (PUT /video/assets): the largest body and the largest side, in pixels.
    asset_max_size: int = 2 * MiB
    asset_max_dimension: int = 4096
    # The font text overlays are drawn with (CJK-capable; Debian's fonts-noto-cjk installs it).
    font_file: str = "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"

    # OSS (used when storage_url is oss://).
    oss_endpoint: str = ""
    oss_bucket: str = ""
    oss_access_key_id: str = ""
    oss_access_key_secret: str = ""
    oss_security_token: str = ""
    oss_region: str = ""
    oss_signature_version: str = "v1"
    oss_pool_size: int = 16
    oss_direct_url_ttl: int = 3600
    oss_post_max_size: int = 100 * MiB

    # Transcoding.
    ffmpeg_global_limit: int = 2
    ffmpeg_node_limit: int = 0  # 0: derived from cores and free memory
    ffmpeg_memory_limit: int = 2 * GiB
    ffmpeg_stall_timeout: float = 60.0
    ffmpeg_timeout_factor: float = 10.0
    ffmpeg_timeout_min: float = 120.0
    ffmpeg_threads: int = 0
    image_count: int = 10
    ladder: str = "360p,480p,720p,1080p"
    hls: bool = True
    # HLS published while FFmpeg writes it (playable in seconds); off: only once the ladder is done.
    hls_progressive: bool = True
    # Storyboards (sprite sheets + WebVTT) from the ladder's decode; a job's options override it.
    storyboard: bool = True
    # -readrate on the ladder input (1.0 = real time; 0 = off): tests and benches slow FFmpeg down.
    ffmpeg_readrate: float = 0.0
    job_lease: float = 30.0
    job_heartbeat: float = 5.0
    # An attempt that shows no sign of moving (progress, a step, an upload) for this long is
    # stopped, and if it does not stop, its leases lapse so the reaper hands the job on.
    job_stall_timeout: float = 3600.0
    job_max_attempts: int = 4
    job_backoff_base: float = 5.0
    worker_poll_interval: float = 1.0
    worker_shutdown_grace: float = 30.0
    import_allow_hosts: str = ""
    import_max_size: int = 10 * GiB
    import_timeout: float = 3600.0

    # Events: webhooks (SSRF allow-list of hosts that may resolve to private addresses, request
    # timeout, concurrent deliveries per worker, a factor on the retry schedule that tests set
    # near 0, days of failures without a success before an endpoint is disabled, how long a
    # rotated secret keeps signing), outbox retention, and the SSE heartbeat and poll interval.
    webhook_allow_hosts: str = ""
    webhook_timeout: float = 15.0
    webhook_concurrency: int = 8
    webhook_retry_scale: float = 1.0
    webhook_disable_after_days: float = 5.0
    webhook_rotation_overlap: int = 24 * 3600
    event_retention_days: float = 30.0
    sse_heartbeat: float = 15.0
    sse_poll_interval: float = 2.0

    # Janitor.
    janitor_interval: float = 300.0
    temp_max_age: float = 24 * 3600.0

    # Console page (empty: console disabled).
    console_key: str = ""
    console_app_key: str = ""

    # Bearer token GET /metrics asks for (empty: /metrics is open; firewall it instead).
    metrics_token: str = ""
    # /ready answers 503 when local storage has less than this share of its disk free (percent).
    ready_min_free_percent: float = 5.0

    # OpenTelemetry tracing: an OTLP/HTTP endpoint turns it on (empty: off, nothing imported).
    otel_endpoint: str = ""
    otel_service_name: str = "vasset"

    log_level: str = "info"
    log_json: bool = True

    @property
    def storage_is_oss(self) -> bool:
        """Whether objects live in OSS rather than on local disk."""
        return self.storage_url.startswith("oss://")

    @property
    def oss_bucket_name(self) -> str:
        """The bucket objects live in: VASSET_OSS_BUCKET, else the storage URL's ('' off OSS)."""
        if not self.storage_is_oss:
            return ""
        return self.oss_bucket or urlsplit(self.storage_url).netloc


class SettingsError(ValueError):
    """A VASSET_* variable holds a value vasset cannot use; the message names it."""


_KINDS = {"int": "an integer", "float": "a number", "bool": "true or false (1 or 0)"}
_LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
#: Fields that must be above zero (sizes, counts, intervals).
_POSITIVE = (
    "db_pool_size",
    "redis_pool_size",
    "redis_pool_timeout",
    "max_file_size",
    "min_part_size",
    "max_part_size",
    "max_part_count",
    "upload_ttl",
    "completion_lease",
    "ticket_ttl",
    "ticket_max_ttl",
    "tus_metadata_max",
    "tus_part_size",
    "tus_lock_ttl",
    "webhook_timeout",
    "webhook_concurrency",
    "webhook_retry_scale",
    "webhook_disable_after_days",
    "webhook_rotation_overlap",
    "event_retention_days",
    "sse_heartbeat",
    "sse_poll_interval",
    "signature_window",
    "nonce_ttl",
    "url_expires_default",
    "url_expires_max",
    "max_concurrent_streams",
    "thumbnail_concurrency",
    "thumbnail_timeout",
    "captions_max_bytes",
    "captions_max_cues",
    "oss_pool_size",
    "asset_max_size",
    "asset_max_dimension",
    "ffmpeg_global_limit",
    "job_lease",
    "job_heartbeat",
    "job_stall_timeout",
    "job_max_attempts",
    "worker_poll_interval",
    "janitor_interval",
)
#: Fields that must not be negative (0 means "off" or "derive it").
_NOT_NEGATIVE = (
    "db_pool_overflow",
    "shutdown_grace",
    "rate_limit",
    "max_concurrent_streams_global",
    "stream_rate_per_app",
    "ready_min_free_percent",
    "app_cache_ttl",
    "playurl_cache_ttl",
    "ffmpeg_node_limit",
    "ffmpeg_threads",
    "image_count",
    "job_backoff_base",
    "worker_shutdown_grace",
    "ffmpeg_readrate",
)


def _env_name(field: str) -> str:
    return "VASSET_" + field.upper()


def check_settings(s: Settings) -> None:
    """Refuse values that would only fail later, deep inside a request or a job."""
    from vasset.transcode.ladder import parse_ladder

    for name in _POSITIVE:
        if getattr(s, name) <= 0:
            raise SettingsError(f"{_env_name(name)} must be greater than 0")
    for name in _NOT_NEGATIVE:
        if getattr(s, name) < 0:
            raise SettingsError(f"{_env_name(name)} must not be negative")
    if not s.storage_url.startswith(("file://", "oss://")) or s.storage_url in (
        "file://",
        "oss://",
    ):
        raise SettingsError("VASSET_STORAGE_URL must be file://PATH or oss://BUCKET[/prefix]")
    if not (s.tus_path.startswith("/") and s.tus_path.endswith("/")) or len(s.tus_path) < 3:
        raise SettingsError("VASSET_TUS_PATH must be a path like /files/")
    if s.ticket_ttl > s.ticket_max_ttl:
        raise SettingsError("VASSET_TICKET_TTL must not exceed VASSET_TICKET_MAX_TTL")
    if s.min_part_size > s.max_part_size:
        raise SettingsError("VASSET_MIN_PART_SIZE must not exceed VASSET_MAX_PART_SIZE")
    if s.url_expires_default > s.url_expires_max:
        raise SettingsError("VASSET_URL_EXPIRES_DEFAULT must not exceed VASSET_URL_EXPIRES_MAX")
    if s.redis_mode not in ("standalone", "cluster", "sentinel"):
        raise SettingsError("VASSET_REDIS_MODE must be standalone, cluster or sentinel")
    if s.redis_mode == "sentinel" and not s.redis_sentinels:
        raise SettingsError("VASSET_REDIS_MODE=sentinel needs VASSET_REDIS_SENTINELS=host:port,...")
    if s.oss_signature_version not in ("v1", "v4"):
        raise SettingsError("VASSET_OSS_SIGNATURE_VERSION must be v1 or v4")
    if s.log_level.lower() not in _LOG_LEVELS:
        raise SettingsError(f"VASSET_LOG_LEVEL must be one of {', '.join(_LOG_LEVELS)}")
    try:
        if not parse_ladder(s.ladder):
            raise ValueError("it names no rendition")
    except ValueError as exc:
        raise SettingsError(f"VASSET_LADDER is not a ladder: {exc}") from None


def load_settings(environ: Mapping[str, str] | None = None, **overrides: object) -> Settings:
    """Build and check Settings from VASSET_* variables, then explicit overrides.

    Raises SettingsError with one line naming the variable and what it accepts.
    """
    env = os.environ if environ is None else environ
    values: dict[str, object] = {}
    for field in msgspec.structs.fields(Settings):
        raw = env.get(_env_name(field.name))
        if raw is not None:
            values[field.name] = raw
    values.update(overrides)
    try:
        settings = msgspec.convert(values, Settings, strict=False)
    except msgspec.ValidationError as exc:
        text = str(exc)
        where = text.rsplit("at `$.", 1)
        if len(where) == 2:
            name = where[1].rstrip("`")
            got = values.get(name)
            kind = text.split(" - at ")[0].split(",")[0].replace("`", "").removeprefix("Expected ")
            wanted = _KINDS.get(kind, kind)
            raise SettingsError(f"{_env_name(name)}={got!r}: expected {wanted}") from None
        raise SettingsError(text) from None
    check_settings(settings)
    return settings
