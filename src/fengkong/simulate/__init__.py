"""A synthetic lending world with ground truth: ``generate(WorldConfig(customers=..., seed=...))``."""

from __future__ import annotations

from fengkong.simulate.world import FRAUD_TYPOLOGIES, TYPOLOGIES, World, WorldConfig, generate

__all__ = ["FRAUD_TYPOLOGIES", "TYPOLOGIES", "World", "WorldConfig", "generate"]
