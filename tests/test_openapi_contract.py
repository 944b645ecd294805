"""The HTTP API checked against its own OpenAPI document by a generated client (schemathesis).

Every operation is called with requests generated from the schema, valid and invalid; each response must
be a documented status with a body matching its documented schema, and no request may cause a 5xx.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance

from fengkong import Engine
from fengkong.api import create_app

TEST_SECRET = "test-secret-key-0123456789abcdef-0123456789"

# Schemathesis builds its tests at collection time, so the app is built at import, in a temp folder
# removed when the module's tests end (see teardown_module).
_TMP = Path(tempfile.mkdtemp(prefix="fengkong-contract-"))
_ENGINE = Engine(f"sqlite:///{_TMP / 'contract.db'}", secret_key=TEST_SECRET)
_KEY = _ENGINE.create_api_key("admin")
schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(_ENGINE))


def teardown_module() -> None:
    _ENGINE.close()
    shutil.rmtree(_TMP, ignore_errors=True)


def _windows_out_of_order(record: dict[str, Any]) -> bool:
    windows = [record.get(k) for k in ("inquiries_7d", "inquiries_30d", "inquiries_90d")]
    numbers = all(isinstance(w, int | float) and not isinstance(w, bool) for w in windows)
    return numbers and not windows[0] <= windows[1] <= windows[2]


def _breaks_cross_field_rules(body: Any) -> bool:
    """Rules JSON Schema cannot state (documented in the field descriptions), which the API rightly refuses."""
    if isinstance(body, list):
        return any(isinstance(e, dict) and e.get("type") == "bureau_update" and _windows_out_of_order(e) for e in body)
    if not isinstance(body, dict):
        return False
    if body.get("policy_version") is not None:
        return True  # names a version that must exist: a reference, like a foreign key
    identity = body.get("identity")
    if isinstance(identity, dict):
        for kind in ("id_number", "phone", "bank_card"):
            if identity.get(kind) is not None and identity.get(f"{kind}_hash") is not None:
                return True
        if identity.get("id_number") is None and identity.get("id_number_hash") is None:
            return True
    applicant = body.get("applicant")
    no_raw_id = not isinstance(identity, dict) or identity.get("id_number") is None
    if isinstance(applicant, dict) and applicant.get("age") is None and no_raw_id:
        return True  # the age can only be left out when it can be read from a raw ID number
    events = body.get("events") if isinstance(body.get("events"), list) else [body]
    for event in events:
        if isinstance(event, dict) and event.get("type") == "bureau_update" and _windows_out_of_order(event):
            return True
    bureau = body.get("bureau")
    return isinstance(bureau, dict) and _windows_out_of_order(bureau)


@schema.parametrize()
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True, database=None)
def test_api_conforms_to_its_openapi_document(case: schemathesis.Case) -> None:
    # A policy's text is validated by the policy compiler, not by JSON Schema: random text is rightly refused.
    semantic_body = case.method == "POST" and case.operation.path in (
        "/v1/policies",  # policy text is checked by the compiler
        "/v1/policies/{version}/simulate",  # the rows must carry the features the policies read
    )
    body = case.body if isinstance(case.body, dict) else {}
    if case.operation.path == "/v1/policies/{version}/role" and body.get("role") == "challenger":
        semantic_body = semantic_body or body.get("share") is None  # a challenger needs its share
    excluded = [positive_data_acceptance] if semantic_body or _breaks_cross_field_rules(case.body) else []
    # A query string has no types: "customer_id=[1]" is the text "[1]" to any server, not a schema violation.
    if case.method == "GET" and case.operation.path == "/v1/alerts":
        excluded.append(negative_data_rejection)
    # A batch of events keeps its valid events and lists the invalid ones (200 with errors), by design.
    if case.operation.path == "/v1/events" and not (isinstance(case.body, dict) and "type" in case.body):
        excluded.append(negative_data_rejection)
    case.call_and_validate(headers={"X-API-Key": _KEY}, excluded_checks=excluded)
