"""Online features: what the event stream says about an applicant at decision time.

Combines the velocity windows, the entity-link graph and the internal risk lists behind one object that
the engine feeds with observations (events and decisions) and asks for features.
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Mapping
from typing import Any

from fengkong.features.graph import EntityGraph
from fengkong.features.velocity import Observation, Velocity

# Keys of the protected identity (see Engine._protect) → entity kinds used by windows and graph.
IDENTITY_ENTITIES = {
    "device_id_key": "device",
    "ip_key": "ip",
    "phone_key": "phone",
    "id_number_key": "id_number",
    "bank_card_key": "bank_card",
}
# Identifiers that join customers in the graph (see EntityGraph: ip is recorded but never joins).
GRAPH_KINDS = ("device", "phone", "id_number", "bank_card", "ip")
_LINKING_EVENTS = frozenset({"application", "device_bound", "login"})  # events that link a customer to identifiers


@functools.lru_cache(maxsize=256)
def _reads_graph(names: frozenset[str]) -> bool:
    """Whether a set of requested features names a graph feature (a few sets, asked per event: cached)."""
    return any(name.startswith("graph_") for name in names)


def entity_keys(customer_id: str, protected_identity: Mapping[str, str]) -> dict[str, str]:
    keys = {"customer": customer_id}
    for field, entity in IDENTITY_ENTITIES.items():
        value = protected_identity.get(field)
        if value is not None:
            keys[entity] = value
    return keys


class OnlineFeatures:
    def __init__(self, velocity: Velocity, graph: EntityGraph) -> None:
        self.velocity = velocity
        self.graph = graph
        self.community_sizes: dict[str, int] = {}  # customer → size of their community at the last batch run

    def features(self, keys: Mapping[str, str], now: float, only: Collection[str] | None = None) -> dict[str, Any]:
        """All online features, or only those named (event triggers read a few of them, per event)."""
        customer = keys["customer"]
        out: dict[str, Any] = self.velocity.features(keys, now, only)
        if only is None or _reads_graph(frozenset(only)):
            identifiers = {k: v for k, v in keys.items() if k in GRAPH_KINDS}
            out.update(self.graph.features(customer, identifiers))
        size = self.community_sizes.get(customer)
        out["graph_community_size"] = None if size is None else float(size)
        return out

    def observe(self, obs: Observation, outcome: str | None = None) -> None:
        self.velocity.observe(obs)
        self.graph_only(obs, outcome)

    def graph_only(self, obs: Observation, outcome: str | None = None) -> None:
        """Replay an event too old for any window into the link graph only (engine start-up)."""
        customer = obs.keys.get("customer")
        if customer is not None and obs.event_type in _LINKING_EVENTS:
            identifiers = {k: v for k, v in obs.keys.items() if k in GRAPH_KINDS}
            if identifiers:
                self.graph.link(customer, identifiers)
        if customer is not None and outcome == "decline":
            self.graph.mark(customer, declined=True)
