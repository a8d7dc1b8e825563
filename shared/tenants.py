"""Tenants in Redis: API keys (stored hashed) and per-tenant quotas.

A key reads `ork_<key id>_<secret>`; Redis keeps the tenant, a label and the SHA-256 of the secret under
`orate:apikey:<key id>` (the secret is 32 random bytes, so a plain hash is as strong as a slow one and a
lookup costs one round trip). The whole key is shown once, when it is created.

Quotas: concurrent jobs (the tenant's set of unfinished job ids, left by the engine when a job ends),
submits per minute and uploaded bytes per day (fixed windows), checked and charged in one Lua script so
that concurrent submits cannot overshoot. Limits are the settings' defaults unless a tenant has its own.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass

import redis
from pydantic import BaseModel, Field

from shared.settings import RedisSettings

_PREFIX = "orate"
KEY_PREFIX = "ork"
TENANT_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
# The tenant of requests without a key when the API runs in its open development mode.
DEV_TENANT = "dev"
_TOKEN = re.compile(rf"^{KEY_PREFIX}_([0-9a-f]{{16}})_([A-Za-z0-9_-]{{43}})$")
_LIMIT_FIELDS = ("concurrent_jobs", "submits_per_minute", "bytes_per_day")

# Reads the tenant's limits (its own, else the defaults in ARGV), checks every quota, then charges them all,
# or none: one round trip. Returns {0, 0, 0} or {quota index (1-3), retry-after s, the limit}.
_ADMIT_SCRIPT = """
local active, minute, day, limits = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local job, size = ARGV[1], tonumber(ARGV[2])
local max_jobs = tonumber(redis.call('HGET', limits, 'concurrent_jobs') or ARGV[3])
local max_submits = tonumber(redis.call('HGET', limits, 'submits_per_minute') or ARGV[4])
local max_bytes = tonumber(redis.call('HGET', limits, 'bytes_per_day') or ARGV[5])
if redis.call('SCARD', active) >= max_jobs then return {1, 1, max_jobs} end
local submits = tonumber(redis.call('GET', minute) or '0')
if submits >= max_submits then return {2, math.max(redis.call('TTL', minute), 1), max_submits} end
local used = tonumber(redis.call('GET', day) or '0')
if size > 0 and used + size > max_bytes then return {3, math.max(redis.call('TTL', day), 1), max_bytes} end
redis.call('SADD', active, job)
redis.call('INCR', minute)
redis.call('EXPIRE', minute, tonumber(ARGV[6]))
redis.call('INCRBY', day, size)
redis.call('EXPIRE', day, tonumber(ARGV[7]))
return {0, 0, 0}
"""
# Undoes an admit. A window that has ended since is left alone: decrementing its expired counter would
# create a negative one that never expires.
_RELEASE_SCRIPT = """
redis.call('SREM', KEYS[1], ARGV[1])
if redis.call('EXISTS', KEYS[2]) == 1 then redis.call('DECR', KEYS[2]) end
if redis.call('EXISTS', KEYS[3]) == 1 then redis.call('DECRBY', KEYS[3], ARGV[2]) end
"""
_QUOTA_NAMES = {1: "concurrent_jobs", 2: "submits_per_minute", 3: "bytes_per_day"}


class QuotaLimits(BaseModel):
    concurrent_jobs: int = Field(100, ge=1, description="unfinished jobs a tenant may have at once")
    submits_per_minute: int = Field(600, ge=1, description="submits a tenant may make per calendar minute")
    bytes_per_day: int = Field(10 * 1024**3, ge=1, description="bytes a tenant may upload per UTC day")


class QuotaExceeded(Exception):
    def __init__(self, tenant: str, quota: str, limit: int, retry_after_s: int) -> None:
        super().__init__(f"tenant {tenant!r} is over its {quota.replace('_', ' ')} quota ({limit})")
        self.quota = quota
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class ApiKey:
    key_id: str
    tenant: str
    label: str
    created_unix_ms: int
    revoked_unix_ms: int = 0


def _apikey_key(key_id: str) -> str:
    return f"{_PREFIX}:apikey:{key_id}"


def _apikeys_index() -> str:
    return f"{_PREFIX}:apikeys"


def _limits_key(tenant: str) -> str:
    return f"{_PREFIX}:tenant:{tenant}:limits"


def active_jobs_key(tenant: str) -> str:
    """The set of the tenant's unfinished job ids (the engine removes a job when it ends)."""
    return f"{_PREFIX}:tenant:{tenant}:active"


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def check_tenant(tenant: str) -> str:
    if not re.match(TENANT_PATTERN, tenant):
        raise ValueError(f"tenant {tenant!r} must match {TENANT_PATTERN}")
    return tenant


class Tenants:
    """API keys and quotas of every tenant, in the stack's Redis."""

    def __init__(self, settings: RedisSettings, defaults: QuotaLimits | None = None) -> None:
        self._redis = redis.Redis.from_url(settings.url, socket_connect_timeout=5.0)
        self._admit = self._redis.register_script(_ADMIT_SCRIPT)
        self._release = self._redis.register_script(_RELEASE_SCRIPT)
        self._defaults = defaults or QuotaLimits()

    # ---- keys -----------------------------------------------------------------------------------------

    def create_key(self, tenant: str, label: str = "") -> tuple[ApiKey, str]:
        """A new key for the tenant, and the whole key (shown this once; only its hash is kept)."""
        key_id, secret = secrets.token_hex(8), secrets.token_urlsafe(32)
        key = ApiKey(key_id, check_tenant(tenant), label, int(time.time() * 1000))
        pipe = self._redis.pipeline(transaction=True)
        pipe.hset(
            _apikey_key(key_id),
            mapping={
                "tenant": key.tenant,
                "label": label,
                "sha256": _digest(secret),
                "created_unix_ms": key.created_unix_ms,
                "revoked_unix_ms": 0,
            },
        )
        pipe.sadd(_apikeys_index(), key_id)
        pipe.execute()
        return key, f"{KEY_PREFIX}_{key_id}_{secret}"

    def authenticate(self, token: str) -> str | None:
        """The tenant of a valid, unrevoked key; None otherwise."""
        match = _TOKEN.match(token.strip())
        if match is None:
            return None
        key_id, secret = match.groups()
        stored = self._redis.hmget(_apikey_key(key_id), "tenant", "sha256", "revoked_unix_ms")
        tenant, digest, revoked = stored
        if tenant is None or digest is None or int(revoked or 0):
            return None
        # Constant-time: a mismatch takes as long wherever it is.
        return tenant.decode() if hmac.compare_digest(digest.decode(), _digest(secret)) else None

    def list_keys(self, tenant: str | None = None) -> list[ApiKey]:
        key_ids = sorted(member.decode() for member in self._redis.smembers(_apikeys_index()))
        pipe = self._redis.pipeline(transaction=False)
        for key_id in key_ids:
            pipe.hmget(_apikey_key(key_id), "tenant", "label", "created_unix_ms", "revoked_unix_ms")
        keys = []
        for key_id, (owner, label, created, revoked) in zip(key_ids, pipe.execute(), strict=True):
            if owner is None or (tenant is not None and owner.decode() != tenant):
                continue
            keys.append(ApiKey(key_id, owner.decode(), label.decode(), int(created), int(revoked)))
        return sorted(keys, key=lambda key: (key.tenant, key.created_unix_ms))

    def revoke_key(self, key_id: str) -> bool:
        """Revoke a key (kept, marked, for the audit trail); False if there is no such key."""
        if not self._redis.exists(_apikey_key(key_id)):
            return False
        self._redis.hset(_apikey_key(key_id), "revoked_unix_ms", int(time.time() * 1000))
        return True

    # ---- quotas ---------------------------------------------------------------------------------------

    def own_limits(self, tenant: str) -> dict[str, int]:
        """The limits set for the tenant itself (set_limits); the defaults apply to the others."""
        own = {k.decode(): int(v) for k, v in self._redis.hgetall(_limits_key(tenant)).items()}
        return {k: v for k, v in own.items() if k in _LIMIT_FIELDS}

    def limits(self, tenant: str) -> QuotaLimits:
        return self._defaults.model_copy(update=self.own_limits(tenant))

    def set_limits(self, tenant: str, **limits: int) -> QuotaLimits:
        """Give the tenant its own limits (the others stay as they are)."""
        QuotaLimits(**{**self.limits(check_tenant(tenant)).model_dump(), **limits})  # validates
        if limits:
            self._redis.hset(_limits_key(tenant), mapping=limits)
        return self.limits(tenant)

    def admit(self, tenant: str, job_id: str, upload_bytes: int, now: float | None = None) -> None:
        """Charge a submit to the tenant's quotas, or raise QuotaExceeded with when to retry."""
        now = time.time() if now is None else now
        minute, day = int(now // 60), int(now // 86400)
        code, retry_after, limit = self._admit(
            keys=[active_jobs_key(tenant), *self._window_keys(tenant, minute, day), _limits_key(tenant)],
            args=[
                job_id,
                upload_bytes,
                self._defaults.concurrent_jobs,
                self._defaults.submits_per_minute,
                self._defaults.bytes_per_day,
                60 - int(now % 60),
                86400 - int(now % 86400),
            ],
        )
        if code:
            raise QuotaExceeded(tenant, _QUOTA_NAMES[int(code)], int(limit), int(retry_after))

    def release(self, tenant: str, job_id: str, upload_bytes: int, now: float) -> None:
        """Undo admit() for a submit that was not accepted after all (now: the admit's time)."""
        self._release(
            keys=[active_jobs_key(tenant), *self._window_keys(tenant, int(now // 60), int(now // 86400))],
            args=[job_id, upload_bytes],
        )

    @staticmethod
    def _window_keys(tenant: str, minute: int, day: int) -> tuple[str, str]:
        return f"{_PREFIX}:tenant:{tenant}:submits:{minute}", f"{_PREFIX}:tenant:{tenant}:bytes:{day}"

    def close(self) -> None:
        self._redis.close()
