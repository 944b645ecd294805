"""Features: named, typed values that policies and models read. Names live in one registry.

The registry holds the application features, the velocity windows declared in ``windows.yaml`` and the
entity-graph features, so a policy naming any of them is checked at load time.
"""

from fengkong.features.graph import register_graph_features
from fengkong.features.registry import FEATURES, Feature, FeatureRegistry, FeatureType
from fengkong.features.velocity import load_windows, register_windows

register_windows(FEATURES, load_windows())
register_graph_features(FEATURES)

__all__ = ["FEATURES", "Feature", "FeatureRegistry", "FeatureType"]
