"""Online state: ONE suite, run on both backends (in-process MemoryState and RedisState on a real
redis-server started for the session), then the velocity windows from windows.yaml on top of each, then a
property test holding the two backends and a brute-force recount to the same answers.

The Redis runs are skipped outside CI when redis-server is not installed; with CI=true a missing
redis-server fails (.ci/run must install it), exactly as tests/conftest.py does for PostgreSQL.
"""

from __future__ import annotations

import itertools
import math
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from fengkong.features.velocity import DEFAULT_WINDOWS_FILE, Observation, Velocity, load_windows
from fengkong.state.memory import MemoryState
from support.redis import RedisServer

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

T0 = 1_700_000_000.0  # 2023-11-14, a realistic epoch time (microseconds are not exact at this size)
MINUTE, HOUR, DAY = 60.0, 3600.0, 86400.0
US = 1e-6
_prefixes = itertools.count()


# ------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def redis_client(redis_server: RedisServer) -> Iterator[Any]:
    client = redis_server.client()
    yield client
    client.close()


def fresh_redis_state(client: Any, **kwargs: Any) -> Any:
    from fengkong.state.redis import RedisState

    return RedisState(client, prefix=f"t{next(_prefixes)}:{os.urandom(3).hex()}:", **kwargs)


@pytest.fixture(params=["memory", "redis"])
def state(request: pytest.FixtureRequest) -> Iterator[Any]:
    if request.param == "memory":
        yield MemoryState()
        return
    st_ = fresh_redis_state(request.getfixturevalue("redis_client"))
    yield st_
    st_.clear()


def held(state: Any) -> int:
    """Entries the backend holds (MemoryState.size(); for Redis the ZCARDs of its keys)."""
    n: int = state.size()
    return n


# ------------------------------------------------------------------------------- the OnlineState suite


def test_window_edges_are_half_open(state: Any) -> None:
    w = DAY
    state.add("apps", "d1", T0, "e1", 1.0, w)
    state.add("apps", "d1", T0 + US, "e2", 1.0, w)

    # one window after the first event: it is exactly one window old, so out; the second is 1 µs inside
    now = T0 + w
    assert state.count("apps", "d1", now - w, now) == 1
    assert state.total("apps", "d1", now - w, now) == 1.0
    assert state.distinct("apps", "d1", now - w, now) == 1
    # a microsecond earlier both are inside
    now = T0 + w - US
    assert state.count("apps", "d1", now - w, now) == 2
    # (since, until]: an event exactly at `until` is in, exactly at `since` is out
    assert state.count("apps", "d1", T0 - US, T0) == 1
    assert state.count("apps", "d1", T0, T0 + US) == 1
    assert state.count("apps", "d1", T0, T0) == 0
    assert state.count("apps", "d1", T0 - DAY, T0 - US) == 0
    assert state.count("apps", "d1", -math.inf, math.inf) == 2


def test_readding_the_same_entry_is_idempotent(state: Any) -> None:
    for _ in range(3):
        state.add("xfer", "c1", T0, "evt-1", 250.5, DAY)
    assert state.count("xfer", "c1", T0 - HOUR, T0) == 1
    assert state.total("xfer", "c1", T0 - HOUR, T0) == 250.5
    assert held(state) == 1
    # the same member at another time is another entry (a second login from one device)
    state.add("xfer", "c1", T0 + 1, "evt-1", 250.5, DAY)
    assert state.count("xfer", "c1", T0 - HOUR, T0 + 1) == 2
    assert state.distinct("xfer", "c1", T0 - HOUR, T0 + 1) == 1
    assert held(state) == 2


def test_distinct_counts_members_not_entries(state: Any) -> None:
    members = ["cust-a", "cust-b", "cust-a", "cust-c", "cust-b", "cust-a", "with\x1fseparator", "with"]
    for i, m in enumerate(members):
        state.add("dev_customers", "d1", T0 + i * MINUTE, m, float(i), 30 * DAY)  # amounts play no part
    end = T0 + (len(members) - 1) * MINUTE
    assert state.distinct("dev_customers", "d1", end - 30 * DAY, end) == 5
    assert state.count("dev_customers", "d1", end - 30 * DAY, end) == 8
    # a narrower window: only the last four entries (cust-b, cust-a, with\x1fseparator, with)
    assert state.distinct("dev_customers", "d1", T0 + 3.5 * MINUTE, end) == 4
    assert state.distinct("dev_customers", "d1", T0 + 3 * MINUTE, end) == 4  # T0+3min (cust-c) is out
    assert state.distinct("dev_customers", "d1", T0 + 3 * MINUTE - US, end) == 5
    assert state.distinct("dev_customers", "nobody", end - DAY, end) == 0


def test_sums_of_float_amounts(state: Any) -> None:
    amounts = [0.1, 0.2, 0.3, 1999.99, 0.01, 1e-9, 123456789.125]
    for i, a in enumerate(amounts):
        state.add("pay", "c1", T0 + i, f"p{i}", a, DAY)
    assert state.total("pay", "c1", T0 - 1, T0 + 10) == pytest.approx(math.fsum(amounts), rel=1e-15)
    assert state.total("pay", "c1", T0, T0 + 2) == pytest.approx(0.5, rel=1e-15)  # 0.2 + 0.3
    assert state.total("pay", "c1", T0 + 2, T0 + 5) == pytest.approx(1999.99 + 0.01 + 1e-9, rel=1e-15)
    assert state.total("pay", "c1", T0 + 100, T0 + 200) == 0.0
    assert state.total("pay", "nobody", T0 - 1, T0 + 10) == 0.0
    assert isinstance(state.total("pay", "c1", T0 - 1, T0 + 10), float)
    assert isinstance(state.count("pay", "c1", T0 - 1, T0 + 10), int)
    assert isinstance(state.distinct("pay", "c1", T0 - 1, T0 + 10), int)


def test_expiry_bounds_memory_as_time_passes(state: Any) -> None:
    horizon = HOUR
    for i in range(600):  # ten hours of one event a minute on one key
        state.add("logins", "c1", T0 + i * MINUTE, f"e{i}", 1.0, horizon)
        if i % 97 == 0 or i == 599:
            # only what the horizon can still see is kept: ts > newest - horizon, i.e. the last 60 events
            assert held(state) == min(i + 1, 60), i
    now = T0 + 599 * MINUTE
    assert state.count("logins", "c1", now - horizon, now) == 60
    assert state.count("logins", "c1", -math.inf, math.inf) == 60
    # a jump in time leaves only the newest event of the key
    state.add("logins", "c1", T0 + 30 * DAY, "late", 1.0, horizon)
    assert held(state) == 1
    state.clear()
    assert held(state) == 0
    assert state.count("logins", "c1", -math.inf, math.inf) == 0


def test_keys_and_series_are_independent(state: Any) -> None:
    pairs = [
        ("a:b", "c"), ("a", "b:c"), ("a", "b"), ("b", "a"),
        ("x", ":"), ("x", "%3A"), ("x", "*"), ("x", ""), ("x", "设备-1"), ("x", "with space/and\\slash"),
    ]  # fmt: skip
    for n, (series, key) in enumerate(pairs, start=1):
        for j in range(n):
            state.add(series, key, T0 + j, f"m{j}", float(n), DAY)
    for n, (series, key) in enumerate(pairs, start=1):
        assert state.count(series, key, T0 - 1, T0 + 100) == n, (series, key)
        assert state.total(series, key, T0 - 1, T0 + 100) == float(n * n), (series, key)
        assert state.distinct(series, key, T0 - 1, T0 + 100) == n, (series, key)
    assert state.count("a", "c", T0 - 1, T0 + 100) == 0
    # trimming one key never touches another with an older newest
    state.add("a", "b", T0 + 10 * DAY, "far", 1.0, DAY)
    assert state.count("a", "b", -math.inf, math.inf) == 1
    assert state.count("b", "a", -math.inf, math.inf) == 4
    assert state.count("a", "b:c", -math.inf, math.inf) == 2


def test_out_of_order_adds_within_the_horizon(state: Any) -> None:
    h = 100.0
    for ts, m in [(T0 + 100, "a"), (T0 + 50, "b"), (T0 + 80, "c"), (T0 + 0.5, "d"), (T0 + 99, "e")]:
        state.add("s", "k", ts, m, 1.0, h)
    assert state.count("s", "k", T0, T0 + 100) == 5
    assert state.count("s", "k", T0 + 50, T0 + 99) == 2  # c, e
    assert state.distinct("s", "k", T0 + 49, T0 + 100) == 4  # b, c, e, a
    # an event at or before newest - horizon can never be in a window that ends at or after the newest one
    state.add("s", "k", T0, "too-old", 1.0, h)
    assert state.count("s", "k", -math.inf, math.inf) == 5
    assert held(state) == 5
    # time moves on: entries fall out of the horizon as newer events arrive, whatever order they came in
    state.add("s", "k", T0 + 160, "f", 1.0, h)
    assert state.count("s", "k", -math.inf, math.inf) == 4  # c (80), e (99), a (100), f (160)
    state.add("s", "k", T0 + 150, "g", 1.0, h)  # late but inside the horizon
    assert state.count("s", "k", T0 + 60, T0 + 160) == 5


# ---------------------------------------------------------------------------------- Redis specifics


def test_first_and_last_in_a_window(state: Any) -> None:
    """The earliest and latest values in (since, until]; at one instant the smallest / largest amount."""
    h = 1000.0
    assert state.first("s", "k", 0, 100) is None and state.last("s", "k", 0, 100) is None
    for ts, member, amount in [(10, "a", 5.0), (20, "b", 9.0), (20, "c", 7.0), (30, "d", 2.0), (30, "e", 11.0)]:
        state.add("s", "k", float(ts), member, amount, h)
    assert state.first("s", "k", 0, 100) == 5.0
    assert state.last("s", "k", 0, 100) == 11.0  # two entries at 30: the larger
    assert state.first("s", "k", 10, 100) == 7.0  # 10 is outside (10, 100]; two entries at 20: the smaller
    assert state.last("s", "k", 0, 29.999) == 9.0
    assert state.first("s", "k", 30, 100) is None  # (30, 100] is empty
    assert state.last("s", "other", 0, 100) is None


def test_velocity_bureau_growth_windows(velocity: Velocity) -> None:
    day = 86_400.0
    obs = [
        Observation("bureau_update", 0.0, "b1", {"customer": "c"}, 0.0, {"inquiries_30d": 2, "total_debt": 1000.0}),
        Observation(
            "bureau_update", 40 * day, "b2", {"customer": "c"}, 0.0, {"inquiries_30d": 6, "total_debt": 5000.0}
        ),
        Observation(
            "bureau_update", 80 * day, "b3", {"customer": "c"}, 0.0, {"inquiries_30d": 11, "total_debt": 7500.0}
        ),
    ]
    for o in obs:
        velocity.observe(o)
    f = velocity.features({"customer": "c"}, 80 * day)
    assert f["bureau_latest_inquiries_30d"] == 11.0
    assert f["bureau_inquiries_30d_growth_90d"] == 9.0
    assert f["bureau_total_debt_growth_90d"] == 6500.0
    later = velocity.features({"customer": "c"}, 95 * day)  # b1 has left the 90-day window
    assert later["bureau_inquiries_30d_growth_90d"] == 5.0
    assert velocity.features({"customer": "nobody"}, 95 * day)["bureau_latest_inquiries_30d"] is None


def test_redis_layout_one_sorted_set_per_series_and_key(redis_client: Any) -> None:
    state = fresh_redis_state(redis_client)
    other = fresh_redis_state(redis_client)
    try:
        other.add("s", "k", T0, "m", 1.0, DAY)
        for i in range(5):
            state.add("s", "k", T0 + i, f"m{i}", 1.0, DAY)
            state.add("s", "k2", T0 + i, f"m{i}", 1.0, DAY)
        names = sorted(n.decode() for n in redis_client.scan_iter(match=state.prefix + "*"))
        assert names == [state.redis_key("s", "k"), state.redis_key("s", "k2")]
        assert redis_client.zcard(state.redis_key("s", "k")) == 5
        assert redis_client.type(state.redis_key("s", "k")) == b"zset"
        assert state.size() == 10
        state.clear()  # only its own prefix
        assert list(redis_client.scan_iter(match=state.prefix + "*")) == []
        assert other.count("s", "k", -math.inf, math.inf) == 1
    finally:
        other.clear()


def test_redis_idle_keys_expire(redis_client: Any) -> None:
    state = fresh_redis_state(redis_client, ttl_margin=60)
    forever = fresh_redis_state(redis_client, ttl_margin=None)
    quick = fresh_redis_state(redis_client, ttl_margin=0)
    try:
        state.add("s", "k", time.time(), "m", 1.0, HOUR)
        assert HOUR + 55 <= redis_client.ttl(state.redis_key("s", "k")) <= HOUR + 60
        # events dated in the future keep their key until their window has passed
        state.add("s", "future", time.time() + DAY, "m", 1.0, HOUR)
        assert DAY + HOUR + 50 <= redis_client.ttl(state.redis_key("s", "future")) <= DAY + HOUR + 61
        forever.add("s", "k", T0, "m", 1.0, HOUR)
        assert redis_client.ttl(forever.redis_key("s", "k")) == -1
        quick.add("s", "k", time.time(), "m", 1.0, 0.5)  # lives ceil(0.5 + 0) = 1 s
        deadline = time.monotonic() + 5
        while redis_client.exists(quick.redis_key("s", "k")) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not redis_client.exists(quick.redis_key("s", "k"))
    finally:
        state.clear()
        forever.clear()


def test_redis_replicas_share_counters_and_never_double_count(redis_server: RedisServer) -> None:
    from fengkong.state.redis import RedisState

    prefix = f"replicas{os.urandom(3).hex()}:"
    a, b = RedisState(redis_server.url, prefix=prefix), RedisState(redis_server.url, prefix=prefix)
    try:
        # both replicas receive the same (retried) events at once: each is counted once
        events = [(T0 + i, f"e{i}", float(i)) for i in range(300)]

        def ingest(replica: RedisState, order: list[tuple[float, str, float]]) -> None:
            for ts, eid, amount in order:
                replica.add("apps", "d1", ts, eid, amount, DAY)

        threads = [
            threading.Thread(target=ingest, args=(a, events)),
            threading.Thread(target=ingest, args=(b, events[::-1])),
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for replica in (a, b):
            assert replica.count("apps", "d1", T0 - 1, T0 + 300) == 300
            assert replica.total("apps", "d1", T0 - 1, T0 + 300) == sum(range(300))
        # the newest event is tracked by the server, not per replica: B drops what A's newest put out of reach
        a.add("apps", "d1", T0 + 10 * DAY, "new", 1.0, DAY)
        b.add("apps", "d1", T0 + 5 * DAY, "stale", 1.0, DAY)
        assert b.count("apps", "d1", -math.inf, math.inf) == 1
        # add_many pipelines adds with the same meaning
        b.add_many(("apps", "d2", T0 + i % 50, f"e{i % 50}", 2.0, DAY) for i in range(200))
        assert a.count("apps", "d2", -math.inf, math.inf) == 50
        assert a.total("apps", "d2", -math.inf, math.inf) == 100.0
    finally:
        a.clear()
        a.close()
        b.close()


def test_redis_rejects_values_it_cannot_store_exactly(redis_client: Any) -> None:
    state = fresh_redis_state(redis_client)
    with pytest.raises(ValueError, match="ts must be a finite number"):
        state.add("s", "k", math.nan, "m", 1.0, DAY)
    with pytest.raises(ValueError, match="amount must be a finite number"):
        state.add("s", "k", T0, "m", math.inf, DAY)
    with pytest.raises(ValueError, match="horizon must be positive"):
        state.add("s", "k", T0, "m", 1.0, 0.0)
    with pytest.raises(ValueError, match="NaN"):
        state.count("s", "k", math.nan, T0)
    assert state.size() == 0


# ------------------------------------------------------------------------------ velocity on each backend


def obs(event_type: str, ts: float, event_id: str, amount: float = 0.0, **keys_and_fields: Any) -> Observation:
    entities = {"customer", "device", "ip", "phone", "id_number", "bank_card", "payee", "merchant"}
    keys = {k: v for k, v in keys_and_fields.items() if k in entities}
    fields = {k: v for k, v in keys_and_fields.items() if k not in entities}
    return Observation(event_type, ts, event_id, keys, amount, fields)


@pytest.fixture
def velocity(state: Any) -> Velocity:
    return Velocity(load_windows(), state)


def test_velocity_device_applications_24h(velocity: Velocity) -> None:
    velocity.observe(obs("application", T0, "a1", customer="c1", device="d1"))
    velocity.observe(obs("application", T0 + US, "a2", customer="c2", device="d1"))
    velocity.observe(obs("application", T0 + HOUR, "a3", customer="c3", device="d1"))
    velocity.observe(obs("application", T0 + HOUR, "a3", customer="c3", device="d1"))  # a retried event
    velocity.observe(obs("application", T0 + HOUR, "a4", customer="c4", device="d2"))
    velocity.observe(obs("login", T0 + HOUR, "l1", customer="c1", device="d1", success=True))  # not an application

    assert velocity.features({"device": "d1"}, T0 + HOUR)["device_applications_24h"] == 3.0
    assert velocity.features({"device": "d1"}, T0 + DAY - US)["device_applications_24h"] == 3.0
    assert velocity.features({"device": "d1"}, T0 + DAY)["device_applications_24h"] == 2.0  # a1 is 24 h old
    assert velocity.features({"device": "d1"}, T0 + DAY + US)["device_applications_24h"] == 1.0
    assert velocity.features({"device": "d2"}, T0 + DAY)["device_applications_24h"] == 1.0
    assert velocity.features({"device": "d3"}, T0 + DAY)["device_applications_24h"] == 0.0
    assert velocity.features({"customer": "c1"}, T0 + DAY)["device_applications_24h"] is None  # no device known


def test_velocity_device_distinct_customers_30d(velocity: Velocity) -> None:
    seq = [("application", "c1"), ("login", "c2"), ("device_bound", "c1"), ("login", "c3"), ("payment", "c9")]
    for i, (event_type, customer) in enumerate(seq):
        velocity.observe(obs(event_type, T0 + i * DAY, f"e{i}", 10.0, customer=customer, device="d1", merchant="m1"))
    name = "device_distinct_customers_30d"
    assert velocity.features({"device": "d1"}, T0 + 4 * DAY)[name] == 3.0  # c9 only paid: payments don't count
    assert velocity.features({"device": "d1"}, T0 + 30 * DAY)[name] == 3.0  # c1 again on day 2
    assert velocity.features({"device": "d1"}, T0 + 32 * DAY)[name] == 1.0  # only c3 (day 3) is left
    assert velocity.features({"device": "d1"}, T0 + 33 * DAY)[name] == 0.0
    assert velocity.features({"customer": "c1", "device": "d1"}, T0 + 3 * DAY)["customer_distinct_devices_7d"] == 1.0


def test_velocity_customer_failed_logins_1h(velocity: Velocity) -> None:
    for i in range(4):
        velocity.observe(obs("login", T0 + i * 10 * MINUTE, f"f{i}", customer="c1", device="d1", success=False))
    for i in range(3):
        velocity.observe(obs("login", T0 + i * MINUTE, f"ok{i}", customer="c1", device="d1", success=True))
    velocity.observe(obs("login", T0, "f-other", customer="c2", success=False))
    name = "customer_failed_logins_1h"
    assert velocity.features({"customer": "c1"}, T0 + 30 * MINUTE)[name] == 4.0
    assert velocity.features({"customer": "c1"}, T0 + HOUR)[name] == 3.0  # f0 is exactly 1 h old
    assert velocity.features({"customer": "c1"}, T0 + HOUR - US)[name] == 4.0
    assert velocity.features({"customer": "c1"}, T0 + 2 * HOUR)[name] == 0.0
    assert velocity.features({"customer": "c2"}, T0 + MINUTE)[name] == 1.0


def test_velocity_customer_transfer_out_sum_24h(velocity: Velocity) -> None:
    transfers = [(0.0, "t1", 1000.10), (HOUR, "t2", 2000.20), (2 * HOUR, "t3", 0.05), (2 * HOUR, "t3", 0.05)]
    for dt, eid, amount in transfers:
        velocity.observe(obs("transfer_out", T0 + dt, eid, amount, customer="c1", payee="p1"))
    velocity.observe(obs("payment", T0 + HOUR, "pay1", 500.0, customer="c1", merchant="m1"))
    f = velocity.features({"customer": "c1", "payee": "p1"}, T0 + 3 * HOUR)
    assert f["customer_transfer_out_sum_24h"] == pytest.approx(3000.35, rel=1e-12)
    assert f["customer_payment_sum_24h"] == 500.0
    assert f["payee_distinct_senders_30d"] == 1.0
    f = velocity.features({"customer": "c1"}, T0 + DAY)
    assert f["customer_transfer_out_sum_24h"] == pytest.approx(2000.25, rel=1e-12)  # t1 is exactly 24 h old
    assert velocity.features({"customer": "c1"}, T0 + DAY + 2 * HOUR)["customer_transfer_out_sum_24h"] == 0.0


def test_velocity_memory_is_bounded_by_each_windows_own_length(velocity: Velocity) -> None:
    # a device applying every hour for 40 days: the 24 h count keeps 24 entries, the 30 d distinct ~720
    for i in range(40 * 24):
        velocity.observe(obs("application", T0 + i * HOUR, f"a{i}", customer=f"c{i % 3}", device="d1"))
    state = velocity.state
    now = T0 + (40 * 24 - 1) * HOUR
    assert state.count("device_applications_24h", "d1", -math.inf, math.inf) == 24
    assert state.count("ip_applications_1h", "d1", -math.inf, math.inf) == 0
    assert state.count("device_distinct_customers_30d", "d1", -math.inf, math.inf) == 30 * 24
    assert velocity.features({"device": "d1"}, now)["device_distinct_customers_30d"] == 3.0


# ------------------------------------------------------------------------------- windows configuration


def test_the_bundled_windows_load() -> None:
    specs = load_windows()
    names = [s.name for s in specs]
    assert len(names) == len(set(names)) >= 10
    by_name = {s.name: s for s in specs}
    assert by_name["customer_failed_logins_1h"].where == {"success": False}
    assert by_name["device_distinct_customers_30d"].seconds == 30 * DAY
    assert DEFAULT_WINDOWS_FILE.name == "windows.yaml"


BASE = "{name: w, entity: device, events: [application], agg: count, window: 24h}"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (BASE.replace("24h", "24x"), ["windows.0.window", "'24x' is not a duration like 90s, 15m, 24h or 30d"]),
        (BASE.replace("24h", "0h"), ["'0h' is not a duration"]),
        (BASE.replace("[application]", "[application, logn]"), ["window 'w': unknown event type(s) ['logn']"]),
        (BASE.replace("agg: count", "agg: distinct"), ["window 'w'", "'of' is needed with agg distinct"]),
        (BASE.replace("agg: count", "agg: count, of: customer"), ["'of' is needed with agg distinct, and only then"]),
        (BASE + ", " + BASE.replace("24h", "1h"), ["window names used twice: ['w']"]),
        (BASE.replace("device", "devic"), ["windows.0.entity", "'customer', 'device'"]),
        (BASE.replace("count", "median"), ["windows.0.agg"]),
        (BASE.replace("name: w", "name: 1w"), ["windows.0.name"]),
    ],
    ids=["bad-duration", "zero-duration", "unknown-event", "distinct-without-of", "of-without-distinct",
         "duplicate-names", "unknown-entity", "unknown-agg", "bad-name"],
)  # fmt: skip
def test_load_windows_rejects_bad_config(tmp_path: Path, text: str, expected: list[str]) -> None:
    path = tmp_path / "windows.yaml"
    path.write_text(f"windows: [{text}]\n", encoding="utf-8")
    with pytest.raises(ValueError) as info:
        load_windows(path)
    message = str(info.value)
    assert message.startswith(f"{path}: "), message
    for part in expected:
        assert part in message, message


def test_load_windows_rejects_unreadable_files(tmp_path: Path) -> None:
    path = tmp_path / "windows.yaml"
    path.write_text("windows: [\n", encoding="utf-8")
    with pytest.raises(ValueError) as info:
        load_windows(path)
    assert str(info.value).startswith(f"{path}: ") and "expected" in str(info.value)
    missing = tmp_path / "missing.yaml"
    with pytest.raises(ValueError) as info:
        load_windows(missing)
    assert str(info.value).startswith(f"{missing}: ") and "No such file" in str(info.value)


# ------------------------------------------------------ property: memory == redis == brute-force recount

STEP = 0.25  # a grid of times so that window edges land exactly on events
HORIZONS = {"s": 10 * STEP, "t": 4 * STEP}
jitters = st.sampled_from([0.0, 0.0, 0.0, US, -US])
adds = st.tuples(
    st.just("add"),
    st.sampled_from(sorted(HORIZONS)),
    st.sampled_from(["k1", "k1", "k2"]),
    st.integers(0, 16),  # time, in steps
    jitters,
    st.sampled_from(["a", "a", "b", "b\x1fc"]),
    st.one_of(st.sampled_from([0.0, 0.1, 0.2, 1.0, 2.5, 1e-3]), st.floats(0, 1e6, allow_nan=False)),
)
queries = st.tuples(
    st.just("query"),
    st.integers(0, 7),  # which key: 0 is one never written, else one of those written so far
    st.integers(1, 10),  # window length in steps, capped at the series' horizon
    st.one_of(st.integers(-2, 2), st.integers(-8, 12)),  # until, in steps after that key's newest event
    jitters,
)


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(ops=st.lists(st.one_of(adds, adds, adds, queries), min_size=1, max_size=50))
def test_memory_and_redis_agree_with_a_brute_force_recount(redis_client: Any, ops: list[tuple[Any, ...]]) -> None:
    memory = MemoryState()
    redis_state = fresh_redis_state(redis_client)
    everything: dict[tuple[str, str], set[tuple[float, str, float]]] = {}

    def check(series: str, key: str, since: float, until: float) -> None:
        got = [
            (b.count(series, key, since, until), b.total(series, key, since, until),
             b.distinct(series, key, since, until))
            for b in (memory, redis_state)
        ]  # fmt: skip
        note(f"{series}/{key} ({since!r}, {until!r}] -> memory {got[0]}, redis {got[1]}")
        # the backends keep and drop exactly the same entries, so they agree on any interval
        assert got[0][0] == got[1][0]
        assert got[0][2] == got[1][2]
        assert got[0][1] == pytest.approx(got[1][1], rel=1e-12, abs=1e-12)
        entries = everything.get((series, key), set())
        newest = max((ts for ts, _, _ in entries), default=-math.inf)
        if until >= newest and until - since <= HORIZONS[series]:
            # exact from the newest event on: the same as recounting the full history
            inside = [(m, a) for ts, m, a in entries if since < ts <= until]
            assert got[1][0] == len(inside)
            assert got[1][2] == len({m for m, _ in inside})
            assert got[1][1] == pytest.approx(math.fsum(a for _, a in inside), rel=1e-12, abs=1e-12)

    try:
        for op in ops:
            if op[0] == "add":
                _, series, key, tick, jitter, member, amount = op
                ts = T0 + tick * STEP + jitter
                for backend in (memory, redis_state):
                    backend.add(series, key, ts, member, amount, HORIZONS[series])
                everything.setdefault((series, key), set()).add((ts, member, amount))
                continue
            _, target, steps, after, jitter = op
            written = list(everything)
            series, key = written[target % len(written)] if target and written else ("t", "never")
            window = min(steps * STEP, HORIZONS[series])
            newest = max((ts for ts, _, _ in everything.get((series, key), set())), default=T0)
            until = newest + after * STEP + jitter
            check(series, key, until - window, until)
        # and at every edge: each event's own time, exactly one window later, and just inside that
        for (series, key), entries in everything.items():
            h = HORIZONS[series]
            for ts in sorted({ts for ts, _, _ in entries})[-6:]:
                for until in (ts, ts + h, ts + h - US):
                    check(series, key, until - h, until)
        assert memory.size() == redis_state.size()
    finally:
        redis_state.clear()


def test_idle_keys_are_forgotten_so_memory_follows_the_traffic_not_every_key_ever_seen(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import fengkong.state.memory as memory

    monkeypatch.setattr(memory, "SWEEP_FLOOR", 50)
    state = MemoryState()
    sizes = []
    for i in range(3_000):  # a new device every minute for 50 hours, each seen once
        state.add("device_logins_1h", f"d{i}", T0 + i * MINUTE, f"e{i}", 1.0, HOUR)
        state.add("customer_logins_1h", "c1", T0 + i * MINUTE, f"e{i}", 1.0, HOUR)  # one busy key: never idle
        sizes.append(held(state))
    # only the devices of the last hour are live; at most as many idle ones wait for the next sweep
    assert max(sizes[200:]) <= 2 * max(50, 2 * 60) + 60
    now = T0 + 2_999 * MINUTE
    assert state.count("device_logins_1h", "d2999", now - HOUR, now) == 1
    assert state.count("device_logins_1h", "d2940", now - HOUR, now) == 1  # within the hour: kept
    assert state.count("device_logins_1h", "d0", -math.inf, math.inf) == 0  # idle for 50 h: forgotten
    assert state.count("customer_logins_1h", "c1", now - HOUR, now) == 60
