"""The entity-link graph: customers joined through the identifiers they share.

Fraud rings reuse what is scarce to them: a handful of phones, devices, ID numbers and bank cards behind many
applications. Two customers who share such an identifier are *linked*; the linked groups, the decisions on
their members and the distance to a known fraudster are strong signals at decision time.

The same signals wrong honest people when sharing is innocent, so two rules keep the graph fair:

* **Weak identifiers are not links.** An office or campus IP is shared by hundreds of colleagues and an employer
  by thousands; they are recorded (so analysts can see them) but never join a group.
* **Hubs stop joining.** A strong identifier links at most ``hub_limit`` customers. A family phone shared by 3
  joins 3 and a device farm of 8 joins 8, but a payment terminal or a shared address used by 500 is a hub: once
  a customer beyond the limit arrives it joins no one new, so one busy identifier cannot merge a city into a
  "ring". (Counting many customers per device is a velocity feature, not a graph link.)

Decision-time cost matters (the whole decision has a 2 ms p50 budget), so the graph is kept as a union-find
over customers with per-root counters: group size, declined and fraud counts are O(α) per query, and the
identifiers of an application not yet linked are folded in *virtually*, without touching the graph. Only the
hop distance needs a search, and only when the group holds a fraudster; it is bounded by depth and by a node
budget. Memory is a few list slots per customer and identifier plus one entry per customer–identifier edge.

Union-find cannot split, so the graph only ever merges; a customer's own flags can be set and cleared.
The periodic batch job :meth:`EntityGraph.communities` runs Louvain community detection (networkx) on the
customer projection to find the rings *inside* large groups for rules and analysts.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from fengkong.features.registry import Feature, FeatureRegistry, FeatureType

#: Identifiers that join customers: hard to share innocently beyond a family or household.
STRONG_KINDS: frozenset[str] = frozenset({"device", "phone", "id_number", "bank_card", "address", "emergency_contact"})
#: Identifiers shared innocently by many (an office IP, an employer): recorded, never joined on.
WEAK_KINDS: frozenset[str] = frozenset({"ip", "employer"})
KINDS: frozenset[str] = STRONG_KINDS | WEAK_KINDS

DEFAULT_HUB_LIMIT = 20
DEFAULT_MAX_HOPS = 4
DEFAULT_HOP_BUDGET = 10_000

GRAPH_GROUP_SIZE = "graph_group_size"
GRAPH_GROUP_DECLINED = "graph_group_declined"
GRAPH_GROUP_FRAUD = "graph_group_fraud"
GRAPH_SHARED_IDENTIFIERS = "graph_shared_identifiers"
GRAPH_HOPS_TO_FRAUD = "graph_hops_to_fraud"

GRAPH_FEATURES: tuple[Feature, ...] = (
    Feature(
        GRAPH_GROUP_SIZE,
        FeatureType.NUMBER,
        "Customers in the applicant's linked group (shared device, phone, ID number, bank card, address or "
        "emergency contact), including the applicant; office IPs, employers and hub identifiers do not link.",
        "graph",
    ),
    Feature(
        GRAPH_GROUP_DECLINED,
        FeatureType.NUMBER,
        "Other customers in the applicant's linked group who were declined.",
        "graph",
    ),
    Feature(
        GRAPH_GROUP_FRAUD,
        FeatureType.NUMBER,
        "Other customers in the applicant's linked group marked as fraud or blacklisted.",
        "graph",
    ),
    Feature(
        GRAPH_SHARED_IDENTIFIERS,
        FeatureType.NUMBER,
        "The applicant's identifiers that link it to at least one other customer.",
        "graph",
    ),
    Feature(
        GRAPH_HOPS_TO_FRAUD,
        FeatureType.NUMBER,
        "Customer-to-customer links to the nearest fraud or blacklisted customer (0: the applicant itself); "
        "missing when none is within 4 links.",
        "graph",
    ),
)

_DECLINED = 1
_FRAUD = 2
_BLACKLISTED = 4
_FRAUDISH = _FRAUD | _BLACKLISTED


def register_graph_features(registry: FeatureRegistry) -> None:
    """Make the graph features nameable in policies (the compiler rejects names it does not know)."""
    for feature in GRAPH_FEATURES:
        registry.register(feature)


class EntityGraph:
    """Customers linked through shared identifiers, updated incrementally and safe to share between threads.

    Identifiers arrive as keyed hashes in a mapping ``kind → key``; the kind namespaces the key, so the same
    hash under two kinds is two identifiers. Empty keys are ignored (a missing device must not link everyone
    whose device is missing); unknown kinds are refused so that a typo cannot silently drop evidence.
    """

    def __init__(
        self,
        *,
        hub_limit: int = DEFAULT_HUB_LIMIT,
        max_hops: int = DEFAULT_MAX_HOPS,
        hop_budget: int = DEFAULT_HOP_BUDGET,
    ) -> None:
        if hub_limit < 1:
            raise ValueError("hub_limit must be at least 1")
        if max_hops < 0:
            raise ValueError("max_hops must not be negative")
        self.hub_limit = hub_limit
        self.max_hops = max_hops
        self.hop_budget = hop_budget
        self._lock = threading.Lock()
        # Customers, by dense index (parallel lists keep the per-customer overhead to a few slots).
        self._cindex: dict[str, int] = {}
        self._cname: list[str] = []
        self._parent: list[int] = []  # union-find forest
        self._size: list[int] = []  # at a root: customers in the group
        self._ndeclined: list[int] = []  # at a root: declined customers in the group
        self._nfraud: list[int] = []  # at a root: fraud-or-blacklisted customers in the group
        self._flags: list[int] = []
        # per customer: identifier index → whether this customer was joined through it
        self._cids: list[dict[int, bool]] = []
        # Identifiers, by dense index.
        self._iindex: dict[str, dict[str, int]] = {kind: {} for kind in KINDS}
        self._icount: list[int] = []  # distinct customers that used the identifier
        # Customers joined through the identifier (at most hub_limit); None for weak kinds, which join no one.
        self._imembers: list[list[int] | None] = []

    # ------------------------------------------------------------------------------------------- updates

    def link(self, customer_id: str, identifiers: Mapping[str, str]) -> None:
        """Record that the customer uses these identifiers, joining groups through the strong ones.

        Idempotent: an identifier the customer already has is not counted again, so replaying events on
        restart or retrying one rebuilds the same graph.
        """
        _check_kinds(identifiers)
        with self._lock:
            ci = self._customer(customer_id)
            cids = self._cids[ci]
            for kind, key in identifiers.items():
                if not key:
                    continue
                table = self._iindex[kind]
                ii = table.get(key)
                if ii is None:
                    ii = len(self._icount)
                    table[key] = ii
                    self._icount.append(0)
                    self._imembers.append([] if kind in STRONG_KINDS else None)
                elif ii in cids:
                    continue
                self._icount[ii] += 1
                members = self._imembers[ii]
                if members is not None and len(members) < self.hub_limit:
                    if members:
                        self._union(ci, members[0])
                    members.append(ci)
                    cids[ii] = True
                else:
                    cids[ii] = False  # weak, or a hub: recorded but not a link

    def mark(
        self,
        customer_id: str,
        *,
        declined: bool | None = None,
        fraud: bool | None = None,
        blacklisted: bool | None = None,
    ) -> None:
        """Set or clear the customer's flags (``None`` leaves a flag as it is).

        Clearing matters: an appeal that overturns a decline, or a fraud mark found to be identity theft, must
        stop counting against everyone linked to that customer at once.
        """
        with self._lock:
            ci = self._customer(customer_id)
            old = self._flags[ci]
            new = old
            for flag, value in ((_DECLINED, declined), (_FRAUD, fraud), (_BLACKLISTED, blacklisted)):
                if value is not None:
                    new = (new | flag) if value else (new & ~flag)
            if new == old:
                return
            self._flags[ci] = new
            root = self._find(ci)
            self._ndeclined[root] += bool(new & _DECLINED) - bool(old & _DECLINED)
            self._nfraud[root] += bool(new & _FRAUDISH) - bool(old & _FRAUDISH)

    # -------------------------------------------------------------------------------------------- queries

    def features(self, customer_id: str, identifiers: Mapping[str, str] | None = None) -> dict[str, float | None]:
        """The graph features of a customer, as if it were also linked to ``identifiers``.

        At decision time the application is not linked yet (a declined application must not leave links
        behind that a query made them), so the identifiers it brings are folded in virtually: the groups they
        would join are added to the customer's own, and nothing in the graph changes.
        """
        if identifiers:
            _check_kinds(identifiers)
        with self._lock:
            ci = self._cindex.get(customer_id)
            roots: set[int] = set()
            extra: list[list[int]] = []  # member lists of the identifiers the given ones would join through
            flags = 0
            shared = 0
            cids: dict[int, bool] = {}
            if ci is not None:
                roots.add(self._find(ci))
                flags = self._flags[ci]
                cids = self._cids[ci]
                for ii, joined in cids.items():
                    if joined:
                        members = self._imembers[ii]
                        if members is not None and len(members) > 1:
                            shared += 1
            for kind, key in (identifiers or {}).items():
                if not key or kind not in STRONG_KINDS:
                    continue
                given = self._iindex[kind].get(key)
                if given is None or given in cids:
                    continue  # new to the graph (links no one), or already counted above
                joiners = self._imembers[given]
                if not joiners or len(joiners) >= self.hub_limit:
                    continue  # a hub would not join this customer
                shared += 1
                roots.add(self._find(joiners[0]))
                extra.append(joiners)

            size = sum(self._size[r] for r in roots) + (0 if ci is not None else 1)
            declined = sum(self._ndeclined[r] for r in roots) - bool(flags & _DECLINED)
            fraud = sum(self._nfraud[r] for r in roots) - bool(flags & _FRAUDISH)
            hops: int | None
            if flags & _FRAUDISH:
                hops = 0
            elif fraud == 0:
                hops = None  # nobody to reach: no search needed (the common case)
            else:
                hops = self._hops_to_fraud(ci, extra)
        return {
            GRAPH_GROUP_SIZE: float(size),
            GRAPH_GROUP_DECLINED: float(declined),
            GRAPH_GROUP_FRAUD: float(fraud),
            GRAPH_SHARED_IDENTIFIERS: float(shared),
            GRAPH_HOPS_TO_FRAUD: None if hops is None else float(hops),
        }

    def communities(self, min_size: int = 3, seed: int = 0) -> dict[str, int]:
        """Periodic batch job: Louvain communities of the customer projection, as customer → group id.

        Two customers are joined in the projection with a weight equal to the number of identifiers that link
        them. A connected group can be one ring, or several rings plus the few links between them; modularity
        separates those, which a connected-components count cannot. Identifiers that have since become hubs are
        left out, with hindsight the online graph lacks. Group ids number communities from the largest (ties by
        smallest customer id) and are stable for the same graph and seed, not across runs on a changing graph.
        """
        with self._lock:  # copy out only what the projection needs; the long part runs without the lock
            names = list(self._cname)
            groups = [
                list(members)
                for ii, members in enumerate(self._imembers)
                if members is not None and len(members) > 1 and self._icount[ii] <= self.hub_limit
            ]
        weights: dict[tuple[int, int], int] = {}
        for members in groups:
            for i, a in enumerate(members):
                for b in members[i + 1 :]:
                    pair = (a, b) if a < b else (b, a)
                    weights[pair] = weights.get(pair, 0) + 1

        import networkx as nx  # type: ignore[import-untyped, unused-ignore]  # batch only: keep start-up fast

        graph: Any = nx.Graph()
        if min_size <= 1:
            graph.add_nodes_from(sorted(names))
        else:
            graph.add_nodes_from(sorted({names[c] for pair in weights for c in pair}))
        # Insert in name order so the result depends on the graph's content and the seed, not arrival order.
        edges = sorted((min(names[a], names[b]), max(names[a], names[b]), w) for (a, b), w in weights.items())
        graph.add_weighted_edges_from(edges, weight="weight")
        found: list[set[str]] = [set(c) for c in nx.community.louvain_communities(graph, weight="weight", seed=seed)]
        kept = sorted((c for c in found if len(c) >= min_size), key=lambda c: (-len(c), min(c)))
        return {customer: group for group, members in enumerate(kept) for customer in members}

    def __len__(self) -> int:
        """Customers in the graph."""
        with self._lock:
            return len(self._cname)

    # ------------------------------------------------------------------------------------------ internals

    def _customer(self, customer_id: str) -> int:
        ci = self._cindex.get(customer_id)
        if ci is None:
            ci = len(self._cname)
            self._cindex[customer_id] = ci
            self._cname.append(customer_id)
            self._parent.append(ci)
            self._size.append(1)
            self._ndeclined.append(0)
            self._nfraud.append(0)
            self._flags.append(0)
            self._cids.append({})
        return ci

    def _find(self, ci: int) -> int:
        parent = self._parent
        while parent[ci] != ci:
            parent[ci] = parent[parent[ci]]  # path halving keeps trees flat without recursion
            ci = parent[ci]
        return ci

    def _union(self, a: int, b: int) -> None:
        ra, rb = self._find(a), self._find(b)
        if ra == rb:
            return
        if self._size[ra] < self._size[rb]:
            ra, rb = rb, ra
        self._parent[rb] = ra
        self._size[ra] += self._size[rb]
        self._ndeclined[ra] += self._ndeclined[rb]
        self._nfraud[ra] += self._nfraud[rb]

    def _hops_to_fraud(self, ci: int | None, extra: list[list[int]]) -> int | None:
        """Breadth-first search over customer–identifier–customer links, bounded by depth and node budget.

        ``extra`` holds the members the query's not-yet-linked identifiers would join, i.e. the customer's
        virtual first-hop neighbours. Returns None when no fraudster is found within ``max_hops`` links or
        before ``hop_budget`` customers were visited (the group counters still show the fraud in the group).
        """
        flags = self._flags
        visited: set[int] = set()
        frontier: list[int] = []
        if ci is not None:
            visited.add(ci)
            frontier.append(ci)
        first: list[int] = []
        for joiners in extra:
            for m in joiners:
                if m not in visited:
                    visited.add(m)
                    first.append(m)
        depth = 0
        while depth < self.max_hops:
            depth += 1
            nxt: list[int] = first
            first = []
            for node in frontier:
                for ii, joined in self._cids[node].items():
                    if not joined:
                        continue
                    members = self._imembers[ii]
                    assert members is not None  # joined implies a strong identifier
                    for m in members:
                        if m not in visited:
                            visited.add(m)
                            nxt.append(m)
            if not nxt:
                return None
            for node in nxt:
                if flags[node] & _FRAUDISH:
                    return depth
            if len(visited) > self.hop_budget:
                return None
            frontier = nxt
        return None


def _check_kinds(identifiers: Mapping[str, str]) -> None:
    unknown = sorted(kind for kind in identifiers if kind not in KINDS)
    if unknown:
        raise ValueError(f"unknown identifier kind(s) {unknown}; expected some of {sorted(KINDS)}")
