"""The engine facade: every door (HTTP, CLI, Python, batch) calls these methods and nothing below them.

engine = Engine()                         # ./fengkong.db, bundled default policy
decision = engine.decide({...})           # validated, decided, persisted, audited
engine.explain(decision.decision_id)      # analyst and customer views, replayed under its policy
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import heapq
import json
import logging
import os
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from pydantic import ValidationError

from fengkong import metrics
from fengkong.applications import ApplicationIn
from fengkong.domain import Language, Outcome, Role, new_id
from fengkong.errors import FengkongError, FieldProblem, from_validation_error, not_found
from fengkong.events.ingest import IngestResult, keys_from_payload, observation, parse_events, protect
from fengkong.events.store import store_new
from fengkong.explain import analyst_view, customer_view
from fengkong.features.application import application_features
from fengkong.features.graph import EntityGraph
from fengkong.features.online import OnlineFeatures, entity_keys
from fengkong.features.registry import FEATURES, FeatureRegistry
from fengkong.features.velocity import Observation, Velocity, load_windows
from fengkong.lines.desk import LineDesk
from fengkong.loans.early_warning import no_loans
from fengkong.pii import (
    MIN_SECRET_BYTES,
    IdFacts,
    PiiVault,
    SecretKeyError,
    inspect_id_number,
    load_or_create_secret,
    mask,
    normalize,
    sha256_hex,
)
from fengkong.policy.compiler import CompiledPolicy
from fengkong.policy.errors import PolicyError
from fengkong.policy.loader import DEFAULT_POLICY_PATH, load_policy_file, load_policy_text
from fengkong.runtime import deferred_gc
from fengkong.security import Principal, hash_api_key, key_matches, new_api_key, parse_key_id
from fengkong.state.memory import MemoryState
from fengkong.store import audit
from fengkong.store.db import create_db_engine, database_url, migrate
from fengkong.store.tables import (
    alerts,
    api_keys,
    audit_log,
    decisions,
    events,
    graph_groups,
    policies,
    protected_customers,
    risk_lists,
)

log = logging.getLogger("fengkong")

_IDENTIFIERS = ("id_number", "phone", "bank_card", "device_id", "ip")
_ENTITY_KIND = {"device_id": "device"}  # identity field → the kind its keyed hash is namespaced by


@dataclass(frozen=True, slots=True)
class Decision:
    """A stored decision as the doors show it."""

    decision_id: str
    application_id: str | None
    customer_id: str
    created_at: dt.datetime
    outcome: Outcome
    limit: float | None
    apr: float | None
    score: float | None
    reasons: tuple[str, ...]
    policy_version: str
    model_version: str
    currency: str
    language: Language = Language.ZH
    replayed: bool = False  # True when an idempotent retry returned the stored decision
    case_id: str | None = None  # the review case a REVIEW outcome opened
    line_id: str | None = None  # the credit line an approval opened

    def response(self, language: Language | None = None) -> dict[str, Any]:
        from fengkong.reasons import reason

        language = language or self.language

        return {
            "decision_id": self.decision_id,
            "application_id": self.application_id,
            "outcome": self.outcome.value,
            "limit": self.limit,
            "apr": self.apr,
            "currency": self.currency,
            "reasons": [
                {"code": c, "category": reason(c).category.value, "text": reason(c).customer_text(language)}
                for c in self.reasons
            ],
            "policy_version": self.policy_version,
            "model_version": self.model_version,
            "created_at": audit.timestamp_text(self.created_at),
            "case_id": self.case_id,
            "line_id": self.line_id,
            "replayed": self.replayed,
        }


class Engine:
    """fengkong's engine. Thread-safe: one instance serves every request of a process."""

    #: How long this process trusts its cached idea of which policy is active before reading it again, so that a
    #: policy activated elsewhere (the CLI, another API replica) is used here within this many seconds.
    active_policy_refresh_seconds: float = 1.0

    def __init__(
        self,
        database_url_: str | None = None,
        *,
        policy: str | Path | None = None,
        secret_key: str | bytes | None = None,
        features: FeatureRegistry = FEATURES,
        run_migrations: bool = True,
        state: Any | None = None,
    ) -> None:
        self.database_url = database_url(database_url_)
        self.db = create_db_engine(self.database_url)
        if run_migrations:
            migrate(self.db)
        if secret_key is None:
            secret = load_or_create_secret(self._default_secret_path())
        else:
            secret = secret_key.encode() if isinstance(secret_key, str) else secret_key
            if len(secret) < MIN_SECRET_BYTES:
                raise SecretKeyError(f"secret_key must be at least {MIN_SECRET_BYTES} bytes")
        self.vault = PiiVault(secret)
        self.features = features
        self._policies: dict[str, CompiledPolicy] = {}
        self._active_version: str | None = None
        self._active_checked = 0.0  # time.monotonic() when _active_version was last read from the store
        self._roles: dict[str, tuple[str, float | None]] = {}  # challenger / shadow → (version, share)
        self._lock = threading.Lock()
        self._key_cache: dict[str, tuple[float, Principal | None]] = {}
        # (expires_at timestamp, customer id) of customer blacklist entries marked in the graph: see _expire_marks
        self._mark_expiry: list[tuple[float, str]] = []
        if state is None:
            redis_url = os.environ.get(REDIS_URL_ENV)
            if redis_url:
                from fengkong.state.redis import RedisState

                state = RedisState(redis_url)
            else:
                state = MemoryState()
        # A shared, persistent state (Redis) already holds the windows; only in-process state is replayed.
        self._replay_windows = isinstance(state, MemoryState)
        self._writer = ThreadPoolExecutor(max_workers=4, thread_name_prefix="fengkong-store")  # see _ingest
        self.online = OnlineFeatures(Velocity(load_windows(), state), EntityGraph())
        self._rebuild_online_state()
        # What the audit chain vouches for, by entry kind: recomputes stored records' content hashes on verify.
        self.audit_hashers: dict[str, audit.PayloadHasher] = {}
        # Subsystems live in their own packages and are reached as attributes of the engine (engine.lines, ...).
        # --- lines (issue 5)
        self.lines = LineDesk(self)
        # --- models (issue 4)
        from fengkong.models.desk import ModelDesk

        self.models = ModelDesk(self)
        # --- loans (issue 6)
        from fengkong.loans.desk import LoanDesk

        self.loans = LoanDesk(self)
        # --- cases (issue 7)
        from fengkong.cases.desk import CaseDesk

        self.cases = CaseDesk(self)
        # --- console (issue 7)
        from fengkong.web.users import ConsoleUsers

        self.console = ConsoleUsers(self)
        if policy is not None or self.active_policy_version() is None:
            compiled = load_policy_file(
                policy if policy is not None else DEFAULT_POLICY_PATH, features, models=self.models.resolve
            )
            try:
                self.publish_policy(compiled, actor="startup", activate=True)
            except sa.exc.IntegrityError:
                # Another replica starting at the same moment published it first; ours is now a no-op.
                self.publish_policy(compiled, actor="startup", activate=True)

    def _default_secret_path(self) -> Path:
        url = sa.make_url(self.database_url)
        if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
            return Path(url.database).with_suffix(".key")
        return Path.cwd() / "fengkong.key"

    def close(self) -> None:
        self._writer.shutdown(wait=True)
        self.db.dispose()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # ------------------------------------------------------------------------------------------ policies

    def publish_policy(self, compiled: CompiledPolicy, actor: str, activate: bool = False) -> str:
        """Store a policy version (immutable once stored) and optionally make it the active one."""
        now = _now()
        with self.db.begin() as conn:
            existing = conn.execute(
                sa.select(policies.c.content_hash).where(policies.c.version == compiled.version)
            ).scalar_one_or_none()
            if existing is not None and existing != compiled.content_hash:
                raise FengkongError(
                    "policy_version_exists",
                    f"policy version {compiled.version!r} is already published with different content; "
                    "published versions are immutable, so give the changed policy a new version",
                    "version",
                    409,
                )
            if existing is None:
                conn.execute(
                    sa.insert(policies).values(
                        version=compiled.version,
                        name=compiled.name,
                        content=compiled.source_text,
                        content_hash=compiled.content_hash,
                        model_version=compiled.model_version,
                        active=False,
                        created_at=now,
                        created_by=actor,
                    )
                )
                audit.append(
                    conn,
                    "policy_published",
                    compiled.version,
                    actor,
                    _policy_payload_hash(compiled.version, compiled.content_hash),
                    now,
                )
            if activate:
                current = conn.execute(sa.select(policies.c.version).where(policies.c.active)).scalar_one_or_none()
                if current != compiled.version:
                    conn.execute(sa.update(policies).values(active=policies.c.version == compiled.version))
                    audit.append(
                        conn,
                        "policy_activated",
                        compiled.version,
                        actor,
                        audit.content_hash({"activated": compiled.version, "previous": current}),
                        now,
                    )
        self._policies[compiled.version] = compiled
        if activate:
            self._active_version = compiled.version
            self._active_checked = time.monotonic()
        return compiled.version

    def policy_or_404(self, version: str) -> CompiledPolicy:
        """A published version named in a URL: unknown is 404 (not the 422 of a version named in a body)."""
        try:
            return self.policy(version)
        except FengkongError as exc:
            if exc.code == "unknown_policy_version":
                raise FengkongError(exc.code, exc.message, "version", 404) from None
            raise

    def activate_policy(self, version: str, actor: str = "python") -> str:
        """Promote a published version to champion (or roll back to an earlier one); audited."""
        compiled = self.policy_or_404(version)
        with self.db.connect() as conn:
            role = conn.execute(sa.select(policies.c.role).where(policies.c.version == version)).scalar_one_or_none()
        if role is not None:
            self.set_policy_role(version, None, actor=actor)  # a champion is neither challenger nor shadow
        self.publish_policy(compiled, actor=actor, activate=True)
        self._active_checked = 0.0
        return version

    def active_policy_version(self) -> str | None:
        with self.db.connect() as conn:
            return conn.execute(sa.select(policies.c.version).where(policies.c.active)).scalar_one_or_none()

    def policy(self, version: str | None = None) -> CompiledPolicy:
        """A compiled policy by version (the active one by default), loaded from the store once."""
        if version is None:
            now = time.monotonic()
            if self._active_version is None or now - self._active_checked >= self.active_policy_refresh_seconds:
                self._active_version = self.active_policy_version() or self._active_version
                self._roles = self._read_roles()
                self._active_checked = now
            version = self._active_version
            if version is None:
                raise FengkongError("no_active_policy", "no policy is active; publish one with --activate", None, 503)
        compiled = self._policies.get(version)
        if compiled is not None:
            return compiled
        with self.db.connect() as conn:
            row = conn.execute(sa.select(policies).where(policies.c.version == version)).one_or_none()
        if row is None:
            raise FengkongError(
                "unknown_policy_version", f"no policy version {version!r} is published", "policy_version", 422
            )
        compiled = load_policy_text(
            row.content, source=f"policy {version}", features=self.features, models=self.models.resolve
        )
        self._policies[version] = compiled
        return compiled

    # ---------------------------------------------------------------------------- champion, challenger, shadow

    def _read_roles(self) -> dict[str, tuple[str, float | None]]:
        with self.db.connect() as conn:
            rows = conn.execute(
                sa.select(policies.c.version, policies.c.role, policies.c.share).where(policies.c.role.is_not(None))
            ).all()
        return {r.role: (r.version, r.share) for r in rows}

    def set_policy_role(
        self, version: str, role: str | None, share: float | None = None, actor: str = "python"
    ) -> None:
        """Make a published version the challenger (deciding ``share`` of customers, chosen by a stable hash of
        the customer id), the shadow (decided and stored beside every live decision, never acted on), or
        neither (``role=None``). One policy holds each role; setting it moves it."""
        if role not in (None, "challenger", "shadow"):
            raise FengkongError("invalid_field", "role must be challenger, shadow or none", "role", 422)
        if role == "challenger" and (share is None or not 0 < share < 1):
            raise FengkongError("invalid_field", "a challenger needs a share between 0 and 1 (e.g. 0.1)", "share", 422)
        if role != "challenger":
            share = None
        try:
            self.policy(version)  # an unknown version is refused before anything changes
        except FengkongError as exc:
            if exc.code == "unknown_policy_version":
                raise FengkongError(exc.code, exc.message, "version", 404) from None
            raise
        if role is not None and version == self.active_policy_version():
            raise FengkongError(
                "invalid_field", f"{version!r} is the champion; it cannot also be the {role}", "role", 422
            )
        now = _now()
        with self.db.begin() as conn:
            if role is not None:
                conn.execute(sa.update(policies).where(policies.c.role == role).values(role=None, share=None))
            conn.execute(sa.update(policies).where(policies.c.version == version).values(role=role, share=share))
            audit.append(
                conn,
                "policy_role_set",
                version,
                actor,
                audit.content_hash({"version": version, "role": role, "share": share}),
                now,
            )
        self._roles = self._read_roles()

    def _assign(self, app: ApplicationIn) -> tuple[CompiledPolicy, str]:
        """Which policy decides this application: the one it names, else the challenger for its share of
        customers (a stable hash: one person always meets the same policy), else the champion."""
        if app.policy_version is not None:
            return self.policy(app.policy_version), "pinned"
        champion = self.policy()
        challenger = self._roles.get("challenger")
        if challenger is not None and challenger[1] is not None and assignment_bucket(app.customer_id) < challenger[1]:
            return self.policy(challenger[0]), "challenger"
        return champion, "champion"

    def compare_policies(
        self, since: dt.datetime | None = None, segments: Sequence[str] | None = None
    ) -> dict[str, Any]:
        """Champion, challenger and shadow side by side, from the decisions they made live (see
        :mod:`fengkong.policy.compare`; its ``live_comparison`` also renders Markdown and HTML)."""
        from fengkong.policy.compare import live_comparison

        return live_comparison(self, since, segments).as_dict()

    def list_policies(self) -> list[dict[str, Any]]:
        with self.db.connect() as conn:
            rows = conn.execute(sa.select(policies).order_by(policies.c.created_at)).all()
        return [
            {
                "version": r.version,
                "name": r.name,
                "active": r.active,
                "role": "champion" if r.active else r.role,  # or challenger, shadow, None
                "share": r.share,  # a challenger's share of customers
                "model_version": r.model_version,
                "content_hash": r.content_hash,
                "created_at": audit.timestamp_text(r.created_at),
                "created_by": r.created_by,
            }
            for r in rows
        ]

    @staticmethod
    def check_policy(path: str | Path) -> CompiledPolicy:
        """Load and compile a policy file without storing it; raises PolicyError listing every problem."""
        return load_policy_file(path)

    # ------------------------------------------------------------------------------------------ decisions

    def decide_json(self, body: bytes | str, actor: str = "api") -> Decision:
        data = parse_json_body(body)
        if not isinstance(data, dict):
            raise FengkongError("invalid_body", "the request body must be a JSON object", "body", 422)
        return self.decide(data, actor=actor)

    def decide(
        self, application: Mapping[str, Any] | ApplicationIn, actor: str = "python", as_of: dt.datetime | None = None
    ) -> Decision:
        """Validate, decide, persist and audit one credit application.

        ``as_of`` (Python and batch doors only) decides as at a past moment, for replaying a history in order.
        """
        started = time.perf_counter()
        if isinstance(application, ApplicationIn):
            app = application
        else:
            try:
                app = ApplicationIn.model_validate(application)
            except ValidationError as exc:
                raise from_validation_error(exc) from None
        if app.applicant.age is None and app.identity.id_number is None:
            raise FengkongError(
                "missing_field",
                "applicant.age is required unless a raw identity.id_number is sent (the age is then read from it)",
                "applicant.age",
                422,
            )
        policy, assignment = self._assign(app)
        now = as_of.astimezone(dt.UTC) if as_of is not None else _now()
        today = now.date()
        inputs, identity_plain, id_facts = self._protect(app, today)
        request_hash = audit.content_hash({"policy": app.policy_version, "inputs": inputs})
        if app.application_id is not None:
            stored = self._existing(app.application_id, request_hash)
            if stored is not None:
                return stored

        features = application_features(app, id_facts, today)
        keys = entity_keys(app.customer_id, inputs["identity"])
        self._expire_marks(now)
        features.update(self.online.features(keys, now.timestamp()))
        features.update(self._list_features(app.customer_id, keys, now))
        result = policy.decide_row(features)
        decision_id = new_id("dec")
        record: dict[str, Any] = {
            "id": decision_id,
            "kind": "application",
            "application_id": app.application_id,
            "customer_id": app.customer_id,
            "created_at": now,
            "outcome": result.outcome.value,
            "limit_amount": result.limit,
            "apr": result.apr,
            "score": result.score,
            "reasons": list(result.reasons),
            "rule_hits": [h.id for h in result.rule_hits],
            "inputs": inputs,
            "features": features,
            "policy_version": policy.version,
            "model_version": policy.model_version,
            "identity_encrypted": self.vault.encrypt(identity_plain) if identity_plain else None,
            "request_hash": request_hash,
            "assignment": assignment,
            "shadow_of": None,
        }
        record["content_hash"] = decision_content_hash(record)
        shadow_record = self._shadow_record(record, features, assignment)
        line_id: str | None = None
        try:
            with self.db.begin() as conn:
                conn.execute(_INSERT_DECISION, record)
                audit.append(conn, "decision", decision_id, actor, record["content_hash"], now)
                if result.outcome is Outcome.APPROVE and result.limit:
                    line_id = self.lines.open_in(conn, {**record, "currency": policy.spec.currency}, now, actor)
                if shadow_record is not None:
                    conn.execute(_INSERT_DECISION, shadow_record)
                    audit.append(conn, "decision", shadow_record["id"], actor, shadow_record["content_hash"], now)
                app_event = {"decision_id": decision_id, "outcome": result.outcome.value, **inputs["identity"]}
                conn.execute(
                    _INSERT_EVENT,
                    [
                        {
                            "event_id": decision_id,
                            "type": "application",
                            "customer_id": app.customer_id,
                            "occurred_at": now,
                            "received_at": now,
                            "payload": app_event,
                        }
                    ],
                )
        except sa.exc.IntegrityError:
            # Two retries of one application raced: the other one won; answer as it did.
            if app.application_id is not None:
                stored = self._existing(app.application_id, request_hash)
                if stored is not None:
                    return stored
            raise
        self.online.observe(
            Observation("application", now.timestamp(), decision_id, keys, 0.0, {}), result.outcome.value
        )
        elapsed = time.perf_counter() - started
        metrics.DECISIONS.labels("application", result.outcome.value, policy.version).inc()
        metrics.DECISION_SECONDS.labels("application").observe(elapsed)
        log.info(
            "decision %s outcome=%s policy=%s latency_ms=%.2f",
            decision_id,
            result.outcome.value,
            policy.version,
            elapsed * 1000,
        )
        return Decision(
            decision_id,
            app.application_id,
            app.customer_id,
            now,
            result.outcome,
            result.limit,
            result.apr,
            result.score,
            result.reasons,
            policy.version,
            policy.model_version,
            policy.spec.currency,
            Language(app.language),
            case_id=self._review_case(decision_id, actor) if result.outcome is Outcome.REVIEW else None,
            line_id=line_id,
        )

    def _review_case(self, decision_id: str, actor: str) -> str | None:
        """Open the review case of a stored REVIEW decision. Never fails the decision: a case that could not be
        opened now is opened by ``engine.cases.sweep()``."""
        try:
            return self.cases.open_for_decision(self.get_decision(decision_id), actor)
        except Exception as exc:  # the decision is stored and must be answered whatever the case code does
            log.error("decision %s: opening its review case failed: %s", decision_id, type(exc).__name__)
            return None

    def _shadow_record(self, live: dict[str, Any], features: dict[str, Any], assignment: str) -> dict[str, Any] | None:
        """The shadow policy's decision on the same features: stored, audited, never returned or acted on."""
        shadow = self._roles.get("shadow")
        if shadow is None or assignment == "pinned" or shadow[0] == live["policy_version"]:
            return None
        try:
            policy = self.policy(shadow[0])
            result = policy.decide_row(features)
        except Exception as exc:  # a shadow never acts, so it may never fail the live decision either
            log.error("shadow policy %s could not decide %s: %s", shadow[0], live["id"], type(exc).__name__)
            return None
        record = {
            **live,
            "id": new_id("dec"),
            "kind": "shadow",
            "application_id": None,
            "outcome": result.outcome.value,
            "limit_amount": result.limit,
            "apr": result.apr,
            "score": result.score,
            "reasons": list(result.reasons),
            "rule_hits": [h.id for h in result.rule_hits],
            "policy_version": policy.version,
            "model_version": policy.model_version,
            "identity_encrypted": None,  # the live decision holds the identifiers; no second copy
            "assignment": "shadow",
            "shadow_of": live["id"],
        }
        record["content_hash"] = decision_content_hash(record)
        return record

    def _protect(self, app: ApplicationIn, today: dt.date) -> tuple[dict[str, Any], dict[str, str], IdFacts | None]:
        """The request as stored: identifiers as keyed hashes; raw ones returned separately for encryption."""
        ident = app.identity
        protected: dict[str, str] = {}
        plain: dict[str, str] = {}
        for kind in _IDENTIFIERS:
            raw = getattr(ident, kind)
            given_hash = getattr(ident, f"{kind}_hash", None)
            # hashed under the entity kind events and lists use too ("device", not the field name "device_id"),
            # so that a device seen in an event or put on a list is the same key as in an application
            entity = _ENTITY_KIND.get(kind, kind)
            if raw is not None:
                plain[kind] = raw
                protected[f"{kind}_key"] = self.vault.keyed_hash(entity, sha256_hex(normalize(entity, raw)))
            elif given_hash is not None:
                protected[f"{kind}_key"] = self.vault.keyed_hash(entity, given_hash)
        id_facts = inspect_id_number(ident.id_number, today) if ident.id_number is not None else None
        inputs = app.model_dump(mode="json", exclude={"identity"}, exclude_unset=True)  # what the lender sent
        inputs["identity"] = protected
        return inputs, plain, id_facts

    def _existing(self, application_id: str, request_hash: str) -> Decision | None:
        with self.db.connect() as conn:
            row = conn.execute(sa.select(decisions).where(decisions.c.application_id == application_id)).one_or_none()
        if row is None:
            return None
        if row.request_hash != request_hash:
            raise FengkongError(
                "application_id_conflict",
                f"application_id {application_id!r} was already decided with different data; "
                "use a new application_id for a new application",
                "application_id",
                409,
            )
        return self._to_decision(row, replayed=True)

    def _to_decision(self, row: Any, replayed: bool = False) -> Decision:
        currency = self.policy(row.policy_version).spec.currency
        return Decision(
            row.id,
            row.application_id,
            row.customer_id,
            row.created_at,
            Outcome(row.outcome),
            row.limit_amount,
            row.apr,
            row.score,
            tuple(row.reasons),
            row.policy_version,
            row.model_version,
            currency,
            Language(row.inputs.get("language", "zh")),
            replayed,
            case_id=self.cases.case_id_for_decision(row.id) if row.outcome == Outcome.REVIEW.value else None,
            line_id=self.lines.line_id_for_decision(row.id),
        )

    def _row(self, decision_id: str) -> Any:
        with self.db.connect() as conn:
            row = conn.execute(sa.select(decisions).where(decisions.c.id == decision_id)).one_or_none()
        if row is None:
            raise not_found("decision", decision_id, "decision_id")
        return row

    def get_decision(self, decision_id: str) -> Decision:
        return self._to_decision(self._row(decision_id))

    def explain(self, decision_id: str, *, reveal_pii: bool = False) -> dict[str, Any]:
        """The stored decision, its inputs and features, and explanations for the analyst and the customer.

        The decision is replayed under the policy version that made it; ``reproduced`` says whether the replay
        gave the same outcome, reasons, limit and APR. A drawdown decision (or a person's decision in its place) is
        explained and replayed by its drawdown rules instead (``fengkong.lines.drawdown_explain``).
        """
        row = self._row(decision_id)
        from fengkong.lines import drawdown_explain

        drawdown = drawdown_explain.drawdown_root(self, row)
        if drawdown is not None:  # drawdown decisions store no identifiers
            return drawdown_explain.explain(self, row, drawdown, {})
        policy = self.policy(row.policy_version)
        replay = policy.decide_row(row.features)
        reproduced = (
            replay.outcome.value == row.outcome
            and list(replay.reasons) == list(row.reasons)
            and replay.limit == row.limit_amount
            and replay.apr == row.apr
        )
        decision = self._to_decision(row)
        identity = self.vault.decrypt(row.identity_encrypted) if row.identity_encrypted else {}
        shown = identity if reveal_pii else {k: mask(k, v) for k, v in identity.items()}
        return {
            **decision.response(),
            "customer_id": row.customer_id,
            "score": row.score,
            "inputs": row.inputs,
            "identity": shown,
            "features": row.features,
            "rule_hits": row.rule_hits,
            "reproduced": reproduced,
            "explanation": {
                "analyst": analyst_view(policy, replay, row.features),
                "customer": {
                    lang.value: customer_view(
                        decision.outcome,
                        list(decision.reasons),
                        decision.limit,
                        decision.apr,
                        decision.currency,
                        decision.decision_id,
                        lang,
                    )
                    for lang in Language
                },
            },
        }

    # ------------------------------------------------------------------------------------------ events

    def ingest(self, items: list[Any], actor: str = "python") -> IngestResult:
        """Store and count a batch of events. Valid ones are kept even when others in the batch are refused;
        an event_id already stored is reported as a duplicate and counted nowhere twice.

        The cyclic garbage collector waits until the batch is done (see :mod:`fengkong.runtime`)."""
        with deferred_gc():
            return self._ingest(items, actor)

    def _ingest(self, items: list[Any], actor: str) -> IngestResult:
        result = IngestResult()
        good, result.rejected = parse_events(items)
        if not good:
            return result
        received = _now()
        rows = []
        prepared = []
        for _index, event in good:
            payload, keys = protect(event, self.vault)
            occurred = event.utc()
            rows.append(
                {
                    "event_id": event.event_id,
                    "type": event.type,
                    "customer_id": event.customer_id,
                    "occurred_at": occurred,
                    "received_at": received,
                    "payload": payload,
                }
            )
            prepared.append((event, occurred, keys, payload))
        with self.db.connect() as conn:
            ids = [r["event_id"] for r in rows]
            existing = set(conn.execute(sa.select(events.c.event_id).where(events.c.event_id.in_(ids))).scalars())
        new_rows = [r for r in rows if r["event_id"] not in existing]
        # The in-process state is updated while another thread writes the batch (the database driver works with
        # the GIL released); the call still returns only once the events are durable. A shared state (Redis)
        # cannot be rebuilt if the write fails, so it is updated only after the write.
        store = self._writer.submit(self._store_events, new_rows) if new_rows and self._replay_windows else None
        if new_rows and store is None:
            existing |= self._store_events(new_rows)
        try:
            raised = self._apply_events(prepared, existing, result, actor)
        finally:
            if store is not None:
                wait([store])
        if store is not None:
            error = store.exception()
            if error is not None:
                log.error("a batch of %d events was not stored: %s", len(new_rows), type(error).__name__)
                self._reset_online_state()  # the state counted events the store does not hold
                raise error
            raced = store.result()
            if raced:  # stored by a concurrent batch meanwhile: counted once (the state ignores a repeat), by it
                existing |= raced
                result.duplicates.extend(e for e in result.accepted if e in raced)
                result.accepted = [e for e in result.accepted if e not in raced]
                raised = [a for a in raised if a["event_id"] not in raced]
        complaints = [p[0] for p in prepared if p[0].type == "complaint" and p[0].event_id not in existing]
        if raised or complaints:
            self._follow_up(raised, complaints, actor)
            result.alerts = [a["id"] for a in raised]
        metrics.EVENTS.inc(len(result.accepted))
        return result

    def _store_events(self, rows: list[dict[str, Any]]) -> set[str]:
        """Write new events in one transaction; returns the ids a concurrent batch stored first (duplicates)."""
        return store_new(self.db, rows)

    def _apply_events(
        self,
        prepared: list[tuple[Any, dt.datetime, dict[str, str], dict[str, Any]]],
        existing: set[str],
        result: IngestResult,
        actor: str,
    ) -> list[dict[str, Any]]:
        """Count new events in the online state and run their triggers; returns the alerts raised."""
        policy = self.policy()
        raised: list[dict[str, Any]] = []
        if _LOAN_EVENTS.intersection(p[0].type for p in prepared):  # before triggers, which then see the loan paid
            raised.extend(self.loans.on_events([p[0] for p in prepared if p[0].event_id not in existing], actor))
        for event, occurred, keys, payload in prepared:
            if event.event_id in existing:
                result.duplicates.append(event.event_id)
                continue
            self.online.observe(
                observation(event.type, event.event_id, occurred, keys, payload), payload.get("outcome")
            )
            result.accepted.append(event.event_id)
            if policy.wakes(event.type):
                raised.extend(self._fire_triggers(policy, event.type, event.event_id, keys, occurred, prepared))
        return raised

    def _reset_online_state(self) -> None:
        """Rebuild the in-process state from the stored events, after it counted a batch the store refused."""
        self.online = OnlineFeatures(Velocity(self.online.velocity.specs, MemoryState()), EntityGraph())
        self._mark_expiry = []
        self._rebuild_online_state()

    def _follow_up(self, raised: list[dict[str, Any]], complaints: list[Any], actor: str) -> None:
        """What a stored batch sets off, in one transaction: its alerts (with their line freezes and audit
        entries), the cases of open_case and early-warning alerts and of complaints, and the collection pauses
        of complaints about a collector. If that transaction fails, the same steps run apart, each on its own,
        so that a failure in the case queue never loses the alerts (``engine.cases.sweep()`` opens what is
        missing)."""
        collector = self.loans.collector_complaints(complaints)
        try:
            with self.db.begin() as conn:
                if raised:
                    self._write_alerts(conn, raised, actor)
                opened = self.cases.open_for_batch(conn, raised, complaints, actor)
                if collector:
                    by_event = {c["event_id"]: c["case_id"] for c in opened if c["type"] == "complaint"}
                    self.loans.record_pauses(conn, collector, by_event, actor)
        except Exception as exc:
            log.warning("a batch's alerts, cases and pauses could not be written together: %s", type(exc).__name__)
            if raised:
                self._store_alerts(raised, actor)
            try:  # each complaint opens a complaint case; a failure is retried by engine.cases.sweep()
                self.cases.on_complaints(complaints, actor)
            except Exception as again:  # the events are stored; never fail ingestion because of the case queue
                log.error("opening complaint cases failed: %s", type(again).__name__)
            try:
                self.loans.pause_many(collector, "collector_complaint", actor)
            except Exception as again:  # the stored complaints still pause contact: see LoanDesk._paused
                log.error("pauses for %d complaints not recorded: %s", len(collector), type(again).__name__)
            return
        self._alerts_written(raised)

    def _fire_triggers(
        self,
        policy: CompiledPolicy,
        event_type: str,
        event_id: str,
        keys: Mapping[str, str],
        occurred: dt.datetime,
        batch: list[tuple[Any, dt.datetime, dict[str, str], dict[str, Any]]] | None = None,
    ) -> list[dict[str, Any]]:
        """Event triggers see the customer's online features *including* this event (and, for the loan book,
        the events of its ``batch``, which may still be being written)."""
        needed = policy.trigger_inputs(event_type)
        features = self.online.features(keys, occurred.timestamp(), only=needed)
        if needed & _LIST_FEATURES:  # a database look-up: only when a woken trigger reads a list
            features.update(self._list_features(keys["customer"], keys, occurred))
        if _reads_loan_book(needed):  # post-loan features: the loan book, as of the event
            if self.loans.has_loans(keys["customer"]):
                features.update(self.loans.customer_features(keys["customer"], occurred, batch=batch))
            else:
                features.update(no_loans())
        now = _now()
        return [
            {
                "id": new_id("alr"),
                "created_at": now,
                "customer_id": keys["customer"],
                "event_id": event_id,
                "trigger_id": t.id,
                "action": t.action,
                "reason": t.reason,
                "policy_version": policy.version,
                "features": {k: v for k, v in features.items() if v not in (None, 0.0, False)},
                "status": "open",
            }
            for t in policy.fire_triggers(event_type, features)
        ]

    def _store_alerts(self, rows: list[dict[str, Any]], actor: str) -> None:
        """Alerts in their own transaction, then their cases (each step isolated)."""
        with self.db.begin() as conn:
            self._write_alerts(conn, rows, actor)
        self._alerts_written(rows)
        try:  # open_case (and early-warning) alerts become cases; a failure is retried by engine.cases.sweep()
            self.cases.on_alerts(rows, actor)
        except Exception as exc:  # the alerts are stored; never fail ingestion because of the case queue
            log.error("opening cases for alerts failed: %s", type(exc).__name__)

    def _write_alerts(self, conn: sa.Connection, rows: list[dict[str, Any]], actor: str) -> None:
        conn.execute(sa.insert(alerts), rows)
        for row in rows:
            if row["action"] == "freeze_line":
                self.lines.freeze_for_alert(conn, row, actor)
        for row in rows:
            audit.append(
                conn,
                "alert_raised",
                row["id"],
                actor,
                audit.content_hash(
                    {k: row[k] for k in ("customer_id", "event_id", "trigger_id", "action", "reason", "policy_version")}
                ),
                row["created_at"],
            )

    @staticmethod
    def _alerts_written(rows: list[dict[str, Any]]) -> None:
        for row in rows:
            metrics.ALERTS.labels(row["trigger_id"], row["action"]).inc()
            log.info("alert %s trigger=%s action=%s", row["id"], row["trigger_id"], row["action"])

    def list_alerts(
        self, customer_id: str | None = None, status: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        query = sa.select(alerts).order_by(alerts.c.created_at.desc()).limit(limit)
        if customer_id is not None:
            query = query.where(alerts.c.customer_id == customer_id)
        if status is not None:
            query = query.where(alerts.c.status == status)
        with self.db.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return [{**row, "created_at": audit.timestamp_text(row["created_at"])} for row in rows]

    def ingest_json(self, body: bytes | str, actor: str = "api") -> IngestResult:
        data = parse_json_body(body)
        if isinstance(data, dict) and "events" in data and "type" not in data:
            extra = sorted(set(data) - {"events"})
            if extra:
                raise FengkongError(
                    "unknown_field", f"{extra[0]}: is not a known field (check its spelling)", extra[0], 422
                )
            if not isinstance(data["events"], list):
                raise FengkongError("invalid_field", "events: must be a list of events", "events", 422)
            data = data["events"]
        if isinstance(data, dict):
            result = self.ingest([data], actor)
            if result.rejected:  # a single event is answered like an application: refused whole, with its field
                r = result.rejected[0]
                message = r.message if not r.field or r.message.startswith(f"{r.field}:") else f"{r.field}: {r.message}"
                raise FengkongError(r.code, message, r.field, 422)
            return result
        if not isinstance(data, list):
            raise FengkongError(
                "invalid_body", 'send one event object, a list of events or {"events": [...]}', "body", 422
            )
        if len(data) > MAX_EVENTS_PER_BATCH:
            raise FengkongError("batch_too_large", f"at most {MAX_EVENTS_PER_BATCH} events per request", "body", 422)
        result = self.ingest(data, actor)
        if result.rejected and not result.accepted and not result.duplicates:
            first = result.rejected[0]
            err = FengkongError(
                "no_valid_events",
                f"no event in the batch is valid; first: event {first.index}: {first.message}",
                f"events[{first.index}].{first.field or ''}".rstrip("."),
                422,
            )
            err.problems = [
                FieldProblem(f"events[{r.index}].{r.field or ''}".rstrip("."), r.message, r.code)
                for r in result.rejected
            ]
            raise err
        return result

    def online_features(
        self, customer_id: str, identity: Mapping[str, str] | None = None, as_of: dt.datetime | None = None
    ) -> dict[str, Any]:
        """The online features of a customer now (for analysts and tests); identity holds keyed hashes."""
        keys = entity_keys(customer_id, identity or {})
        now = as_of or _now()
        self._expire_marks(now)
        return self.online.features(keys, now.timestamp())

    def _rebuild_online_state(self) -> None:
        """Replay stored events into the online state, so a restart loses nothing."""
        since = _now() - dt.timedelta(seconds=self.online.velocity.horizon)
        with self.db.connect() as conn:
            rows = conn.execute(
                sa.select(
                    events.c.event_id, events.c.type, events.c.customer_id, events.c.occurred_at, events.c.payload
                ).order_by(events.c.occurred_at)
            )
            for row in rows:
                payload = row.payload
                keys = keys_from_payload(row.customer_id, payload)
                occurred = row.occurred_at if row.occurred_at.tzinfo else row.occurred_at.replace(tzinfo=dt.UTC)
                obs = observation(row.type, row.event_id, occurred, keys, payload)
                if occurred < since or not self._replay_windows:
                    # too old for any window (or the windows live in Redis): still part of the link graph
                    self.online.graph_only(obs, payload.get("outcome"))
                else:
                    self.online.observe(obs, payload.get("outcome"))
            now = _now()
            for customer, expires_at in conn.execute(
                sa.select(risk_lists.c.key_hash, risk_lists.c.expires_at).where(
                    (risk_lists.c.kind == "customer")
                    & (risk_lists.c.list == "blacklist")
                    & risk_lists.c.removed_at.is_(None)
                )
            ):
                self._mark_blacklisted(customer, expires_at, now)
            self.online.community_sizes = {r.customer_id: r.group_size for r in conn.execute(sa.select(graph_groups))}

    def find_communities(self, min_size: int = 3, seed: int = 0, actor: str = "python") -> dict[str, Any]:
        """The periodic batch job: Louvain communities of the link graph, stored as group ids (replacing the
        previous run) for rules (``graph_community_size``) and for analysts."""
        started = time.perf_counter()
        groups = self.online.graph.communities(min_size=min_size, seed=seed)
        sizes: dict[int, int] = {}
        for group in groups.values():
            sizes[group] = sizes.get(group, 0) + 1
        now = _now()
        rows: list[dict[str, Any]] = [
            {"customer_id": c, "group_id": g, "group_size": sizes[g], "computed_at": now} for c, g in groups.items()
        ]
        with self.db.begin() as conn:
            conn.execute(sa.delete(graph_groups))
            if rows:
                conn.execute(sa.insert(graph_groups), rows)
            summary = {"groups": len(sizes), "customers": len(rows), "largest": max(sizes.values(), default=0)}
            audit.append(
                conn,
                "communities_found",
                now.strftime("%Y%m%dT%H%M%S"),
                actor,
                audit.content_hash({**summary, "min_size": min_size, "seed": seed}),
                now,
            )
        self.online.community_sizes = {str(r["customer_id"]): int(r["group_size"]) for r in rows}
        return {**summary, "seconds": round(time.perf_counter() - started, 3)}

    # ------------------------------------------------------------------------------------------ lists

    def add_to_list(
        self,
        list_name: str,
        kind: str,
        value: str,
        reason: str,
        source: str = "analyst",
        expires_at: dt.datetime | None = None,
        actor: str = "python",
        hashed: bool = False,
    ) -> str:
        """Put an identifier (or a customer id) on the blacklist or watchlist. Refused for protected victims."""
        if list_name not in ("blacklist", "watchlist"):
            raise FengkongError("invalid_field", "list must be blacklist or watchlist", "list", 422)
        if kind not in ("customer", "device", "phone", "id_number", "bank_card", "ip", "payee"):
            raise FengkongError("invalid_field", f"unknown identifier kind {kind!r}", "kind", 422)
        if kind == "customer":
            key = value
            if self._is_protected(value):
                raise FengkongError(
                    "protected_customer",
                    f"customer {value!r} is a protected victim and is never "
                    "listed as a fraudster; review the case instead",
                    "value",
                    409,
                )
        else:
            key = self.vault.keyed_hash(kind, value if hashed else sha256_hex(normalize(kind, value)))
        entry_id = new_id("lst")
        now = _now()
        with self.db.begin() as conn:
            conn.execute(
                sa.insert(risk_lists).values(
                    id=entry_id,
                    list=list_name,
                    kind=kind,
                    key_hash=key,
                    reason=reason,
                    source=source,
                    created_at=now,
                    expires_at=expires_at,
                )
            )
            audit.append(
                conn,
                "list_added",
                entry_id,
                actor,
                audit.content_hash({"list": list_name, "kind": kind, "key": key, "reason": reason}),
                now,
            )
        if kind == "customer" and list_name == "blacklist":
            self._mark_blacklisted(key, expires_at, now)
        return entry_id

    def _mark_blacklisted(self, customer_id: str, expires_at: dt.datetime | None, now: dt.datetime) -> None:
        """Mark a blacklisted customer in the link graph, until its entry expires (an expired one marks nothing)."""
        if expires_at is not None:
            if _aware(expires_at) <= now:
                return
            with self._lock:
                heapq.heappush(self._mark_expiry, (_aware(expires_at).timestamp(), customer_id))
        self.online.graph.mark(customer_id, blacklisted=True)

    def _expire_marks(self, now: dt.datetime) -> None:
        """Clear the graph mark of customers whose blacklist entries have all expired by ``now``."""
        if not self._mark_expiry or self._mark_expiry[0][0] > now.timestamp():
            return
        due: set[str] = set()
        with self._lock:
            while self._mark_expiry and self._mark_expiry[0][0] <= now.timestamp():
                due.add(heapq.heappop(self._mark_expiry)[1])
        for customer in due:
            with self.db.connect() as conn:
                entries = (
                    conn.execute(
                        sa.select(risk_lists.c.expires_at).where(
                            (risk_lists.c.kind == "customer")
                            & (risk_lists.c.list == "blacklist")
                            & (risk_lists.c.key_hash == customer)
                            & risk_lists.c.removed_at.is_(None)
                        )
                    )
                    .scalars()
                    .all()
                )
            live = [e for e in entries if e is None or _aware(e) > now]
            if not live:
                self.online.graph.mark(customer, blacklisted=False)
            elif None not in live:
                with self._lock:
                    heapq.heappush(self._mark_expiry, (max(_aware(e).timestamp() for e in live), customer))

    def protect_customer(self, customer_id: str, reason: str = "scam_victim", actor: str = "python") -> None:
        """Mark a customer as a victim (scam, identity theft): protected, never listed as a fraudster."""
        now = _now()
        with self.db.begin() as conn:
            if (
                conn.execute(
                    sa.select(protected_customers.c.customer_id).where(protected_customers.c.customer_id == customer_id)
                ).first()
                is None
            ):
                conn.execute(
                    sa.insert(protected_customers).values(customer_id=customer_id, reason=reason, created_at=now)
                )
                conn.execute(
                    sa.update(risk_lists)
                    .where(
                        (risk_lists.c.kind == "customer")
                        & (risk_lists.c.key_hash == customer_id)
                        & risk_lists.c.removed_at.is_(None)
                    )
                    .values(removed_at=now)
                )
                audit.append(
                    conn,
                    "customer_protected",
                    customer_id,
                    actor,
                    audit.content_hash({"customer": customer_id, "reason": reason}),
                    now,
                )
        self.online.graph.mark(customer_id, blacklisted=False, fraud=False)

    def _is_protected(self, customer_id: str) -> bool:
        with self.db.connect() as conn:
            return (
                conn.execute(
                    sa.select(protected_customers.c.customer_id).where(protected_customers.c.customer_id == customer_id)
                ).first()
                is not None
            )

    def _list_features(self, customer_id: str, keys: Mapping[str, str], now: dt.datetime) -> dict[str, Any]:
        wanted = [v for k, v in keys.items() if k != "customer"] + [customer_id]
        with self.db.connect() as conn:
            hits = conn.execute(
                sa.select(risk_lists.c.list, risk_lists.c.expires_at).where(
                    risk_lists.c.key_hash.in_(wanted) & risk_lists.c.removed_at.is_(None)
                )
            ).all()
            protected = (
                conn.execute(
                    sa.select(protected_customers.c.customer_id).where(protected_customers.c.customer_id == customer_id)
                ).first()
                is not None
            )
        live = {h.list for h in hits if h.expires_at is None or _aware(h.expires_at) > now}
        return {
            "list_blacklist_hit": "blacklist" in live,
            "list_watchlist_hit": "watchlist" in live,
            "customer_protected": protected,
        }

    # ------------------------------------------------------------------------------------------ audit

    def verify_audit(self) -> audit.AuditReport:
        """Walk the chain, recompute what it vouches for, and look for rows that bypassed it."""
        hashers = {
            "decision": _decision_hashes,
            "policy_published": _policy_hashes,
            "api_key_created": _api_key_hashes,
            "api_key_revoked": _api_key_revocation_hashes,
            **self.audit_hashers,
        }
        report = audit.verify(self.db, hashers)
        with self.db.connect() as conn:
            for table, id_col, kind in (
                (decisions, decisions.c.id, "decision"),
                (policies, policies.c.version, "policy_published"),
                (api_keys, api_keys.c.id, "api_key_created"),
            ):
                logged = sa.exists().where((audit_log.c.subject_id == id_col) & (audit_log.c.kind == kind))
                for orphan in conn.execute(sa.select(id_col).where(~logged).limit(10)).scalars():
                    report.findings.append(
                        audit.AuditFinding(
                            None, f"{table.name} row has no audit entry (written outside fengkong)", orphan
                        )
                    )
            last_activation = conn.execute(
                sa.select(audit_log.c.seq, audit_log.c.subject_id)
                .where(audit_log.c.kind == "policy_activated")
                .order_by(audit_log.c.seq.desc())
                .limit(1)
            ).one_or_none()
            active = conn.execute(sa.select(policies.c.version).where(policies.c.active)).scalars().all()
            expected = [] if last_activation is None else [last_activation.subject_id]
            if sorted(active) != expected:
                report.findings.append(
                    audit.AuditFinding(
                        None,
                        f"active policy is {active or 'none'} but the last audited activation is "
                        f"{expected or 'none'}: the active flag was changed outside fengkong",
                        ",".join(active) or None,
                    )
                )
        return report

    # ------------------------------------------------------------------------------------------ API keys

    def create_api_key(self, role: Role | str, name: str = "", actor: str = "cli") -> str:
        """Create a key and return it; only its hash is stored, so it cannot be shown again."""
        try:
            role = Role(role)
        except ValueError:
            roles = ", ".join(r.value for r in Role)
            raise FengkongError("invalid_role", f"role must be one of {roles}", "role", 422) from None
        key_id, key, key_hash = new_api_key()
        now = _now()
        with self.db.begin() as conn:
            conn.execute(
                sa.insert(api_keys).values(
                    id=key_id, key_hash=key_hash, role=role.value, name=name or role.value, created_at=now
                )
            )
            audit.append(conn, "api_key_created", key_id, actor, _api_key_payload(key_id, role.value, key_hash), now)
        return key

    def revoke_api_key(self, key_id: str, actor: str = "cli") -> None:
        now = _now()
        with self.db.begin() as conn:
            done = conn.execute(
                sa.update(api_keys)
                .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
                .values(revoked_at=now)
            ).rowcount
            if not done:
                raise not_found("api_key", key_id, "key_id")
            audit.append(conn, "api_key_revoked", key_id, actor, _revoked_payload(key_id), now)
        self._key_cache.clear()

    def authenticate(self, key: str | None) -> Principal | None:
        """The principal an API key belongs to, or None. Results are cached briefly (revocation: ≤ 10 s)."""
        if not key:
            return None
        cache_key = hash_api_key(key)
        cached = self._key_cache.get(cache_key)
        now = time.monotonic()
        if cached is not None and now - cached[0] < 10:
            return cached[1]
        principal = None
        key_id = parse_key_id(key)
        if key_id is not None:
            with self.db.connect() as conn:
                row = conn.execute(sa.select(api_keys).where(api_keys.c.id == key_id)).one_or_none()
            if row is not None and row.revoked_at is None and key_matches(key, row.key_hash):
                principal = Principal(row.id, Role(row.role), row.name)
        if len(self._key_cache) > 10_000:
            self._key_cache.clear()
        self._key_cache[cache_key] = (now, principal)
        return principal


_INSERT_DECISION = sa.insert(decisions)
_INSERT_EVENT = sa.insert(events)


MAX_EVENTS_PER_BATCH = 10_000
_LIST_FEATURES = frozenset({"list_blacklist_hit", "list_watchlist_hit", "customer_protected"})
_LOAN_EVENTS = frozenset({"repayment"})  # events engine.loans.on_events acts on


@functools.lru_cache(maxsize=256)
def _reads_loan_book(needed: frozenset[str]) -> bool:
    """Whether a set of trigger inputs names a post-loan feature (a few sets, asked per event: cached)."""
    return any(name.startswith("loan_") for name in needed)


REDIS_URL_ENV = "FENGKONG_REDIS_URL"


def assignment_bucket(customer_id: str) -> float:
    """A customer's fixed place in [0, 1): the same person always meets the same policy."""
    digest = hashlib.sha256(f"fengkong/assignment/v1:{customer_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def parse_json_body(body: bytes | str) -> Any:
    """JSON text to Python, or a 400 ``malformed_json`` that says where the text stops making sense."""
    try:
        return json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        pos = getattr(exc, "pos", None)
        where = f" at character {pos}" if pos is not None else ""
        raise FengkongError("malformed_json", f"the request body is not valid JSON{where}", "body", 400) from None


def _aware(moment: dt.datetime) -> dt.datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


_HASHED_FIELDS = (
    "id",
    "kind",
    "application_id",
    "customer_id",
    "outcome",
    "limit_amount",
    "apr",
    "score",
    "reasons",
    "rule_hits",
    "inputs",
    "features",
    "policy_version",
    "model_version",
    "identity_encrypted",
    "request_hash",
    "assignment",
    "shadow_of",
)


def decision_content_hash(record: Mapping[str, Any]) -> str:
    payload = {k: record[k] for k in _HASHED_FIELDS}
    payload["created_at"] = audit.timestamp_text(record["created_at"])
    return audit.content_hash(payload)


def _decision_hashes(conn: sa.Connection, ids: list[str]) -> dict[str, str]:
    rows = conn.execute(sa.select(decisions).where(decisions.c.id.in_(ids))).mappings().all()
    return {r["id"]: decision_content_hash(dict(r)) for r in rows}


def _policy_payload_hash(version: str, content_hash: str) -> str:
    return audit.content_hash({"version": version, "content_hash": content_hash})


def _policy_hashes(conn: sa.Connection, versions: list[str]) -> dict[str, str]:
    rows = conn.execute(sa.select(policies.c.version, policies.c.content).where(policies.c.version.in_(versions))).all()
    return {r.version: _policy_payload_hash(r.version, hashlib.sha256(r.content.encode()).hexdigest()) for r in rows}


def _api_key_payload(key_id: str, role: str, key_hash: str) -> str:
    return audit.content_hash({"key_id": key_id, "role": role, "key_hash": key_hash})


def _revoked_payload(key_id: str) -> str:
    return audit.content_hash({"key_id": key_id, "revoked": True})


def _api_key_hashes(conn: sa.Connection, ids: list[str]) -> dict[str, str]:
    rows = conn.execute(sa.select(api_keys).where(api_keys.c.id.in_(ids))).all()
    return {r.id: _api_key_payload(r.id, r.role, r.key_hash) for r in rows}


def _api_key_revocation_hashes(conn: sa.Connection, ids: list[str]) -> dict[str, str]:
    rows = conn.execute(sa.select(api_keys.c.id, api_keys.c.revoked_at).where(api_keys.c.id.in_(ids))).all()
    return {r.id: _revoked_payload(r.id) if r.revoked_at is not None else "not revoked" for r in rows}


__all__ = ["Decision", "Engine", "FengkongError", "PolicyError"]
