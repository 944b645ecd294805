"""Features: named, typed values that policies and models read. Names live in one registry."""

from fengkong.features.registry import FEATURES, Feature, FeatureRegistry, FeatureType

__all__ = ["FEATURES", "Feature", "FeatureRegistry", "FeatureType"]
