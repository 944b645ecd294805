"""Each fraud pattern of the synthetic world is caught by the default policy, and honest customers who
merely share an office IP or a family phone are not treated as fraudsters. Deterministic: a fixed seed."""

from __future__ import annotations

from pathlib import Path

import pytest

from fengkong import Engine
from fengkong.simulate.evaluate import DetectionReport, Replay, detection_report, honest_noise_groups, replay
from fengkong.simulate.world import World, WorldConfig, generate

SECRET = "test-secret-key-0123456789abcdef-0123456789"


@pytest.fixture(scope="module")
def replayed(tmp_path_factory: pytest.TempPathFactory) -> tuple[World, Replay, DetectionReport]:
    config = WorldConfig(
        customers=800, seed=3, ring=0.06, multi_head=0.04, cash_out=0.04, takeover=0.04, scam_victim=0.03
    )
    world = generate(config)
    db = Path(tmp_path_factory.mktemp("detect")) / "world.db"
    engine = Engine(f"sqlite:///{db}", secret_key=SECRET)
    result = replay(world, engine)
    engine.close()
    return world, result, detection_report(world, result)


def test_the_world_replays_without_refusals(replayed: tuple[World, Replay, DetectionReport]) -> None:
    world, result, _ = replayed
    assert result.rejected_events == 0 and result.rejected_applications == 0
    assert result.events == len(world.events)
    assert len(result.outcomes) == len({c for c, _ in world.truth})


@pytest.mark.parametrize(
    ("typology", "minimum_recall"),
    [("ring", 0.6), ("multi_head", 0.6), ("cash_out", 0.6), ("takeover", 0.9), ("scam_victim", 0.9)],
)
def test_each_pattern_is_caught(
    replayed: tuple[World, Replay, DetectionReport], typology: str, minimum_recall: float
) -> None:
    row = next(r for r in replayed[2].rows if r["typology"] == typology)
    assert row["customers"] > 0
    assert row["recall"] >= minimum_recall, row


def test_takeover_and_scam_are_caught_by_their_own_triggers(replayed: tuple[World, Replay, DetectionReport]) -> None:
    world, result, _ = replayed
    truth = dict(world.truth)
    takeovers = [c for c, t in truth.items() if t == "takeover"]
    victims = [c for c, t in truth.items() if t == "scam_victim"]
    assert all("trigger:TAKEOVER" in result.signals.get(c, ()) for c in takeovers)
    assert sum("trigger:SCAM_FIRST_PAYEE" in result.signals.get(c, ()) for c in victims) >= 0.9 * len(victims)


def test_honest_customers_sharing_an_office_ip_or_family_phone_are_not_flagged(
    replayed: tuple[World, Replay, DetectionReport],
) -> None:
    world, result, report = replayed
    honest = {c for c, t in world.truth if t == "honest"}
    shared_ip, shared_phone = honest_noise_groups(world, honest)
    assert len(shared_ip) >= 50 and len(shared_phone) >= 10  # the world does hold such customers
    # sharing an office network or a family phone never brings a fraud reason at application
    for customer in shared_ip | shared_phone:
        at_application = [s for s in result.signals.get(customer, ()) if s.startswith("decision:")]
        assert not at_application, (customer, at_application)
    declined_shared = [c for c in shared_ip | shared_phone if result.outcomes[c] == "decline"]
    declined_all = [c for c in honest if result.outcomes[c] == "decline"]
    # declines among them (for credit reasons) are no more frequent than among honest customers at large
    assert len(declined_shared) / len(shared_ip | shared_phone) <= 1.5 * len(declined_all) / len(honest) + 0.02
    assert report.honest_noise["rate"] <= 0.05  # all fraud signals, application and triggers, on honest people


def test_victims_are_never_declined_as_fraudsters(replayed: tuple[World, Replay, DetectionReport]) -> None:
    world, result, _ = replayed
    victims = [c for c, t in world.truth if t == "scam_victim"]
    assert not [c for c in victims if any(s.startswith("decision:") for s in result.signals.get(c, ()))]
