"""Event ingestion benchmarks: fengkong beside the plain way a team would do it, measured in the same run.

    .venv/bin/python benchmarks/ingest.py [--events N] [--http-events N] [--clients 1,4] [--pandas-sample N]

A generated event stream (logins, failed ones among them, device bindings, payments to merchants, transfers to
payees, drawdowns, repayments, bureau updates, complaints, password changes; 50,000 customers with households
and fraud rings sharing devices, office and mobile IPs, popular and cash-out merchants, mule payees; fixed seed)
is ingested:

1. In-process: ``Engine.ingest`` in batches of 1,000 and of 10,000 on SQLite in a temporary directory: every
   event validated, its identifiers keyed-hashed, stored durably (idempotent on event_id) and applied to all
   velocity windows (``windows.yaml``) and the entity-link graph. Events/s, batch latency, and the memory the
   online state holds (a deep ``sys.getsizeof`` walk, and the process RSS delta), scaled per million events.
2. Where the time goes: the same ingest with each stage timed (validation, identifier hashing, database
   transaction, online-state update), and ``OnlineFeatures.observe`` alone on the same prepared observations.
3. Over HTTP: ``fengkong serve`` (uvicorn) in a subprocess on a free 127.0.0.1 port with its own SQLite, batches
   of 1,000 POSTed to /v1/events with httpx by 1 and by several concurrent clients in this process.
4. Baselines in the same run: (a) a pandas recount per event (each event's window values recomputed from a
   DataFrame of the events before it), timed on a sample and extrapolated; (b) the same windows as plain Python
   dicts of deques, no validation, hashing, persistence or graph. Their window values are checked against each
   other and against fengkong's.
5. If in-process ingestion misses its target: a cProfile of ``Engine.ingest`` with the top costs.

A script that prints figures, not a timed test: targets are printed beside the figures, nothing fails.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import gc
import json
import os
import platform
import pstats
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import types
from collections import Counter, deque
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pydantic
import sqlalchemy as sa

import fengkong
import fengkong.service as service_module
from fengkong import Engine, runtime
from fengkong.events.ingest import observation, parse_events, protect
from fengkong.features.graph import EntityGraph
from fengkong.features.online import OnlineFeatures
from fengkong.features.velocity import Observation, Velocity, WindowSpec, load_windows
from fengkong.pii import PiiVault, normalize, sha256_hex
from fengkong.state.memory import MemoryState

SECRET = "benchmark-secret-key-not-for-production-0123456789"
TARGET_INPROCESS = 20_000  # events/s, DESIGN.md performance budgets (2-core machine)
TARGET_HTTP = 5_000
CST = dt.timezone(dt.timedelta(hours=8))
HTTP_BATCH = 1_000

# raw event field → entity kind used by windows and graph (customer and merchant ids are not personal data)
RAW_FIELDS = (
    ("device_id", "device"),
    ("ip", "ip"),
    ("payee", "payee"),
    ("phone", "phone"),
    ("id_number", "id_number"),
    ("bank_card", "bank_card"),
    ("merchant_id", "merchant"),
)
HASHED_KINDS = ("device", "ip", "payee", "phone", "id_number", "bank_card")
# entities the plain baselines know how to key; a window over any other entity is left out of them (and said so)
PLAIN_ENTITIES = frozenset({kind for _, kind in RAW_FIELDS} | {"customer", "customer_merchant", "customer_payee"})

EVENT_MIX = {  # share of the stream
    "login": 0.30,
    "login_failed": 0.05,
    "device_bound": 0.03,
    "password_changed": 0.01,
    "payment": 0.265,
    "merchant_payout": 0.005,
    "transfer_out": 0.10,
    "drawdown": 0.07,
    "repayment": 0.09,
    "bureau_update": 0.075,
    "complaint": 0.005,
}
COMPLAINTS = ("collector", "fraud", "scam", "unauthorised", "service", "other")
COMPLAINTS_P = (0.35, 0.1, 0.1, 0.1, 0.25, 0.1)

# ---------------------------------------------------------------------------------------------- data


def make_world(rng: np.random.Generator, n: int) -> dict[str, Any]:
    """Customers with their devices, IPs, usual payees and activity; households and rings that share devices."""
    ids = [f"c{i:06d}" for i in range(n)]
    activity = rng.lognormal(0.0, 1.0, n)
    activity /= activity.sum()
    second_device = rng.random(n) < 0.25
    # households (家庭): 12% of customers, 2-4 people sharing a family tablet as well as their own phones
    family: dict[int, str] = {}
    order = rng.permutation(n)
    pos, h = 0, 0
    while pos < int(0.12 * n):
        size = int(rng.integers(2, 5))
        for c in order[pos : pos + size]:
            family[int(c)] = f"fam-tablet-{h:05d}"
        pos += size
        h += 1
    # fraud rings: 1.5% of customers in rings of 6-12 working from 2-3 shared devices, paying out to mules
    ring: dict[int, int] = {}
    ring_devices: list[list[str]] = []
    r = 0
    end = pos + int(0.015 * n)
    while pos < end:
        size = int(rng.integers(6, 13))
        ring_devices.append([f"farm-{r:04d}-{k}" for k in range(int(rng.integers(2, 4)))])
        for c in order[pos : pos + size]:
            ring[int(c)] = r
        pos += size
        r += 1
    # cash-out (套现) pairs: 0.5% of customers pay round sums to one of a few merchants that few others use
    cashout = {int(c): f"mch-co-{i % 40:02d}" for i, c in enumerate(order[pos : pos + int(0.005 * n)])}
    offices = rng.integers(0, 300, n)
    has_office = rng.random(n) < 0.6
    home_ip = [f"{a}.{b}.{c}.{d}" for a, b, c, d in rng.integers(1, 255, (n, 4))]
    office_ip = [f"202.96.{o // 250}.{o % 250 + 1}" for o in range(300)]
    mobile_ip = [f"117.136.{k // 250}.{k % 250 + 1}" for k in range(2_000)]  # carrier NAT pool
    payees = [[f"6222{rng.integers(10**14, 10**15)}" for _ in range(int(k))] for k in rng.integers(1, 4, n)]
    common_payees = [f"6217{k:015d}" for k in range(2_000)]  # landlords, utilities, schools
    merchants = [f"mch-{j:05d}" for j in range(8_000)]
    popularity = 1.0 / np.arange(1, len(merchants) + 1) ** 1.1
    return {
        "ids": ids,
        "activity": activity,
        "second_device": second_device,
        "family": family,
        "ring": ring,
        "ring_devices": ring_devices,
        "cashout": cashout,
        "offices": offices,
        "has_office": has_office,
        "home_ip": home_ip,
        "office_ip": office_ip,
        "mobile_ip": mobile_ip,
        "payees": payees,
        "common_payees": common_payees,
        "merchants": merchants,
        "merchant_p": popularity / popularity.sum(),
    }


def make_events(
    rng: np.random.Generator, world: dict[str, Any], n: int, prefix: str, end: dt.datetime, span_days: float
) -> list[dict[str, Any]]:
    """n events in time order over span_days up to end, as a lender's systems would send them."""
    kinds = list(EVENT_MIX)
    kind = rng.choice(len(kinds), size=n, p=list(EVENT_MIX.values()))
    cust = rng.choice(len(world["ids"]), size=n, p=world["activity"])
    end_ts = end.timestamp()
    ts = np.sort(end_ts - rng.random(n) * span_days * 86400)
    u = rng.random((n, 4))
    merchant = rng.choice(len(world["merchants"]), size=n, p=world["merchant_p"])
    amount_pay = np.maximum(1.0, np.round(rng.lognormal(5.0, 1.1, n), 2))
    amount_xfer = np.maximum(1.0, np.round(rng.lognormal(7.0, 1.2, n), 2))
    amount_repay = np.maximum(1.0, np.round(rng.lognormal(7.0, 0.8, n), 2))
    drawdowns = rng.choice([1000, 2000, 3000, 5000, 10000, 20000, 50000], size=n)
    inquiries = rng.poisson((0.5, 1.0, 1.5, 2.0), (n, 4))
    debt = np.round(rng.lognormal(10.0, 1.0, n), 2)
    complaint = rng.choice(len(COMPLAINTS), size=n, p=COMPLAINTS_P)
    ids, family, ring, cashout = world["ids"], world["family"], world["ring"], world["cashout"]
    out: list[dict[str, Any]] = []
    for i in range(n):
        c = int(cust[i])
        k = kinds[kind[i]]
        a, b, d, e = u[i]
        when = dt.datetime.fromtimestamp(float(ts[i]), CST).isoformat(timespec="milliseconds")
        ev: dict[str, Any] = {"event_id": f"{prefix}{i:08d}", "customer_id": ids[c], "occurred_at": when}
        # the device and network the customer acts from
        r = ring.get(c)
        if r is not None and a < 0.8:
            devs = world["ring_devices"][r]
            device = devs[int(b * len(devs))]
        elif c in family and a < 0.15:
            device = family[c]
        elif world["second_device"][c] and a < 0.3:
            device = f"dev-{c:06d}-b"
        else:
            device = f"dev-{c:06d}-a"
        if b < 0.5:
            ip = world["home_ip"][c]
        elif b < 0.75 and world["has_office"][c]:
            ip = world["office_ip"][world["offices"][c]]
        else:
            ip = world["mobile_ip"][int(e * 2000)]
        with_device = d < 0.95 if k.startswith("login") or k == "device_bound" else d < 0.7
        if with_device:
            ev["device_id"] = device
            ev["ip"] = ip
        if k == "login":
            ev["type"] = "login"
            ev["success"] = True
        elif k == "login_failed":
            ev["type"] = "login"
            ev["success"] = False
        elif k == "device_bound":
            ev["type"] = "device_bound"
            ev["device_id"] = device if (r is not None or e < 0.7) else f"dev-{c:06d}-n{i}"
        elif k == "password_changed":
            ev["type"] = "password_changed"
        elif k == "payment":
            ev["type"] = "payment"
            if c in cashout and e < 0.6:
                ev["merchant_id"] = cashout[c]
                ev["amount"] = float(drawdowns[i])  # round sums (套现)
            else:
                ev["merchant_id"] = world["merchants"][merchant[i]]
                ev["amount"] = float(amount_pay[i])
        elif k == "merchant_payout":  # the return leg of cash-out, or a refund
            ev["type"] = "merchant_payout"
            if c in cashout:
                ev["merchant_id"] = cashout[c]
                ev["amount"] = float(drawdowns[i]) * 0.95
            else:
                ev["merchant_id"] = world["merchants"][merchant[i]]
                ev["amount"] = float(amount_pay[i])
        elif k == "transfer_out":
            ev["type"] = "transfer_out"
            if r is not None and e < 0.7:
                ev["payee"] = f"6228mule{r:08d}"
            elif e < 0.25:
                ev["payee"] = world["common_payees"][int(a * 2000)]
            else:
                own = world["payees"][c]
                ev["payee"] = own[int(e * len(own))]
            ev["amount"] = float(amount_xfer[i])
        elif k == "drawdown":
            ev["type"] = "drawdown"
            ev["amount"] = float(drawdowns[i])
            ev["line_id"] = f"ln-{c:06d}"
        elif k == "repayment":
            ev["type"] = "repayment"
            ev["amount"] = float(amount_repay[i])
            ev["loan_id"] = f"loan-{c:06d}"
        elif k == "bureau_update":
            q7, q30, q90, loans = (int(x) for x in inquiries[i])
            ev["type"] = "bureau_update"
            ev.update(
                inquiries_7d=q7,
                inquiries_30d=q7 + q30,
                inquiries_90d=q7 + q30 + q90,
                active_loans=loans,
                total_debt=float(debt[i]),
            )
        else:
            ev["type"] = "complaint"
            ev["category"] = COMPLAINTS[complaint[i]]
        out.append(ev)
    return out


def plain_keys(ev: Mapping[str, Any]) -> dict[str, str]:
    """The entity keys of a raw event as a plain implementation would take them: raw values, no hashing."""
    customer = ev["customer_id"]
    keys = {"customer": customer}
    for name, kind in RAW_FIELDS:
        value = ev.get(name)
        if value is not None:
            keys[kind] = value
    if "merchant" in keys:
        keys["customer_merchant"] = f"{customer}|{keys['merchant']}"
    if "payee" in keys:
        keys["customer_payee"] = f"{customer}|{keys['payee']}"
    return keys


def fengkong_key(vault: Any, entity: str, raw: str) -> str:
    """The key fengkong's online state holds for a plain (raw) entity key."""
    if entity in HASHED_KINDS:
        return str(vault.keyed_hash(entity, sha256_hex(normalize(entity, raw))))
    if entity == "customer_payee":
        customer, payee = raw.split("|", 1)
        return f"{customer}|{fengkong_key(vault, 'payee', payee)}"
    return raw


# ---------------------------------------------------------------------------------------------- helpers


def rate(n: int, seconds: float) -> float:
    return n / seconds if seconds > 0 else float("inf")


def ratio(baseline: float, ours: float) -> str:
    """baseline / fengkong (times, or bytes): above 1 means fengkong takes less."""
    if ours <= 0 or baseline <= 0:
        return "n/a"
    r = baseline / ours
    if r < 1:
        return f"{r:.2f}x (1/{1 / r:.0f})" if r < 0.1 else f"{r:.2f}x"
    return f"{r:.2f}x" if r < 10 else f"{r:,.0f}x"


def verdict(value: float, target: float) -> str:
    return "meets" if value >= target else "MISSES"


def header(title: str) -> None:
    print()
    print(title)
    print("-" * len(title))


def mb(n: float) -> str:
    return f"{n / 1e6:,.1f} MB"


def rss_bytes(pid: int | str = "self") -> int:
    """Resident set size from /proc (Linux); 0 where there is none."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


_LEAVES = (type, types.ModuleType, types.FunctionType, types.BuiltinFunctionType, types.MethodType)


def deep_size(*roots: Any) -> int:
    """Bytes held by these containers and everything they reach (each object once), by sys.getsizeof."""
    seen: set[int] = set()
    stack = list(roots)
    total = 0
    while stack:
        o = stack.pop()
        if id(o) in seen or isinstance(o, _LEAVES):
            continue
        seen.add(id(o))
        total += sys.getsizeof(o)
        if isinstance(o, dict):
            stack.extend(o.keys())
            stack.extend(o.values())
        elif isinstance(o, list | tuple | set | frozenset | deque):
            stack.extend(o)
    return total


def state_size(online: OnlineFeatures) -> tuple[int, int]:
    """(velocity windows, link graph) bytes of an in-process online state."""
    state = online.velocity.state
    graph = online.graph
    windows = deep_size(state._series)
    graph_parts = [v for k, v in vars(graph).items() if k.startswith("_") and k != "_lock"]
    return windows, deep_size(*graph_parts)


def batches(items: list[Any], size: int) -> Iterator[list[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def git_state() -> str:
    """The commit measured, and whether the working tree differs from it (figures then belong to the tree)."""
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "src"], cwd=root, capture_output=True, text=True, timeout=10
        ).stdout.splitlines()
    except (OSError, subprocess.SubprocessError):
        return "not a git checkout"
    return f"commit {head}" + (f", {len(dirty)} changed or new path(s) under src/ not committed" if dirty else "")


class GcTimer:
    """Time spent in the cyclic garbage collector while active (gc.callbacks), by generation."""

    def __init__(self, stack: list[str] | None = None) -> None:
        self.seconds = [0.0, 0.0, 0.0]
        self.count = [0, 0, 0]
        self.by_stage: Counter[str] = Counter()  # with a stack of stage names: collections charged to each
        self._stack = stack
        self._t0 = 0.0
        self.active = False

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if not self.active:
            return
        if phase == "start":
            self._t0 = time.perf_counter()
        else:
            took = time.perf_counter() - self._t0
            self.seconds[info["generation"]] += took
            self.count[info["generation"]] += 1
            if self._stack is not None:
                for stage in self._stack:  # nested stages each include it, as their timers do
                    self.by_stage[stage] += took
                if not self._stack:
                    self.by_stage[""] += took

    def __enter__(self) -> GcTimer:
        gc.callbacks.append(self._callback)
        self.active = True
        return self

    def __exit__(self, *_: object) -> None:
        self.active = False
        gc.callbacks.remove(self._callback)

    @property
    def total(self) -> float:
        return sum(self.seconds)

    def describe(self, wall: float) -> str:
        return (
            f"{self.total:.2f} s = {100 * self.total / wall:.0f}% of the wall in {sum(self.count):,} collections "
            f"(gen 2: {self.count[2]:,} taking {self.seconds[2]:.2f} s)"
        )


def new_engine(path: Path) -> Engine:
    return Engine(f"sqlite:///{path}", secret_key=SECRET)


# ---------------------------------------------------------------------------------------------- 1. in-process


def bench_inprocess(
    events: list[dict[str, Any]],
    warm: list[dict[str, Any]],
    batch: int,
    tmp: Path,
    keep: bool = False,
    tuned: bool = False,
) -> dict[str, Any]:
    """``tuned``: the process tunes its collector after start-up as ``fengkong ingest`` and ``fengkong serve``
    do (fengkong.runtime.tune_for_service); undone afterwards so later sections run as before."""
    engine = new_engine(tmp / f"inprocess-{batch}{'-tuned' if tuned else ''}.db")
    engine.ingest(warm)
    gc.collect()
    threshold = gc.get_threshold()
    if tuned:
        runtime.own_process()
        runtime.tune_for_service()
    windows0, graph0 = state_size(engine.online)
    rss0 = rss_bytes()
    lat: list[float] = []
    accepted = alerts = 0
    parts = list(batches(events, batch))
    half = len(parts) // 2
    mid: tuple[int, int, int] = (0, 0, 0)
    paused = 0.0
    gc.collect()
    gct = GcTimer()
    started = time.perf_counter()
    for j, part in enumerate(parts):
        t0 = time.perf_counter()
        with gct:
            result = engine.ingest(part)
        lat.append(time.perf_counter() - t0)
        accepted += len(result.accepted)
        alerts += len(getattr(result, "alerts", None) or ())
        if keep and j + 1 == half:  # memory half-way, off the clock: the slope from here on is per event
            t1 = time.perf_counter()
            mid = (sum(len(p) for p in parts[:half]), sum(state_size(engine.online)), rss_bytes())
            paused += time.perf_counter() - t1
    wall = time.perf_counter() - started - paused
    if tuned:
        gc.unfreeze()
        gc.set_threshold(*threshold)
        runtime._owned = False
    gc.collect()
    rss1 = rss_bytes()
    windows1, graph1 = state_size(engine.online)
    entries = engine.online.velocity.state.size()
    with engine.db.connect() as conn:
        stored = conn.execute(sa.select(sa.func.count()).select_from(service_module.events)).scalar_one()
    db_bytes = sum(p.stat().st_size for p in tmp.glob(f"inprocess-{batch}.db*"))
    out = {
        "batch": batch,
        "tuned": tuned,
        "events": len(events),
        "accepted": accepted,
        "alerts": alerts,
        "gc": gct,
        "stored": stored - len(warm),
        "wall": wall,
        "rate": rate(len(events), wall),
        "lat": np.array(lat),
        "mid_events": mid[0],
        "mid_state_bytes": mid[1] - windows0 - graph0,
        "mid_rss_delta": mid[2] - rss0,
        "windows_bytes": windows1 - windows0,
        "graph_bytes": graph1 - graph0,
        "rss_delta": rss1 - rss0,
        "entries": entries,
        "db_bytes": db_bytes,
        "engine": engine if keep else None,
    }
    if not keep:
        engine.close()
    return out


def bench_cli(
    events: list[dict[str, Any]], warm: list[dict[str, Any]], tmp: Path, batch: int = 2_000
) -> dict[str, Any]:
    """``fengkong ingest`` in a subprocess on a JSON Lines file of the same events (warm-up ingested first)."""
    url = f"sqlite:///{tmp / 'cli.db'}"
    env = {**os.environ, "FENGKONG_SECRET_KEY": SECRET}
    files = []
    for name, part in (("warm", warm), ("events", events)):
        path = tmp / f"{name}.jsonl"
        path.write_text("\n".join(json.dumps(e) for e in part) + "\n", encoding="utf-8")
        files.append(path)
    command = [*fengkong_command(), "ingest", "--json", "--batch", str(batch), "--database-url", url]
    subprocess.run([*command, str(files[0])], env=env, capture_output=True, timeout=600, check=False)
    started = time.perf_counter()
    done = subprocess.run([*command, str(files[1])], env=env, capture_output=True, text=True, timeout=1800, check=False)
    wall = time.perf_counter() - started
    accepted, error = 0, ""
    try:
        accepted = int(json.loads(done.stdout)["accepted"])
    except (ValueError, KeyError, TypeError):
        said = (done.stderr or done.stdout).strip().splitlines()
        error = said[-1] if said else f"exit {done.returncode}"
    return {"batch": batch, "wall": wall, "rate": rate(len(events), wall), "accepted": accepted, "error": error}


def prefix_rate(run: dict[str, Any], events: int) -> float:
    """Events/s of an in-process run over its first ``events`` events (whole batches)."""
    k = max(1, events // run["batch"])
    return rate(k * run["batch"], float(run["lat"][:k].sum()))


def report_inprocess(runs: list[dict[str, Any]], n: int, table: list[tuple[str, ...]]) -> None:
    print(
        f"{'batch':>7}{'events/s':>11}{'wall s':>8}{'batch p50 ms':>14}{'p99 ms':>9}{'first 25%/s':>13}"
        f"{'last 25%/s':>12}{'accepted':>10}{'stored':>9}{'alerts':>8}"
    )
    for r in runs:
        if r["tuned"]:
            continue
        lat = r["lat"]
        q = max(1, len(lat) // 4)
        first = rate(q * r["batch"], float(lat[:q].sum()))
        last = rate(q * r["batch"], float(lat[-q:].sum()))
        print(
            f"{r['batch']:>7,}{r['rate']:>11,.0f}{r['wall']:>8.1f}{np.percentile(lat, 50) * 1e3:>14.1f}"
            f"{np.percentile(lat, 99) * 1e3:>9.1f}{first:>13,.0f}{last:>12,.0f}{r['accepted']:>10,}{r['stored']:>9,}"
            f"{r['alerts']:>8,}"
        )
    for r in runs:
        if r["tuned"]:
            print(
                f"batch {r['batch']:,}, the process's collector tuned as `fengkong ingest` and `fengkong serve` tune "
                f"theirs (fengkong.runtime.tune_for_service): {r['rate']:,.0f} events/s, wall {r['wall']:.1f} s, "
                f"batch p50 {np.percentile(r['lat'], 50) * 1e3:.1f} ms, p99 {np.percentile(r['lat'], 99) * 1e3:.1f} ms"
            )
    for r in runs:
        what = " (collector tuned)" if r["tuned"] else ""
        print(f"batch {r['batch']:,}{what}: garbage collector {r['gc'].describe(r['wall'])}")
    r = runs[0]
    per_m = 1e6 / n
    r["marginal_state"] = (r["windows_bytes"] + r["graph_bytes"] - r["mid_state_bytes"]) * 1e6 / (n - r["mid_events"])
    print(
        f"online state after {n:,} events (batch {r['batch']:,} run): velocity windows {mb(r['windows_bytes'])} "
        f"({r['entries']:,} window entries, {r['entries'] / n:.2f} per event), link graph {mb(r['graph_bytes'])}; "
        f"process RSS grew {mb(r['rss_delta'])}; SQLite files {mb(r['db_bytes'])}"
    )
    print(
        f"per million events, average (state / events): online state "
        f"{mb((r['windows_bytes'] + r['graph_bytes']) * per_m)}"
        f" (windows {mb(r['windows_bytes'] * per_m)}, graph {mb(r['graph_bytes'] * per_m)}), "
        f"RSS {mb(r['rss_delta'] * per_m)}, on disk {mb(r['db_bytes'] * per_m)}"
    )
    slope = 1e6 / (n - r["mid_events"])
    print(
        f"per million events, marginal (growth from event {r['mid_events']:,} to {n:,}): online state "
        f"{mb(r['marginal_state'])}, RSS {mb((r['rss_delta'] - r['mid_rss_delta']) * slope)}"
    )
    print(
        "    (the stream is shorter than the 30 d and 90 d windows, so those hold every event: this is what the\n"
        "     windows keep per million events seen within their span; older ones are evicted. The average carries\n"
        "     per-key overhead (dicts, lists, keyed hashes) of the customers, devices, merchants and payees first\n"
        "     seen; the marginal figure is closer to what a longer stream over the same population adds. The graph\n"
        "     grows with customers and identifiers, not events.)"
    )
    for r in runs:
        table.append(
            (
                f"in-process events/s, batch {r['batch']:,}" + (", gc tuned" if r["tuned"] else ""),
                f"{r['rate']:,.0f}",
                "",
                "",
                f">= {TARGET_INPROCESS:,}",
                verdict(r["rate"], TARGET_INPROCESS),
            )
        )


# ---------------------------------------------------------------------------------------------- 2. split


class _InlineWriter:
    """Stands in for the engine's writer threads during the split run: the batch is written in the calling
    thread, so each stage's time is its own (in production the write overlaps counting and triggers)."""

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        done: Future[Any] = Future()
        try:
            done.set_result(fn(*args))
        except Exception as exc:
            done.set_exception(exc)
        return done

    def shutdown(self, wait: bool = True) -> None:
        pass


def _timed(fn: Callable[..., Any], acc: dict[str, float], name: str, stack: list[str]) -> Callable[..., Any]:
    clock = time.perf_counter

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        stack.append(name)
        t0 = clock()
        try:
            return fn(*args, **kwargs)
        finally:
            acc[name] += clock() - t0
            stack.pop()

    return wrapper


def bench_split(
    events: list[dict[str, Any]], warm: list[dict[str, Any]], batch: int, tmp: Path, headline: float
) -> dict[str, float]:
    """Engine.ingest with its stages timed (module functions and instance attributes wrapped, src untouched)."""
    engine = new_engine(tmp / "split.db")
    engine.ingest(warm)
    acc: dict[str, float] = Counter()
    stack: list[str] = []
    real_db = engine.db

    def before_exec(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        stack.append("sql")
        acc["_sql_t0"] = time.perf_counter()

    def after_exec(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        stack.pop()
        if stack:
            acc[f"sql_{stack[-1]}"] += time.perf_counter() - acc["_sql_t0"]

    originals = {
        name: getattr(service_module, name)
        for name in ("parse_events", "protect", "observation")
        if hasattr(service_module, name)
    }
    sa.event.listen(real_db, "before_cursor_execute", before_exec)
    sa.event.listen(real_db, "after_cursor_execute", after_exec)
    online = engine.online
    # (object, attribute, stage): instance attributes shadow the methods for this engine only
    hooks = [
        (online.velocity, "observe", "velocity"),
        (online, "graph_only", "graph"),
        (online, "observe", "observe"),
        (online, "features", "trigger_features"),  # only the trigger path asks for features during ingest
        (engine, "_list_features", "trigger_lists"),
        (engine, "_fire_triggers", "triggers"),
        (engine, "_store_events", "db"),
        (engine, "_follow_up", "follow_up"),
        (engine.loans, "on_events", "loans"),
    ]
    hooked = [(obj, attr) for obj, attr, _ in hooks if hasattr(obj, attr)]
    try:
        for name, fn in originals.items():
            setattr(service_module, name, _timed(fn, acc, name, stack))
        real_writer, engine._writer = engine._writer, _InlineWriter()  # type: ignore[assignment]
        for obj, attr, stage in hooks:
            if hasattr(obj, attr):
                setattr(obj, attr, _timed(getattr(obj, attr), acc, stage, stack))
        alerts = 0
        gc.collect()
        gct = GcTimer(stack)
        started = time.perf_counter()
        with gct:
            for part in batches(events, batch):
                alerts += len(getattr(engine.ingest(part), "alerts", None) or ())
        wall = time.perf_counter() - started
    finally:
        for name, fn in originals.items():
            setattr(service_module, name, fn)
        engine._writer = real_writer
        for obj, attr in hooked:
            vars(obj).pop(attr, None)
        sa.event.remove(real_db, "before_cursor_execute", before_exec)
        sa.event.remove(real_db, "after_cursor_execute", after_exec)
        engine.close()

    n = len(events)
    us = 1e6 / n
    top = ("parse_events", "protect", "db", "observation", "observe", "triggers", "follow_up", "loans")
    other = wall - sum(acc[k] for k in top)
    g = gct.by_stage
    rows: list[tuple[str, float, float | None]] = [
        ("validate: parse_events (pydantic, per event)", acc["parse_events"], g["parse_events"]),
        ("protect: model_dump + keyed hashes of identifiers", acc["protect"], g["protect"]),
        ("writing the batch: one transaction (inline here)", acc["db"], g["db"]),
        ("observation objects", acc["observation"], g["observation"]),
        ("online state: OnlineFeatures.observe", acc["observe"], g["observe"]),
        ("    velocity windows (MemoryState.add)", acc["velocity"], g["velocity"]),
        ("    link graph (EntityGraph.link)", acc["graph"], g["graph"]),
        ("    dispatch", acc["observe"] - acc["velocity"] - acc["graph"], None),
    ]
    if "triggers" in acc:
        rows += [
            ("event triggers: Engine._fire_triggers", acc["triggers"], g["triggers"]),
            ("    online features, all windows + graph", acc["trigger_features"], g["trigger_features"]),
            ("    list look-ups: Engine._list_features", acc["trigger_lists"], g["trigger_lists"]),
            ("        of which in sqlite3", acc["sql_trigger_lists"], None),
            ("    conditions, alert rows", acc["triggers"] - acc["trigger_features"] - acc["trigger_lists"], None),
        ]
    rows.append((f"follow-up: {alerts:,} alerts, cases, pauses, one transaction", acc["follow_up"], None))
    rows.append(("loan book: repayments applied", acc["loans"], g["loans"]))
    rows.append(("rest (idempotency SELECT, row dicts, loops)", other, g[""]))
    print(
        f"instrumented run: the first {n:,} events in batches of {batch:,}, {rate(n, wall):,.0f} events/s "
        f"(uninstrumented, the same events in section 1: {headline:,.0f}/s; the timers cost the difference)"
    )
    print(f"{'stage':52}{'µs/event':>10}{'share':>8}{'of which GC µs':>16}")
    for label, seconds, in_gc in rows:
        gc_text = "" if in_gc is None else f"{in_gc * us:>16.2f}"
        print(f"{label:52}{seconds * us:>10.2f}{100 * seconds / wall:>7.1f}%{gc_text}")
    print(f"{'total':52}{wall * us:>10.2f}{100.0:>7.1f}%{gct.total * us:>16.2f}")
    print(f"garbage collection: {gct.describe(wall)}; a collection is charged to the stage whose allocation set it off")
    checks = acc["parse_events"] + acc["protect"]
    print(
        f"split: persistence (DB transaction) {acc['db'] * us:.1f} µs/event = {100 * acc['db'] / wall:.0f}%; "
        f"online-state update {acc['observe'] * us:.1f} µs/event = {100 * acc['observe'] / wall:.0f}%; "
        f"validation + hashing {checks * us:.1f} µs/event = {100 * checks / wall:.0f}%"
        + (
            f"; event triggers {acc['triggers'] * us:.1f} µs/event = {100 * acc['triggers'] / wall:.0f}%"
            if "triggers" in acc
            else ""
        )
    )
    return {"wall": wall, "events": n, **acc}


def prepare_observations(events: list[dict[str, Any]]) -> list[Observation]:
    """The observations Engine.ingest would apply, built outside any timing (same vault secret)."""
    engine_vault = PiiVault(SECRET.encode())
    good, bad = parse_events(events)
    assert not bad, bad[:3]
    out = []
    for _i, event in good:
        payload, keys = protect(event, engine_vault)
        out.append(observation(event.type, event.event_id, event.utc(), keys, payload))
    return out


def fresh_online() -> OnlineFeatures:
    return OnlineFeatures(Velocity(load_windows(), MemoryState()), EntityGraph())


def bench_observe(observations: list[Observation]) -> dict[str, float]:
    """OnlineFeatures.observe alone (velocity + graph), then velocity only and graph only, on fresh states."""
    out: dict[str, float] = {}
    for label in ("observe", "velocity", "graph"):
        online = fresh_online()
        fn = {"observe": online.observe, "velocity": online.velocity.observe, "graph": online.graph_only}[label]
        gc.collect()
        t0 = time.perf_counter()
        for obs in observations:
            fn(obs)
        out[label] = time.perf_counter() - t0
        if label == "observe":
            out["windows_bytes"], out["graph_bytes"] = state_size(online)
        del online, fn
    return out


# ---------------------------------------------------------------------------------------------- baselines


PLAIN_AGGS = frozenset({"count", "sum", "distinct", "last", "change"})


def plain_supported(spec: WindowSpec) -> bool:
    return spec.entity in PLAIN_ENTITIES and (spec.of is None or spec.of in PLAIN_ENTITIES) and spec.agg in PLAIN_AGGS


def field_of(spec: WindowSpec) -> str | None:
    """The numeric event field a window reads (None: the amount); older window specs have no such setting."""
    return getattr(spec, "field", None)


def numeric(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


class PlainWindows:
    """The same windows as plain Python: a dict of deques per window, running sums and member counters.

    No validation, no hashing, no persistence, no idempotency, no graph; assumes events arrive in time order.
    """

    def __init__(self, specs: tuple[WindowSpec, ...]) -> None:
        specs = tuple(s for s in specs if plain_supported(s))
        self.specs = {s.name: s for s in specs}
        self.by_event: dict[str, list[tuple[str, str, str, str | None, str | None, float, tuple[Any, ...]]]] = {}
        for s in specs:
            for e in s.events:
                self.by_event.setdefault(e, []).append(
                    (s.name, s.entity, s.agg, s.of, field_of(s), s.seconds, tuple(s.where.items()))
                )
        self.series: dict[str, dict[str, deque[tuple[float, Any, float]]]] = {s.name: {} for s in specs}
        self.sums: dict[str, dict[str, float]] = {s.name: {} for s in specs if s.agg == "sum"}
        self.members: dict[str, dict[str, Counter[str]]] = {s.name: {} for s in specs if s.agg == "distinct"}
        self.mid_bytes = 0

    def observe(self, ev: Mapping[str, Any], ts: float, record: dict[str, float | None] | None = None) -> None:
        todo = self.by_event.get(ev["type"])
        if not todo:
            return
        keys = plain_keys(ev)
        for name, entity, agg, of, field, seconds, where in todo:
            key = keys.get(entity)
            if key is None or any(ev.get(k, True) != v for k, v in where):
                continue
            if agg == "distinct":
                member = keys.get(of or "")
                if member is None:
                    continue
                item: tuple[float, Any, float] = (ts, member, 0.0)
            elif agg == "count":
                item = (ts, ev["event_id"], 1.0)
            else:
                amount = ev.get(field) if field else ev.get("amount", 0.0)
                if not numeric(amount):
                    continue
                item = (ts, ev["event_id"], float(amount))
            dq = self.series[name].get(key)
            if dq is None:
                dq = self.series[name][key] = deque()
            dq.append(item)
            edge = ts - seconds
            value: float | None
            if agg == "sum":
                sums = self.sums[name]
                total = sums.get(key, 0.0) + item[2]
                while dq[0][0] <= edge:
                    total -= dq.popleft()[2]
                sums[key] = total
                value = total
            elif agg == "distinct":
                counter = self.members[name].get(key)
                if counter is None:
                    counter = self.members[name][key] = Counter()
                counter[item[1]] += 1
                while dq[0][0] <= edge:
                    gone = dq.popleft()[1]
                    counter[gone] -= 1
                    if not counter[gone]:
                        del counter[gone]
                value = float(len(counter))
            else:
                while dq[0][0] <= edge:
                    dq.popleft()
                value = float(len(dq)) if agg == "count" else item[2] if agg == "last" else item[2] - dq[0][2]
            if record is not None:
                record[name] = value

    def size(self) -> int:
        return deep_size(self.series, self.sums, self.members)

    def value(self, name: str, key: str, now: float) -> float | None:
        spec = self.specs[name]
        live = [x for x in self.series[name].get(key, ()) if now - spec.seconds < x[0] <= now]
        if spec.agg == "count":
            return float(len(live))
        if spec.agg == "sum":
            return float(sum(x[2] for x in live))
        if spec.agg == "distinct":
            return float(len({x[1] for x in live}))
        if not live:
            return None
        return live[-1][2] if spec.agg == "last" else live[-1][2] - live[0][2]


def bench_plain(
    events: list[dict[str, Any]], ts: np.ndarray, specs: tuple[WindowSpec, ...], sample: set[int]
) -> tuple[float, PlainWindows, dict[int, dict[str, float | None]]]:
    plain = PlainWindows(specs)
    recorded: dict[int, dict[str, float | None]] = {}
    times = ts.tolist()
    half = len(events) // 2
    gc.collect()
    t0 = time.perf_counter()
    for i, ev in enumerate(events[:half]):
        if i in sample:
            recorded[i] = {}
            plain.observe(ev, times[i], recorded[i])
        else:
            plain.observe(ev, times[i])
    took = time.perf_counter() - t0
    plain.mid_bytes = plain.size()  # memory half-way, off the clock
    gc.collect()
    t0 = time.perf_counter()
    for i, ev in enumerate(events[half:], half):
        if i in sample:
            recorded[i] = {}
            plain.observe(ev, times[i], recorded[i])
        else:
            plain.observe(ev, times[i])
    took += time.perf_counter() - t0
    return took, plain, recorded


def pandas_frame(events: list[dict[str, Any]], ts: np.ndarray, specs: tuple[WindowSpec, ...]) -> pd.DataFrame:
    fields = sorted({f for s in specs if (f := field_of(s))})
    wheres = sorted({k for s in specs for k in s.where} - {"success"})
    return pd.DataFrame(
        {
            "ts": ts,
            "type": [e["type"] for e in events],
            "event_id": [e["event_id"] for e in events],
            "customer_id": [e["customer_id"] for e in events],
            "device_id": [e.get("device_id") for e in events],
            "ip": [e.get("ip") for e in events],
            **{name: [e.get(name) for e in events] for name in ("payee", "phone", "id_number", "bank_card")},
            "merchant_id": [e.get("merchant_id") for e in events],
            "customer_merchant": [plain_keys(e).get("customer_merchant") for e in events],
            "customer_payee": [plain_keys(e).get("customer_payee") for e in events],
            "amount": [float(e.get("amount", 0.0)) for e in events],
            "success": [bool(e.get("success", True)) for e in events],
            **{f: [float(e[f]) if numeric(e.get(f)) else np.nan for e in events] for f in fields},
            **{k: [e.get(k) for e in events] for k in wheres},
        }
    )


def bench_pandas(
    df: pd.DataFrame, events: list[dict[str, Any]], specs: tuple[WindowSpec, ...], sample: list[int]
) -> tuple[float, dict[int, dict[str, float | None]]]:
    """Per sampled event: recount each of its windows from the frame of events up to and including it."""
    ts = df["ts"].to_numpy()
    column = {"customer": "customer_id", "device": "device_id", "merchant": "merchant_id"}
    by_event: dict[str, list[WindowSpec]] = {}
    for s in specs:
        if plain_supported(s):
            for e in s.events:
                by_event.setdefault(e, []).append(s)
    values: dict[int, dict[str, float | None]] = {}
    gc.collect()
    t0 = time.perf_counter()
    for i in sample:
        ev = events[i]
        got: dict[str, float | None] = {}
        keys = plain_keys(ev)
        for s in by_event.get(ev["type"], ()):
            key = keys.get(s.entity)
            if key is None or any(ev.get(k, True) != v for k, v in s.where.items()):
                continue
            if s.agg == "distinct" and keys.get(s.of or "") is None:
                continue
            if s.agg in ("sum", "last", "change") and not numeric(ev.get(field_of(s) or "amount", 0.0)):
                continue
            lo = int(np.searchsorted(ts, ts[i] - s.seconds, side="right"))  # the rolling window: (t - w, t]
            win = df.iloc[lo : i + 1]
            mask = (win[column.get(s.entity, s.entity)] == key) & win["type"].isin(s.events)
            for k, v in s.where.items():
                mask &= win[k] == v
            hit = win[mask]
            if s.agg == "count":
                got[s.name] = float(len(hit))
            elif s.agg == "sum":
                got[s.name] = float(hit[field_of(s) or "amount"].sum())  # NaN (no such field) is skipped
            elif s.agg == "distinct":
                got[s.name] = float(hit[column.get(s.of or "", s.of or "")].nunique())
            else:
                vals = hit[field_of(s) or "amount"].dropna()
                last = float(vals.iloc[-1]) if len(vals) else None
                got[s.name] = last if s.agg == "last" or last is None else last - float(vals.iloc[0])
        values[i] = got
    return time.perf_counter() - t0, values


def same_value(x: float | None, y: float | None) -> bool:
    if x is None or y is None:
        return x is None and y is None
    return abs(x - y) <= 1e-6 * max(1.0, abs(x))


def compare(
    a: Mapping[int, Mapping[str, float | None]], b: Mapping[int, Mapping[str, float | None]]
) -> tuple[int, int]:
    same = total = 0
    for i, va in a.items():
        vb = b.get(i, {})
        for name in set(va) | set(vb):
            total += 1
            same += name in va and name in vb and same_value(va[name], vb[name])
    return same, total


def check_against_fengkong(
    engine: Engine, plain: PlainWindows, now: float, rng: np.random.Generator
) -> tuple[int, int]:
    """Window values of sampled keys at the end of the stream: fengkong's state vs the plain deques."""
    velocity = engine.online.velocity
    same = total = 0
    for s in plain.specs.values():
        keys = list(plain.series[s.name])
        if not keys:
            continue
        for idx in rng.choice(len(keys), size=min(200, len(keys)), replace=False):
            raw = keys[int(idx)]
            ours = velocity.features({s.entity: fengkong_key(engine.vault, s.entity, raw)}, now)[s.name]
            total += 1
            same += same_value(ours, plain.value(s.name, raw, now))
    return same, total


# ---------------------------------------------------------------------------------------------- 3. HTTP


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fengkong_command() -> list[str]:
    script = Path(sys.executable).with_name("fengkong")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from fengkong.cli import app; app()"]


def bench_http(events: list[dict[str, Any]], warm: list[dict[str, Any]], clients: int, tmp: Path) -> dict[str, Any]:
    db = tmp / f"http-{clients}.db"
    url = f"sqlite:///{db}"
    with Engine(url) as setup:  # the server finds the same secret file beside the database
        key = setup.create_api_key("system", name="benchmark")
    port = free_port()
    log_path = tmp / f"server-{clients}.log"
    bodies = [json.dumps(part).encode() for part in batches(events, HTTP_BATCH)]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [
                *fengkong_command(),
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--database-url",
                url,
                "--log-level",
                "warning",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=tmp,
        )
    base = f"http://127.0.0.1:{port}"
    headers = {"X-API-Key": key, "Content-Type": "application/json"}
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"fengkong serve exited with {proc.returncode}:\n{log_path.read_text()[-2000:]}")
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"fengkong serve did not answer in 60 s:\n{log_path.read_text()[-2000:]}")
            time.sleep(0.2)
        with httpx.Client(timeout=120) as client:
            resp = client.post(f"{base}/v1/events", content=json.dumps(warm).encode(), headers=headers)
            resp.raise_for_status()
        rss0 = rss_bytes(proc.pid)
        lock = threading.Lock()
        todo = iter(range(len(bodies)))
        lat: list[float] = []
        accepted = [0]
        errors: list[str] = []

        def worker() -> None:
            with httpx.Client(timeout=120, headers=headers) as client:
                while True:
                    with lock:
                        j = next(todo, None)
                    if j is None:
                        return
                    t0 = time.perf_counter()
                    r = client.post(f"{base}/v1/events", content=bodies[j])
                    took = time.perf_counter() - t0
                    with lock:
                        lat.append(took)
                        if r.status_code == 200:
                            accepted[0] += r.json()["accepted"]
                        elif len(errors) < 3:
                            errors.append(f"HTTP {r.status_code}: {r.text[:200]}")

        threads = [threading.Thread(target=worker) for _ in range(clients)]
        started = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - started
        rss1 = rss_bytes(proc.pid)
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return {
        "clients": clients,
        "events": len(events),
        "accepted": accepted[0],
        "errors": errors,
        "wall": wall,
        "rate": rate(len(events), wall),
        "lat": np.array(lat),
        "rss_delta": rss1 - rss0,
        "body_bytes": sum(len(b) for b in bodies) / max(1, len(bodies)),
    }


# ---------------------------------------------------------------------------------------------- 5. profile


def profile_ingest(events: list[dict[str, Any]], warm: list[dict[str, Any]], batch: int, tmp: Path) -> None:
    engine = new_engine(tmp / "profile.db")
    engine.ingest(warm)
    prof = cProfile.Profile()
    gc.collect()
    prof.enable()
    for part in batches(events, batch):
        engine.ingest(part)
    prof.disable()
    engine.close()
    stats = pstats.Stats(prof)
    entries: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    total = stats.total_tt  # type: ignore[attr-defined]
    n = len(events)

    def where(func: tuple[str, int, str]) -> str:
        path, line, name = func
        if path == "~":
            return name
        parts = Path(path).parts
        for anchor in ("site-packages", "src", "lib"):
            if anchor in parts:
                parts = parts[len(parts) - parts[::-1].index(anchor) :]
                break
        short = "/".join(parts[-3:])
        return f"{short}:{line}({name})"

    print(f"cProfile of Engine.ingest, {n:,} events in batches of {batch:,}: {total:.2f} s profiled")
    for title, idx in (("by own time (tottime)", 2), ("by cumulative time", 3)):
        print(f"top 18 {title}:")
        print(f"{'calls':>10}{'own s':>8}{'own %':>7}{'cum s':>8}{'cum %':>7}{'µs/event':>10}  function")
        ranked = sorted(entries.items(), key=lambda kv: kv[1][idx], reverse=True)[:18]
        for func, (_cc, nc, tt, ct, _callers) in ranked:
            print(
                f"{nc:>10,}{tt:>8.2f}{100 * tt / total:>6.1f}%{ct:>8.2f}{100 * ct / total:>6.1f}%"
                f"{(tt if idx == 2 else ct) * 1e6 / n:>10.2f}  {where(func)}"
            )


# ---------------------------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200_000, help="events ingested in-process (default 200,000)")
    parser.add_argument(
        "--http-events", type=int, default=30_000, help="events POSTed over HTTP per run (default 30,000)"
    )
    parser.add_argument("--clients", default="1,4", help="concurrent HTTP clients to try, comma-separated")
    parser.add_argument("--customers", type=int, default=50_000)
    parser.add_argument("--days", type=float, default=7.0, help="time span of the stream (default 7 days)")
    parser.add_argument("--pandas-sample", type=int, default=300, help="events recounted by pandas (default 300)")
    parser.add_argument(
        "--split-events", type=int, default=30_000, help="events in the stage-timed run (default 30,000)"
    )
    parser.add_argument("--profile-events", type=int, default=10_000, help="events profiled if the target is missed")
    parser.add_argument("--no-http", action="store_true")
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument("--seed", type=int, default=20261123)
    args = parser.parse_args()

    started = time.perf_counter()
    print("fengkong event ingestion benchmarks")
    cpu = "?"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), "?")
    except OSError:
        pass
    print(
        f"machine: {platform.machine()} {platform.system()} {platform.release()}, {cpu}, cpu count {os.cpu_count()}, "
        f"usable {len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else '?'}"
    )
    print(
        f"python {platform.python_version()} ({sys.implementation.name}), sqlalchemy {sa.__version__}, "
        f"pydantic {pydantic.__version__}, pandas {pd.__version__}, numpy {np.__version__}, httpx {httpx.__version__}, "
        f"sqlite {sqlite3.sqlite_version}, fengkong {fengkong.__version__}"
    )
    load = " ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    print(f"load average at start: {load} (other work on the machine makes figures noisy); seed {args.seed}")
    print(f"code: {git_state()}; fengkong imported from {Path(fengkong.__file__).parent}")

    specs = load_windows()
    rng = np.random.default_rng(args.seed)
    t0 = time.perf_counter()
    world = make_world(rng, args.customers)
    end = dt.datetime.now(CST) - dt.timedelta(minutes=1)
    n = args.events
    events = make_events(rng, world, n, "evt-", end, args.days)
    # warm-up events, older than the longest window by the stream's end, so they change no window figure
    horizon = max(s.seconds for s in specs) + args.days * 86400 + 86400
    warm = make_events(rng, world, 1_000, "warm-", end - dt.timedelta(seconds=horizon), 0.5)
    ts = np.array([dt.datetime.fromisoformat(e["occurred_at"]).timestamp() for e in events])
    kinds = Counter("login_failed" if e["type"] == "login" and not e["success"] else e["type"] for e in events)
    shared = Counter(e["device_id"] for e in events if "device_id" in e)
    print(
        f"stream: {n:,} events over {args.days:g} days from {args.customers:,} customers "
        f"(generated in {time.perf_counter() - t0:.1f} s); "
        + ", ".join(f"{k} {100 * v / n:.1f}%" for k, v in kinds.most_common())
    )
    print(
        f"        {len({e['customer_id'] for e in events}):,} customers active, {len(shared):,} devices "
        f"({sum(1 for d in shared if d.startswith(('fam-', 'farm-'))):,} shared by families or rings), "
        f"{len({e['merchant_id'] for e in events if 'merchant_id' in e}):,} merchants, "
        f"{len({e['payee'] for e in events if 'payee' in e}):,} payees; "
        f"{len(specs)} windows from windows.yaml; {sum(e.get('device_id') is not None for e in events):,} events "
        "carry a device and IP"
    )

    table: list[tuple[str, ...]] = []
    with tempfile.TemporaryDirectory(prefix="fengkong-bench-ingest-") as tmp_name:
        tmp = Path(tmp_name)

        # 1. in-process
        header(f"1. In-process Engine.ingest on SQLite: {n:,} events, all windows and graph updates, persisted")
        runs = [bench_inprocess(events, warm, 1_000, tmp, keep=True)]
        gc.collect()
        runs.append(bench_inprocess(events, warm, 10_000, tmp))
        gc.collect()
        runs.append(bench_inprocess(events, warm, 1_000, tmp, tuned=True))
        report_inprocess(runs, n, table)
        cli = bench_cli(events, warm, tmp)
        print(
            f"the command itself, `fengkong ingest FILE.jsonl` (batches of {cli['batch']:,}, whole process: start-up, "
            f"reading and parsing the file, progress): {cli['rate']:,.0f} events/s, wall {cli['wall']:.1f} s, "
            f"accepted {cli['accepted']:,}" + (f"; error: {cli['error']}" if cli["error"] else "")
        )
        table.append(
            (
                "`fengkong ingest FILE.jsonl`, whole command",
                f"{cli['rate']:,.0f}",
                "",
                "",
                f">= {TARGET_INPROCESS:,}",
                verdict(cli["rate"], TARGET_INPROCESS),
            )
        )
        best = max(r["rate"] for r in runs)
        print(
            f"target >= {TARGET_INPROCESS:,} events/s: best {best:,.0f} -> {verdict(best, TARGET_INPROCESS)} "
            f"({100 * best / TARGET_INPROCESS:.0f}% of target)"
        )
        engine: Engine = runs[0].pop("engine")

        # baselines (same events, same process)
        sample_rng = np.random.default_rng(args.seed + 7)
        sample = sorted(int(i) for i in sample_rng.choice(n, size=min(args.pandas_sample, n), replace=False))
        plain_s, plain, plain_values = bench_plain(events, ts, specs, set(sample))
        plain_bytes = plain.size()
        plain_marginal = (plain_bytes - plain.mid_bytes) * 1e6 / (n - n // 2)
        window_check = check_against_fengkong(engine, plain, float(ts[-1]), sample_rng)
        engine.close()
        del engine
        gc.collect()

        # 2. split
        header("2. Where fengkong's time goes: the same ingest, stages timed; online-state update alone")
        split = bench_split(events[: args.split_events], warm, 1_000, tmp, prefix_rate(runs[0], args.split_events))
        observations = prepare_observations(events)
        obs = bench_observe(observations)
        del observations
        gc.collect()
        print(
            f"OnlineFeatures.observe alone on the same {n:,} prepared observations (fresh state): "
            f"{rate(n, obs['observe']):,.0f} events/s ({obs['observe'] * 1e6 / n:.2f} µs/event); velocity windows "
            f"only {rate(n, obs['velocity']):,.0f}/s ({obs['velocity'] * 1e6 / n:.2f} µs), link graph only "
            f"{rate(n, obs['graph']):,.0f}/s ({obs['graph'] * 1e6 / n:.2f} µs)"
        )
        print(
            f"so of Engine.ingest's {1e6 / runs[0]['rate']:.1f} µs/event (batch 1,000, uninstrumented), the online "
            f"state is {obs['observe'] * 1e6 / n:.1f} µs ({100 * obs['observe'] * runs[0]['rate'] / n:.0f}%) "
            f"and the rest {1e6 / runs[0]['rate'] - obs['observe'] * 1e6 / n:.1f} µs"
        )
        table.append(
            (
                "online-state update only, events/s",
                f"{rate(n, obs['observe']):,.0f}",
                f"{rate(n, plain_s):,.0f}",
                ratio(plain_s, obs["observe"]),
                "",
                "",
            )
        )

        # 3. HTTP
        if not args.no_http:
            m = min(args.http_events, n)
            header(f"3. Over HTTP: fengkong serve (uvicorn, 1 process), POST /v1/events, batches of {HTTP_BATCH:,}")
            http_runs = []
            for c in (int(x) for x in args.clients.split(",") if x.strip()):
                r = bench_http(events[:m], warm, c, tmp)
                http_runs.append(r)
            print(
                f"{m:,} events per run ({m // HTTP_BATCH} requests of ~{http_runs[0]['body_bytes'] / 1e3:,.0f} kB), "
                "each run on a fresh server and database; client and server share the machine's cores"
            )
            print(f"{'clients':>8}{'events/s':>11}{'wall s':>8}{'req p50 ms':>12}{'p99 ms':>9}{'accepted':>10}  server")
            for r in http_runs:
                print(
                    f"{r['clients']:>8}{r['rate']:>11,.0f}{r['wall']:>8.1f}{np.percentile(r['lat'], 50) * 1e3:>12.1f}"
                    f"{np.percentile(r['lat'], 99) * 1e3:>9.1f}{r['accepted']:>10,}  +{mb(r['rss_delta'])} "
                    f"({mb(r['rss_delta'] * 1e6 / m)} per 1M)"
                )
                for e in r["errors"]:
                    print(f"    error: {e}")
                table.append(
                    (
                        f"HTTP events/s, {r['clients']} client(s)",
                        f"{r['rate']:,.0f}",
                        "",
                        "",
                        f">= {TARGET_HTTP:,}",
                        verdict(r["rate"], TARGET_HTTP),
                    )
                )
            best_http = max(r["rate"] for r in http_runs)
            inproc = prefix_rate(runs[0], m)
            print(
                f"target >= {TARGET_HTTP:,} events/s: best {best_http:,.0f} -> {verdict(best_http, TARGET_HTTP)}; "
                f"in-process on the same first {m:,} events (batch 1,000): {inproc:,.0f}/s, so HTTP keeps "
                f"{100 * best_http / inproc:.0f}% of it"
            )

        # 4. baselines, reported
        header("4. Baselines on the same events")
        df = pandas_frame(events, ts, specs)
        pandas_s, pandas_values = bench_pandas(df, events, specs, sample)
        del df
        pandas_full = pandas_s * n / len(sample)
        same_pd, total_pd = compare(pandas_values, plain_values)
        fk_full = n / runs[0]["rate"]
        print(
            f"(a) pandas recount per event (window values recomputed from the frame of prior events, rolling (t-w, t] "
            f"slice by searchsorted, then boolean filters):\n    {len(sample):,} sampled events in {pandas_s:.2f} s "
            f"= {rate(len(sample), pandas_s):,.0f} events/s -> {pandas_full:,.0f} s for {n:,} events "
            f"(extrapolated; cost grows with the prior stream, the sample is uniform over it)"
        )
        print(
            f"    ratio pandas/fengkong (full ingest, batch 1,000): {ratio(pandas_full, fk_full)}; its window values "
            f"equal the plain deques' on {same_pd:,}/{total_pd:,} (event, window) pairs"
        )
        print(
            f"(b) plain dict of deques, same {len(plain.specs)} windows"
            + (
                f" (left out: {', '.join(s.name for s in specs if s.name not in plain.specs)})"
                if len(plain.specs) < len(specs)
                else ""
            )
            + ", no validation / hashing / persistence / graph: "
            f"{plain_s:.2f} s = {rate(n, plain_s):,.0f} events/s ({plain_s * 1e6 / n:.2f} µs/event); "
            f"memory {mb(plain_bytes)} = {mb(plain_bytes * 1e6 / n)} per million events on average, "
            f"{mb(plain_marginal)} marginal"
        )
        print(
            f"    ratio plain/fengkong: full ingest {ratio(plain_s, fk_full)}; online-state update only "
            f"{ratio(plain_s, obs['observe'])}; velocity windows only {ratio(plain_s, obs['velocity'])}"
        )
        print(
            f"    fengkong's window values equal the plain deques' for {window_check[0]:,}/{window_check[1]:,} "
            "sampled (window, key) pairs at the end of the stream"
        )
        su = 1e6 / split["events"]
        print(
            f"    cost split: of fengkong's {1e6 / runs[0]['rate']:.1f} µs/event, the plain windows' own work is "
            f"{plain_s * 1e6 / n:.1f} µs; fengkong's online state {obs['observe'] * 1e6 / n:.1f} µs (windows "
            f"{obs['velocity'] * 1e6 / n:.1f} + graph {obs['graph'] * 1e6 / n:.1f}); persistence "
            f"{split['db'] * su:.1f} µs; validation + hashing {(split['parse_events'] + split['protect']) * su:.1f} µs"
            + (f"; event triggers {split['triggers'] * su:.1f} µs" if "triggers" in split else "")
            + " (section 2)"
        )
        table.append(("per event, persistence (DB transaction), µs", f"{split['db'] * su:.1f}", "", "", "", ""))
        table.append(
            (
                "per event, validation + identifier hashing, µs",
                f"{(split['parse_events'] + split['protect']) * su:.1f}",
                "",
                "",
                "",
                "",
            )
        )
        table.append(
            (
                "per event, online-state update, µs",
                f"{obs['observe'] * 1e6 / n:.1f}",
                f"{plain_s * 1e6 / n:.1f}",
                ratio(plain_s, obs["observe"]),
                "",
                "",
            )
        )
        if "triggers" in split:
            table.append(("per event, event triggers, µs", f"{split['triggers'] * su:.1f}", "", "", "", ""))
        table.append(
            (
                "in-process ingest vs pandas recount, ev/s",
                f"{runs[0]['rate']:,.0f}",
                f"{rate(len(sample), pandas_s):,.0f}*",
                ratio(pandas_full, fk_full),
                "",
                "",
            )
        )
        table.append(
            (
                "in-process ingest vs plain deques, ev/s",
                f"{runs[0]['rate']:,.0f}",
                f"{rate(n, plain_s):,.0f}",
                ratio(plain_s, fk_full),
                "",
                "",
            )
        )
        per_m = 1e6 / n
        state_pm = (runs[0]["windows_bytes"] + runs[0]["graph_bytes"]) * per_m
        table.append(
            (
                "online-state memory per 1M events, average",
                mb(state_pm),
                mb(plain_bytes * per_m),
                ratio(plain_bytes * per_m, state_pm),
                "stated",
                "",
            )
        )
        table.append(
            (
                "online-state memory per 1M events, marginal",
                mb(runs[0]["marginal_state"]),
                mb(plain_marginal),
                ratio(plain_marginal, runs[0]["marginal_state"]),
                "stated",
                "",
            )
        )
        table.append(("  of which velocity windows", mb(runs[0]["windows_bytes"] * per_m), "", "", "", ""))
        table.append(("  process RSS growth per 1M events", mb(runs[0]["rss_delta"] * per_m), "", "", "", ""))

        # 5. profile
        if best < TARGET_INPROCESS and not args.no_profile:
            header("5. Profile: in-process ingestion misses its target")
            profile_ingest(events[: args.profile_events], warm, 1_000, tmp)

    header("Summary (ratio = plain / fengkong time or memory; above 1 = fengkong faster or smaller; * = extrapolated)")
    cols = ("measure", "fengkong", "plain way", "ratio", "target", "")
    widths = [max(len(str(r[i])) for r in (cols, *table)) for i in range(len(cols))]
    for r in (cols, *table):
        print(
            "  ".join(
                str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))
            )
        )
    print(
        "plain ways: pandas recount per event (extrapolated from a sample); dict of deques (no validation, hashing,\n"
        "persistence, idempotency or graph). fengkong figures include all of those."
    )
    load = " ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    print(f"\ntotal run time {time.perf_counter() - started:.0f} s; load average at end: {load}")


if __name__ == "__main__":
    main()
