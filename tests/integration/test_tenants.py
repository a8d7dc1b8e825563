"""Tenants against a real Redis: API keys stored hashed, revocation, and quotas charged atomically (and
refunded without leaving counters behind)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis

from shared.settings import RedisSettings
from shared.tenants import QuotaExceeded, QuotaLimits, Tenants, active_jobs_key

pytestmark = pytest.mark.integration


@pytest.fixture
def tenants(redis_settings: RedisSettings) -> Iterator[Tenants]:
    store = Tenants(redis_settings, QuotaLimits(concurrent_jobs=3, submits_per_minute=5, bytes_per_day=1000))
    yield store
    store.close()


def _tenant() -> str:
    return f"t-{uuid.uuid4().hex[:8]}"


def test_a_key_authenticates_its_tenant_and_only_its_hash_is_stored(tenants, redis_settings):
    tenant = _tenant()
    key, token = tenants.create_key(tenant, "ci")
    assert tenants.authenticate(token) == tenant
    raw = redis.Redis.from_url(redis_settings.url)
    stored = b"".join(v for v in raw.hgetall(f"orate:apikey:{key.key_id}").values())
    assert token.rsplit("_", 1)[-1].encode() not in stored and token.split("_", 2)[2].encode() not in stored
    raw.close()
    # A wrong secret for a real key id, garbage, and another key's secret all fail.
    assert tenants.authenticate(token[:-1] + ("A" if token[-1] != "A" else "B")) is None
    assert tenants.authenticate("not-a-key") is None
    _, other = tenants.create_key(tenant)
    assert tenants.authenticate(f"ork_{key.key_id}_{other.split('_', 2)[2]}") is None


def test_revoked_keys_stop_working_and_are_listed_as_revoked(tenants):
    tenant = _tenant()
    key, token = tenants.create_key(tenant, "old")
    _, kept = tenants.create_key(tenant, "new")
    assert tenants.revoke_key(key.key_id)
    assert tenants.authenticate(token) is None
    assert tenants.authenticate(kept) == tenant
    listed = {k.label: k for k in tenants.list_keys(tenant)}
    assert listed["old"].revoked_unix_ms > 0 and listed["new"].revoked_unix_ms == 0
    assert not tenants.revoke_key("0" * 16)


def test_concurrent_jobs_quota_frees_up_when_a_job_leaves_the_active_set(tenants, redis_settings):
    tenant = _tenant()
    for i in range(3):
        tenants.admit(tenant, f"job-{i}", 0, now=1000.0)
    with pytest.raises(QuotaExceeded) as exceeded:
        tenants.admit(tenant, "job-3", 0, now=1000.0)
    assert exceeded.value.quota == "concurrent_jobs" and exceeded.value.retry_after_s >= 1
    raw = redis.Redis.from_url(redis_settings.url)
    raw.srem(active_jobs_key(tenant), "job-0")  # what the engine does when job-0 ends
    raw.close()
    tenants.admit(tenant, "job-3", 0, now=1001.0)


def test_submits_per_minute_are_counted_atomically_under_concurrency(tenants):
    tenant = _tenant()
    tenants.set_limits(tenant, concurrent_jobs=100)

    def submit(i: int) -> bool:
        try:
            tenants.admit(tenant, f"job-{i}", 0, now=120.5)
            return True
        except QuotaExceeded as exc:
            assert exc.quota == "submits_per_minute" and 1 <= exc.retry_after_s <= 60
            return False

    with ThreadPoolExecutor(8) as pool:
        admitted = list(pool.map(submit, range(20)))
    assert sum(admitted) == 5
    tenants.admit(tenant, "next-minute", 0, now=180.0)


def test_bytes_per_day_and_release(tenants):
    tenant = _tenant()
    tenants.admit(tenant, "a", 600, now=5.0)
    with pytest.raises(QuotaExceeded) as exceeded:
        tenants.admit(tenant, "b", 600, now=6.0)
    assert exceeded.value.quota == "bytes_per_day"
    tenants.release(tenant, "a", 600, now=5.0)
    tenants.admit(tenant, "b", 600, now=7.0)


def test_limits_per_tenant_override_the_defaults_and_are_validated(tenants):
    tenant = _tenant()
    assert tenants.limits(tenant).submits_per_minute == 5
    assert tenants.set_limits(tenant, submits_per_minute=50).submits_per_minute == 50
    assert tenants.limits(tenant).concurrent_jobs == 3
    with pytest.raises(ValueError):
        tenants.set_limits(tenant, bytes_per_day=0)
    with pytest.raises(ValueError):
        tenants.create_key("Bad Tenant!")


def test_a_release_after_its_window_ended_leaves_no_counter_behind(tenants, redis_settings):
    tenant = _tenant()
    tenants.admit(tenant, "a", 100, now=30.0)
    windows = [f"orate:tenant:{tenant}:submits:0", f"orate:tenant:{tenant}:bytes:0"]
    raw = redis.Redis.from_url(redis_settings.url)
    assert raw.ttl(windows[0]) == 30 and raw.ttl(windows[1]) == 86400 - 30
    raw.delete(*windows)  # what expiry does when the window ends
    tenants.release(tenant, "a", 100, now=30.0)
    # A DECR of the gone counters would have made ones at -1 and -100, without a TTL, for ever.
    assert raw.exists(*windows) == 0 and raw.scard(active_jobs_key(tenant)) == 0
    raw.close()
