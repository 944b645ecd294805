"""The FastAPI application: routers, error handlers and the engine it serves."""

from __future__ import annotations

import logging
from typing import Annotated, Any, Literal

import sqlalchemy as sa
from fastapi import Depends, FastAPI, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException

from fengkong import __version__, metrics
from fengkong.api.auth import get_engine, require
from fengkong.api.lines_routes import router as lines_router
from fengkong.api.schemas import (
    ERRORS,
    AuditOut,
    DecisionDetailOut,
    DecisionOut,
    HealthOut,
    IngestOut,
    ListEntryIn,
    ListEntryOut,
    PolicyIn,
    PolicyOut,
    PolicyRoleIn,
    ProtectIn,
    SimulationIn,
)
from fengkong.applications import ApplicationIn
from fengkong.errors import FengkongError, FieldProblem
from fengkong.events.schema import EVENT_ADAPTER
from fengkong.policy.doors import DATE_PATTERN
from fengkong.policy.errors import PolicyError
from fengkong.policy.loader import load_policy_text
from fengkong.security import Permission, Principal
from fengkong.service import Engine

log = logging.getLogger("fengkong.api")

MAX_BODY_BYTES = 256 * 1024
MAX_EVENTS_BODY_BYTES = 16 * 1024 * 1024


def create_app(engine: Engine | None = None) -> FastAPI:
    app = FastAPI(
        title="fengkong",
        version=__version__,
        description="Open, explainable credit risk control: decisions, reasons, policies and a tamper-evident audit.",
        responses=ERRORS,
        dependencies=[Depends(_reject_unknown_query)],
    )
    app.state.engine = engine if engine is not None else Engine()
    _install_error_handlers(app)
    _routes(app)
    # Routers of subsystems, one module each under fengkong/api/.
    # --- lines (issue 5)
    app.include_router(lines_router)
    # --- models (issue 4)
    from fengkong.api.models_routes import router as models_router

    app.include_router(models_router)
    # --- loans (issue 6)
    from fengkong.api.loans_routes import router as loans_router

    app.include_router(loans_router)
    # --- cases (issue 7)
    from fengkong.api.cases_routes import router as cases_router

    app.include_router(cases_router)
    # --- console (issue 7)
    from fengkong.web.app import mount_console

    mount_console(app)
    return app


def _reject_unknown_query(request: Request) -> None:
    """A misspelt query parameter (``?reveal_pil=true``) is an error, not silently ignored."""
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if dependant is None or not request.query_params:
        return
    known: set[str] = set()
    stack = [dependant]
    while stack:
        dep = stack.pop()
        known |= {p.alias for p in dep.query_params}
        stack.extend(dep.dependencies)
    for name in request.query_params:
        if name not in known:
            allowed = ", ".join(sorted(known)) or "none"
            raise FengkongError("unknown_field", f"unknown query parameter {name!r} (allowed: {allowed})", name, 422)


def _error_response(err: FengkongError) -> JSONResponse:
    if 400 <= err.status < 500:
        metrics.REJECTED.labels(err.code).inc()
    return JSONResponse(err.as_dict(), status_code=err.status)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(FengkongError)
    async def fengkong_error(_request: Request, exc: FengkongError) -> JSONResponse:
        return _error_response(exc)

    @app.exception_handler(PolicyError)
    async def policy_error(_request: Request, exc: PolicyError) -> JSONResponse:
        problems = [{"field": p.where, "code": "invalid_policy", "message": p.render(exc.source)} for p in exc.problems]
        err = FengkongError("invalid_policy", problems[0]["message"], problems[0]["field"], 422)
        body = err.as_dict() | {"errors": problems}
        metrics.REJECTED.labels(err.code).inc()
        return JSONResponse(body, status_code=422)

    @app.exception_handler(RequestValidationError)
    async def request_validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        for e in exc.errors():
            kind = str(e.get("type"))
            if kind == "json_invalid":  # the body is not JSON: the same answer as POST /v1/applications gives
                return _error_response(
                    FengkongError("malformed_json", "the request body is not valid JSON", "body", 400)
                )
            loc = [str(p) for p in e.get("loc", ())]
            field = ".".join(loc[1:] if loc and loc[0] in ("query", "path", "body") else loc) or "body"
            code = {"missing": "missing_field", "extra_forbidden": "unknown_field"}.get(kind, "invalid_field")
            problems.append(FieldProblem(field, str(e.get("msg")), code))
        first = problems[0] if problems else FieldProblem("request", "invalid request")
        err = FengkongError(first.code, f"{first.field}: {first.message}", first.field, 422, problems)
        return _error_response(err)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        codes = {404: "not_found", 405: "method_not_allowed"}
        code = codes.get(exc.status_code, "http_error")
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            # Starlette answers for the first route whose path matches; list the methods of every such route.
            allowed: set[str] = set()
            for route in request.app.routes:
                regex = getattr(route, "path_regex", None)
                if regex is not None and regex.match(request.url.path):
                    allowed |= set(getattr(route, "methods", None) or ())
            headers["Allow"] = ", ".join(sorted(allowed))
        message = f"{request.method} {request.url.path}: {exc.detail}"
        return JSONResponse({"code": code, "message": message, "field": None}, exc.status_code, headers=headers)

    @app.exception_handler(Exception)
    async def unexpected(_request: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled error: %s", type(exc).__name__)  # no message: it could hold request data
        return JSONResponse(
            {"code": "internal_error", "message": "the server failed; nothing was changed", "field": None},
            status_code=500,
        )


EngineDep = Annotated[Engine, Depends(get_engine)]


def _routes(app: FastAPI) -> None:
    application_schema = ApplicationIn.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, schema in application_schema.pop("$defs", {}).items():
        _EXTRA_SCHEMAS[name] = schema
    _EXTRA_SCHEMAS["ApplicationIn"] = application_schema
    event_schema = EVENT_ADAPTER.json_schema(ref_template="#/components/schemas/{model}")
    for name, schema in event_schema.pop("$defs", {}).items():
        _EXTRA_SCHEMAS[name] = schema
    _EXTRA_SCHEMAS["Event"] = event_schema

    @app.post(
        "/v1/applications",
        response_model=DecisionOut,
        tags=["decisions"],
        summary="Decide a credit application",
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ApplicationIn"}}},
            }
        },
    )
    async def decide_application(
        request: Request, engine: EngineDep, principal: Annotated[Principal, Depends(require(Permission.DECIDE))]
    ) -> dict[str, Any]:
        body = await _read_body(request)
        decision = await run_in_threadpool(engine.decide_json, body, f"key:{principal.key_id}")
        return decision.response()

    @app.post(
        "/v1/events",
        response_model=IngestOut,
        tags=["events"],
        summary="Ingest one event or a batch; idempotent on event_id",
        description='Send one event, a list, or {"events": [...]}. Every valid event is stored (durably, before '
        "the answer) and counted once; invalid ones are listed under errors with their index and are not stored.",
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "anyOf": [
                                {"$ref": "#/components/schemas/Event"},
                                {"type": "array", "items": {"$ref": "#/components/schemas/Event"}, "maxItems": 10000},
                                {
                                    "type": "object",
                                    "properties": {
                                        "events": {
                                            "type": "array",
                                            "maxItems": 10000,
                                            "items": {"$ref": "#/components/schemas/Event"},
                                        }
                                    },
                                    "required": ["events"],
                                    "additionalProperties": False,
                                },
                            ]
                        }
                    }
                },
            }
        },
    )
    async def ingest_events(
        request: Request, engine: EngineDep, principal: Annotated[Principal, Depends(require(Permission.INGEST))]
    ) -> dict[str, Any]:
        body = await _read_body(request, limit=MAX_EVENTS_BODY_BYTES)
        result = await run_in_threadpool(engine.ingest_json, body, f"key:{principal.key_id}")
        return result.as_dict()

    @app.get(
        "/v1/customers/{customer_id}/features",
        tags=["events"],
        summary="A customer's online features now (velocity windows, link graph)",
    )
    def customer_features(
        customer_id: str,
        engine: EngineDep,
        _p: Annotated[Principal, Depends(require(Permission.READ_DECISION))],
    ) -> dict[str, Any]:
        return engine.online_features(customer_id)

    @app.get("/v1/alerts", tags=["events"], summary="Alerts raised by the policy's event triggers, newest first")
    def list_alerts(
        engine: EngineDep,
        _p: Annotated[Principal, Depends(require(Permission.READ_DECISION))],
        customer_id: Annotated[str | None, Query(max_length=64)] = None,
        status: Annotated[Literal["open", "closed"] | None, Query()] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> list[dict[str, Any]]:
        return engine.list_alerts(customer_id, status, limit)

    @app.post(
        "/v1/lists",
        response_model=ListEntryOut,
        tags=["lists"],
        summary="Put an identifier or customer on the blacklist or watchlist",
    )
    def add_list_entry(
        body: ListEntryIn,
        engine: EngineDep,
        principal: Annotated[Principal, Depends(require(Permission.MANAGE_LISTS))],
    ) -> dict[str, Any]:
        entry = engine.add_to_list(
            body.list, body.kind, body.value, body.reason, body.source, body.expires_at, actor=f"key:{principal.key_id}"
        )
        return {"id": entry}

    @app.post(
        "/v1/customers/{customer_id}/protect",
        tags=["lists"],
        summary="Record a customer as a scam or identity-theft victim: protected, never listed",
    )
    def protect_customer(
        customer_id: str,
        body: ProtectIn,
        engine: EngineDep,
        principal: Annotated[Principal, Depends(require(Permission.MANAGE_LISTS))],
    ) -> dict[str, Any]:
        engine.protect_customer(customer_id, body.reason, actor=f"key:{principal.key_id}")
        return {"customer_id": customer_id, "protected": True, "reason": body.reason}

    @app.get(
        "/v1/decisions/{decision_id}",
        response_model=DecisionDetailOut,
        tags=["decisions"],
        summary="A stored decision with its inputs, features and explanations",
    )
    def get_decision(
        decision_id: str,
        engine: EngineDep,
        principal: Annotated[Principal, Depends(require(Permission.READ_DECISION))],
        reveal_pii: Annotated[
            bool, Query(description="show identifiers unmasked (needs the view_pii permission)")
        ] = False,
    ) -> dict[str, Any]:
        if reveal_pii and not principal.can(Permission.VIEW_PII):
            raise FengkongError(
                "forbidden", f"role {principal.role.value!r} may not view unmasked personal data", "reveal_pii", 403
            )
        return engine.explain(decision_id, reveal_pii=reveal_pii)

    @app.get("/v1/policies", response_model=list[PolicyOut], tags=["policies"])
    def list_policies(
        engine: EngineDep, _p: Annotated[Principal, Depends(require(Permission.READ_POLICY))]
    ) -> list[dict[str, Any]]:
        return engine.list_policies()

    @app.post("/v1/policies", response_model=PolicyOut, tags=["policies"], summary="Publish a policy version")
    def publish_policy(
        body: PolicyIn, engine: EngineDep, principal: Annotated[Principal, Depends(require(Permission.MANAGE_POLICY))]
    ) -> dict[str, Any]:
        compiled = load_policy_text(
            body.content, source="request body", features=engine.features, models=engine.models.resolve
        )
        version = engine.publish_policy(compiled, actor=f"key:{principal.key_id}", activate=body.activate)
        return next(p for p in engine.list_policies() if p["version"] == version)

    @app.post(
        "/v1/policies/{version}/simulate",
        tags=["policies"],
        summary="Re-decide historical applications under this version and the current one, side by side",
    )
    def simulate_policy(
        version: str,
        body: SimulationIn,
        engine: EngineDep,
        _p: Annotated[Principal, Depends(require(Permission.READ_POLICY))],
    ) -> dict[str, Any]:
        from fengkong.policy.doors import http_simulate

        return http_simulate(engine, version, body)

    @app.post(
        "/v1/policies/{version}/activate",
        response_model=PolicyOut,
        tags=["policies"],
        summary="Promote a published version to champion, or roll back to an earlier one",
    )
    def activate_policy(
        version: str,
        engine: EngineDep,
        principal: Annotated[Principal, Depends(require(Permission.MANAGE_POLICY))],
    ) -> dict[str, Any]:
        engine.activate_policy(version, actor=f"key:{principal.key_id}")
        return next(p for p in engine.list_policies() if p["version"] == version)

    @app.post(
        "/v1/policies/{version}/role",
        tags=["policies"],
        summary="Make a published version the challenger (with a share of customers) or the shadow",
    )
    def set_policy_role(
        version: str,
        body: PolicyRoleIn,
        engine: EngineDep,
        principal: Annotated[Principal, Depends(require(Permission.MANAGE_POLICY))],
    ) -> dict[str, Any]:
        engine.set_policy_role(version, body.role, body.share, actor=f"key:{principal.key_id}")
        return {"version": version, "role": body.role, "share": body.share if body.role == "challenger" else None}

    @app.get(
        "/v1/policies/compare",
        tags=["policies"],
        summary="Champion, challenger and shadow side by side, from live decisions",
    )
    def compare_policies(
        engine: EngineDep,
        _p: Annotated[Principal, Depends(require(Permission.READ_POLICY))],
        since: Annotated[
            str | None, Query(pattern=DATE_PATTERN, description="only decisions from this day on (YYYY-MM-DD, UTC)")
        ] = None,
        segments: Annotated[
            str | None,
            Query(max_length=200, description="comma-separated fields or features (default: product, employment)"),
        ] = None,
    ) -> dict[str, Any]:
        from fengkong.policy.doors import parse_since

        columns = None if segments is None else [c.strip() for c in segments.split(",") if c.strip()]
        return engine.compare_policies(parse_since(since), columns)

    @app.get("/v1/audit/verify", response_model=AuditOut, tags=["audit"], summary="Check the audit chain")
    def verify_audit(
        engine: EngineDep, _p: Annotated[Principal, Depends(require(Permission.VERIFY_AUDIT))]
    ) -> dict[str, Any]:
        return engine.verify_audit().as_dict()

    @app.get("/healthz", response_model=HealthOut, tags=["operations"])
    def healthz(engine: EngineDep) -> Any:
        try:
            with engine.db.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
            version = engine.active_policy_version()
        except sa.exc.SQLAlchemyError:
            return JSONResponse(
                {"status": "unavailable", "database": "unreachable", "policy_version": None, "version": __version__},
                status_code=503,
            )
        return {"status": "ok", "database": "ok", "policy_version": version, "version": __version__}

    @app.get("/metrics", tags=["operations"], response_class=Response)
    def prometheus_metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    original = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = original()
            schema.setdefault("components", {}).setdefault("schemas", {}).update(_EXTRA_SCHEMAS)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


_EXTRA_SCHEMAS: dict[str, Any] = {}


async def _read_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise FengkongError("body_too_large", f"the request body exceeds {limit} bytes", "body", 413)
    body = await request.body()
    if len(body) > limit:
        raise FengkongError("body_too_large", f"the request body exceeds {limit} bytes", "body", 413)
    return body


__all__ = ["create_app"]
