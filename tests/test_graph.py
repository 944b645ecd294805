"""The entity-link graph: rings are found, and honest sharing (office IP, family phone, busy terminal) is not a ring."""

from __future__ import annotations

import random
import sys
import threading
import time

import pytest

from fengkong.features.graph import (
    GRAPH_FEATURES,
    GRAPH_GROUP_DECLINED,
    GRAPH_GROUP_FRAUD,
    GRAPH_GROUP_SIZE,
    GRAPH_HOPS_TO_FRAUD,
    GRAPH_SHARED_IDENTIFIERS,
    EntityGraph,
    register_graph_features,
)
from fengkong.features.registry import FeatureRegistry, FeatureType

FEATURE_NAMES = {
    GRAPH_GROUP_SIZE,
    GRAPH_GROUP_DECLINED,
    GRAPH_GROUP_FRAUD,
    GRAPH_SHARED_IDENTIFIERS,
    GRAPH_HOPS_TO_FRAUD,
}
NOTHING_ALARMING = {GRAPH_GROUP_DECLINED: 0.0, GRAPH_GROUP_FRAUD: 0.0, GRAPH_HOPS_TO_FRAUD: None}


def size(graph: EntityGraph, customer: str, identifiers: dict[str, str] | None = None) -> float | None:
    return graph.features(customer, identifiers)[GRAPH_GROUP_SIZE]


# ------------------------------------------------------------------------------------------------ groups


def test_ring_sharing_devices_and_phones_is_one_group() -> None:
    g = EntityGraph()
    # a ring of 5: a-b share a device, b-c a phone, c-d a device, d-e a phone
    g.link("a", {"device": "d1", "phone": "pa", "id_number": "ia"})
    g.link("b", {"device": "d1", "phone": "p1", "id_number": "ib"})
    g.link("c", {"device": "d2", "phone": "p1", "id_number": "ic"})
    g.link("d", {"device": "d2", "phone": "p2", "id_number": "id"})
    g.link("e", {"device": "de", "phone": "p2", "id_number": "ie"})
    g.link("outsider", {"device": "dx", "phone": "px", "id_number": "ix"})

    for member in "abcde":
        f = g.features(member)
        assert set(f) == FEATURE_NAMES
        assert f[GRAPH_GROUP_SIZE] == 5.0
    assert g.features("a")[GRAPH_SHARED_IDENTIFIERS] == 1.0  # its device
    assert g.features("c")[GRAPH_SHARED_IDENTIFIERS] == 2.0  # device with d, phone with b
    assert g.features("outsider") == {
        GRAPH_GROUP_SIZE: 1.0,
        GRAPH_SHARED_IDENTIFIERS: 0.0,
        **NOTHING_ALARMING,
    }
    assert len(g) == 6


def test_unknown_customer_is_a_group_of_one() -> None:
    g = EntityGraph()
    g.link("a", {"device": "d1"})
    assert g.features("nobody") == {GRAPH_GROUP_SIZE: 1.0, GRAPH_SHARED_IDENTIFIERS: 0.0, **NOTHING_ALARMING}
    assert len(g) == 1  # asking does not create the customer


def test_given_identifiers_count_the_links_they_would_make_without_mutating() -> None:
    g = EntityGraph()
    for c in ("a1", "a2", "a3"):
        g.link(c, {"device": "dev-a", "phone": f"p-{c}"})
    for c in ("b1", "b2"):
        g.link(c, {"phone": "phone-b", "device": f"d-{c}"})
    g.mark("a1", declined=True)
    g.mark("b1", fraud=True)

    # a new applicant bringing dev-a and phone-b bridges both groups: 3 + 2 + itself
    application = {"device": "dev-a", "phone": "phone-b", "bank_card": "never-seen", "ip": "office"}
    f = g.features("new", application)
    assert f == {
        GRAPH_GROUP_SIZE: 6.0,
        GRAPH_GROUP_DECLINED: 1.0,
        GRAPH_GROUP_FRAUD: 1.0,
        GRAPH_SHARED_IDENTIFIERS: 2.0,
        GRAPH_HOPS_TO_FRAUD: 1.0,
    }
    # an existing customer's own links plus the application's
    f = g.features("a2", {"phone": "phone-b"})
    assert f[GRAPH_GROUP_SIZE] == 5.0
    assert f[GRAPH_SHARED_IDENTIFIERS] == 2.0
    assert f[GRAPH_HOPS_TO_FRAUD] == 1.0
    # repeating an identifier the customer already has adds nothing
    assert size(g, "a2", {"device": "dev-a"}) == 3.0

    # nothing was linked by asking
    assert len(g) == 5
    assert g.features("new") == {GRAPH_GROUP_SIZE: 1.0, GRAPH_SHARED_IDENTIFIERS: 0.0, **NOTHING_ALARMING}
    assert size(g, "a2") == 3.0
    assert size(g, "b2") == 2.0
    assert g.features("a2")[GRAPH_HOPS_TO_FRAUD] is None

    # once linked for real, the same answer comes from the graph itself
    g.link("new", application)
    assert size(g, "new") == 6.0
    assert size(g, "a2") == 6.0


def test_declined_and_fraud_counts_exclude_the_customer_itself() -> None:
    g = EntityGraph()
    for c in ("x", "y", "z"):
        g.link(c, {"device": "shared"})
    g.mark("x", declined=True, fraud=True)
    g.mark("y", fraud=True, blacklisted=True)  # fraud and blacklisted: one customer, counted once

    fx, fy, fz = g.features("x"), g.features("y"), g.features("z")
    assert (fx[GRAPH_GROUP_DECLINED], fx[GRAPH_GROUP_FRAUD]) == (0.0, 1.0)
    assert (fy[GRAPH_GROUP_DECLINED], fy[GRAPH_GROUP_FRAUD]) == (1.0, 1.0)
    assert (fz[GRAPH_GROUP_DECLINED], fz[GRAPH_GROUP_FRAUD]) == (1.0, 2.0)

    g.mark("z", blacklisted=True)  # blacklisted alone counts as fraud for the others
    assert g.features("x")[GRAPH_GROUP_FRAUD] == 2.0


# -------------------------------------------------------------------------------------------------- hops


def test_hops_to_fraud() -> None:
    g = EntityGraph()
    names = [f"c{i}" for i in range(7)]  # c0 - c1 - ... - c6, one shared identifier per hop
    for i in range(6):
        g.link(names[i], {"device": f"dev{i}"})
        g.link(names[i + 1], {"device": f"dev{i}"})
    g.mark("c0", fraud=True)

    hops = [g.features(n)[GRAPH_HOPS_TO_FRAUD] for n in names]
    assert hops == [0.0, 1.0, 2.0, 3.0, 4.0, None, None]  # searched up to 4 hops
    # beyond reach of the search, still in the group: the counters say so
    assert g.features("c6")[GRAPH_GROUP_FRAUD] == 1.0
    assert g.features("c6")[GRAPH_GROUP_SIZE] == 7.0
    # an application bringing dev1 (shared by c1 and c2) is two hops from c0, through c1
    assert g.features("new", {"device": "dev1"})[GRAPH_HOPS_TO_FRAUD] == 2.0
    assert g.features("new", {"device": "dev0"})[GRAPH_HOPS_TO_FRAUD] == 1.0
    # a nearer fraudster wins
    g.mark("c5", blacklisted=True)
    assert g.features("c6")[GRAPH_HOPS_TO_FRAUD] == 1.0
    assert g.features("c3")[GRAPH_HOPS_TO_FRAUD] == 2.0


def test_hops_through_weak_identifiers_do_not_exist() -> None:
    g = EntityGraph()
    g.link("fraudster", {"ip": "10.0.0.1", "employer": "acme", "device": "df"})
    g.link("colleague", {"ip": "10.0.0.1", "employer": "acme", "device": "dc"})
    g.mark("fraudster", fraud=True)
    assert g.features("colleague") == {GRAPH_GROUP_SIZE: 1.0, GRAPH_SHARED_IDENTIFIERS: 0.0, **NOTHING_ALARMING}
    assert g.features("new", {"ip": "10.0.0.1", "employer": "acme"})[GRAPH_GROUP_SIZE] == 1.0


def test_hop_search_is_bounded_by_its_node_budget() -> None:
    def tree(budget: int) -> EntityGraph:
        # root → 10 children → 10 grandchildren each → the fraudster under the last grandchild
        g = EntityGraph(hop_budget=budget)
        for i in range(10):
            child = f"k{i}"
            g.link("root", {"device": f"dr{i}"})
            g.link(child, {"device": f"dr{i}"})
            for j in range(10):
                g.link(child, {"phone": f"p{i}.{j}"})
                g.link(f"g{i}.{j}", {"phone": f"p{i}.{j}"})
        g.link("g9.9", {"bank_card": "bc"})
        g.link("fraudster", {"bank_card": "bc"})
        g.mark("fraudster", fraud=True)
        return g

    assert tree(budget=10_000).features("root")[GRAPH_HOPS_TO_FRAUD] == 3.0
    small = tree(budget=50).features("root")  # 110 customers within 2 hops exceed the budget: give up
    assert small[GRAPH_HOPS_TO_FRAUD] is None
    assert small[GRAPH_GROUP_FRAUD] == 1.0  # the group counter still tells


# ----------------------------------------------------------------------------------------------- fairness


def test_office_ip_shared_by_200_honest_customers_links_no_one() -> None:
    g = EntityGraph()
    for i in range(200):
        g.link(f"staff{i}", {"ip": "office-nat", "employer": "big-corp", "device": f"d{i}", "phone": f"p{i}"})
    g.mark("staff0", fraud=True)  # even if one colleague turns out to be a fraudster
    g.mark("staff1", declined=True)
    for i in range(2, 200):
        assert g.features(f"staff{i}") == {GRAPH_GROUP_SIZE: 1.0, GRAPH_SHARED_IDENTIFIERS: 0.0, **NOTHING_ALARMING}
    # a new colleague applying from the office
    assert g.features("staff200", {"ip": "office-nat", "employer": "big-corp", "device": "d200"}) == {
        GRAPH_GROUP_SIZE: 1.0,
        GRAPH_SHARED_IDENTIFIERS: 0.0,
        **NOTHING_ALARMING,
    }
    assert g.communities(min_size=2) == {}


def test_family_phone_shared_by_three_links_three_and_nothing_alarming() -> None:
    g = EntityGraph()
    for member in ("mother", "father", "daughter"):
        g.link(member, {"phone": "home-phone", "device": f"dev-{member}", "id_number": f"id-{member}"})
    g.link("neighbour", {"phone": "other", "device": "dev-n"})
    for member in ("mother", "father", "daughter"):
        assert g.features(member) == {GRAPH_GROUP_SIZE: 3.0, GRAPH_SHARED_IDENTIFIERS: 1.0, **NOTHING_ALARMING}
    assert size(g, "neighbour") == 1.0


def test_hub_identifier_stops_joining_new_customers() -> None:
    g = EntityGraph()  # hub_limit 20
    for i in range(500):
        g.link(f"shopper{i}", {"device": "payment-terminal", "phone": f"p{i}"})
    assert size(g, "shopper0") == 20.0  # the first 20 were joined before it became a hub
    assert size(g, "shopper19") == 20.0
    for i in (20, 21, 250, 499):
        assert g.features(f"shopper{i}") == {GRAPH_GROUP_SIZE: 1.0, GRAPH_SHARED_IDENTIFIERS: 0.0, **NOTHING_ALARMING}
    assert size(g, "newcomer", {"device": "payment-terminal"}) == 1.0
    # a fraudster at the terminal later on reaches no one through it
    g.mark("shopper300", fraud=True)
    assert g.features("shopper301")[GRAPH_GROUP_FRAUD] == 0.0

    # a device farm of 8 is well under the limit: all 8 joined
    for i in range(8):
        g.link(f"farm{i}", {"device": "farm-device", "bank_card": f"bc{i}"})
    assert {size(g, f"farm{i}") for i in range(8)} == {8.0}


def test_hub_limit_is_configurable() -> None:
    g = EntityGraph(hub_limit=3)
    for i in range(5):
        g.link(f"c{i}", {"address": "dormitory"})
    assert [size(g, f"c{i}") for i in range(5)] == [3.0, 3.0, 3.0, 1.0, 1.0]
    assert size(g, "new", {"address": "dormitory"}) == 1.0
    g2 = EntityGraph(hub_limit=3)
    for i in range(2):
        g2.link(f"c{i}", {"address": "flat"})
    assert size(g2, "new", {"address": "flat"}) == 3.0  # room for one more
    with pytest.raises(ValueError):
        EntityGraph(hub_limit=0)


# ----------------------------------------------------------------------------------------------- updates


def test_link_is_idempotent() -> None:
    g = EntityGraph(hub_limit=2)
    for _ in range(5):  # a replayed or retried event is not a new customer on the identifier
        g.link("a", {"device": "d", "phone": "pa", "ip": "1.1.1.1"})
    g.link("a", {"device": "d"})
    g.link("b", {"device": "d", "phone": "pb"})
    g.link("b", {"device": "d", "phone": "pb"})
    assert size(g, "a") == 2.0  # b still fits under the limit of 2: a's repeats used no capacity
    assert g.features("a")[GRAPH_SHARED_IDENTIFIERS] == 1.0
    assert g.features("b")[GRAPH_SHARED_IDENTIFIERS] == 1.0
    g.mark("b", declined=True)
    g.link("b", {"device": "d"})
    assert g.features("a")[GRAPH_GROUP_DECLINED] == 1.0
    assert len(g) == 2


def test_empty_keys_are_ignored_and_unknown_kinds_refused() -> None:
    g = EntityGraph()
    g.link("a", {"device": "", "phone": "pa"})
    g.link("b", {"device": "", "phone": "pb"})
    assert size(g, "a") == 1.0  # a missing device does not link everyone whose device is missing
    with pytest.raises(ValueError, match="mobile"):
        g.link("c", {"phone": "pa", "mobile": "x"})
    assert len(g) == 2  # refused whole: nothing half-applied
    assert size(g, "a") == 1.0
    with pytest.raises(ValueError):
        g.features("a", {"imei": "x"})


def test_unmark() -> None:
    g = EntityGraph()
    g.link("a", {"device": "d"})
    g.link("b", {"device": "d"})
    g.mark("a", declined=True, fraud=True, blacklisted=True)
    assert g.features("b")[GRAPH_GROUP_FRAUD] == 1.0
    assert g.features("b")[GRAPH_HOPS_TO_FRAUD] == 1.0

    g.mark("a", fraud=False)  # still blacklisted
    assert g.features("b")[GRAPH_GROUP_FRAUD] == 1.0
    g.mark("a", blacklisted=False)  # e.g. found to be an identity-theft victim
    fb = g.features("b")
    assert fb[GRAPH_GROUP_FRAUD] == 0.0
    assert fb[GRAPH_HOPS_TO_FRAUD] is None
    assert fb[GRAPH_GROUP_DECLINED] == 1.0  # None leaves the decline as it was
    g.mark("a", declined=False)  # appeal upheld
    assert g.features("b") == {GRAPH_GROUP_SIZE: 2.0, GRAPH_SHARED_IDENTIFIERS: 1.0, **NOTHING_ALARMING}
    g.mark("a", declined=False)  # clearing twice changes nothing
    assert g.features("b")[GRAPH_GROUP_DECLINED] == 0.0


def test_marks_survive_merges() -> None:
    g = EntityGraph()
    g.mark("f", fraud=True)  # marked before any link (e.g. a blacklist entry loaded at start-up)
    g.mark("d", declined=True)
    g.link("f", {"device": "df"})
    g.link("d", {"phone": "pd"})
    g.link("x", {"device": "df", "phone": "pd"})  # x bridges them
    fx = g.features("x")
    assert (fx[GRAPH_GROUP_SIZE], fx[GRAPH_GROUP_DECLINED], fx[GRAPH_GROUP_FRAUD]) == (3.0, 1.0, 1.0)
    g.mark("f", fraud=False)  # the unmark lands on the merged group's counter
    assert g.features("x")[GRAPH_GROUP_FRAUD] == 0.0
    assert g.features("d")[GRAPH_GROUP_FRAUD] == 0.0


# ------------------------------------------------------------------------------------------- communities


def planted_rings(order: list[int] | None = None) -> EntityGraph:
    """Two rings of 6 (each sharing a device farm and a phone pool) joined by one shared bank card."""
    links: list[tuple[str, dict[str, str]]] = []
    for ring in ("A", "B"):
        for i in range(6):
            links.append((f"{ring}{i}", {"device": f"farm-{ring}-{i % 2}", "phone": f"pool-{ring}-{i % 3}"}))
    links.append(("A0", {"bank_card": "mule-card"}))
    links.append(("B0", {"bank_card": "mule-card"}))
    links.append(("loner1", {"device": "pair"}))  # a pair: below min_size
    links.append(("loner2", {"device": "pair"}))
    g = EntityGraph()
    for k in order or range(len(links)):
        g.link(*links[k])
    return g


def test_communities_separate_two_rings_joined_by_a_weak_bridge() -> None:
    g = planted_rings()
    assert size(g, "A1") == 12.0  # one connected group online...
    groups = g.communities(min_size=3, seed=0)
    found: dict[int, set[str]] = {}
    for customer, group in groups.items():
        found.setdefault(group, set()).add(customer)
    # ...but two communities
    assert sorted(map(sorted, found.values())) == [[f"A{i}" for i in range(6)], [f"B{i}" for i in range(6)]]
    assert "loner1" not in groups
    assert set(g.communities(min_size=2, seed=0)) >= {"loner1", "loner2"}


def test_communities_are_deterministic_for_a_seed() -> None:
    g = planted_rings()
    first = g.communities(seed=7)
    assert all(g.communities(seed=7) == first for _ in range(3))
    order = list(range(14))
    random.Random(3).shuffle(order)
    assert planted_rings(order).communities(seed=7) == first  # arrival order does not matter


def test_communities_leave_out_hubs() -> None:
    g = EntityGraph(hub_limit=5)
    for i in range(6):  # 5 joined, then the 6th makes it a hub
        g.link(f"c{i}", {"device": "kiosk"})
    assert size(g, "c0") == 5.0
    assert g.communities(min_size=2) == {}  # with hindsight, the kiosk is not evidence


# --------------------------------------------------------------------------------------- registry, threads


def test_register_graph_features() -> None:
    registry = FeatureRegistry()
    register_graph_features(registry)
    assert set(registry.names()) == FEATURE_NAMES
    for feature in registry:
        assert feature.type is FeatureType.NUMBER
        assert feature.group == "graph"
        assert feature.description
    assert {f.name for f in GRAPH_FEATURES} == set(EntityGraph().features("x"))
    with pytest.raises(ValueError):
        register_graph_features(registry)


def test_thread_safety_smoke() -> None:
    g = EntityGraph()
    n, workers = 20_000, 4
    errors: list[BaseException] = []

    def work(t: int) -> None:
        try:
            # customer i shares device i with customer i-1 and device i+1 with customer i+1; the threads
            # interleave, so every union crosses threads
            for i in range(t, n, workers):
                g.link(f"c{i}", {"device": f"d{i}"})
                g.link(f"c{i}", {"device": f"d{i + 1}", "ip": "shared-ip"})
                if i % 100 == 0:
                    g.mark(f"c{i}", declined=True)
                    g.features(f"c{i}", {"phone": "p"})
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(workers)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible, to expose a missing lock
    try:
        for th in threads:
            th.start()
        for th in threads:
            th.join()
    finally:
        sys.setswitchinterval(interval)
    assert not errors
    assert len(g) == n
    f = g.features("c1")
    assert f[GRAPH_GROUP_SIZE] == float(n)
    assert f[GRAPH_GROUP_DECLINED] == float(n // 100)
    assert g.features("c0")[GRAPH_GROUP_DECLINED] == float(n // 100 - 1)


# ------------------------------------------------------------------------------------------ performance


def test_performance_sanity_100k_customers() -> None:
    rng = random.Random(42)
    n = 100_000
    rows = [
        (
            f"cust{i}",
            {
                "device": f"d{rng.randrange(1_000_000)}",
                "phone": f"p{rng.randrange(1_000_000)}",
                "id_number": f"id{i}",
                "bank_card": f"b{rng.randrange(1_000_000)}",
                "ip": f"ip{rng.randrange(2_000)}",  # weak: 50 customers per IP, linking no one
                "employer": f"e{rng.randrange(500)}",
            },
        )
        for i in range(n)
    ]
    g = EntityGraph()
    start = time.perf_counter()
    for customer, identifiers in rows:
        g.link(customer, identifiers)
    link_seconds = time.perf_counter() - start
    for i in range(0, n, 100):
        g.mark(f"cust{i}", fraud=True)
    for i in range(1, n, 20):
        g.mark(f"cust{i}", declined=True)

    queries = 20_000
    start = time.perf_counter()
    for i in range(queries):
        g.features(f"cust{i}")
    for i in range(queries):
        g.features(f"app{i}", rows[i][1])
    query_seconds = time.perf_counter() - start
    print(
        f"\nentity graph: linked {n:,} customers in {link_seconds:.2f} s ({n / link_seconds:,.0f}/s); "
        f"{2 * queries:,} feature queries in {query_seconds:.2f} s ({2 * queries / query_seconds:,.0f}/s)"
    )
    assert len(g) == n
    assert link_seconds < 10.0
    # the random sharing made some links (~0.3 per customer), but no giant group through weak IPs
    sizes = [g.features(f"cust{i}")[GRAPH_GROUP_SIZE] for i in range(0, n, 997)]
    assert max(s for s in sizes if s is not None) < 100
    assert any(s is not None and s > 1 for s in sizes)
