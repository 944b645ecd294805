"""HTTP doors of the model registry (thin: ``engine.models``). Reading needs ``read_model``; training and
registering stay on the CLI and the Python API, where the training files are."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi import Path as PathParam
from pydantic import BaseModel, Field

from fengkong.api.auth import get_engine, require
from fengkong.security import Permission, Principal
from fengkong.service import Engine

router = APIRouter()

EngineDep = Annotated[Engine, Depends(get_engine)]
_NAME = r"^[A-Za-z][A-Za-z0-9_.\-]{0,39}$"
_VERSION = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,15}$"


class ValidationOut(BaseModel):
    auc: float | None
    ks: float | None
    gini: float | None
    brier: float | None
    rows: float | None


class ModelOut(BaseModel):
    name: str
    version: str
    label: str = Field(description="NAME@VERSION, as policies and decisions name it")
    kind: str = Field(description="scorecard or gbdt")
    content_sha256: str = Field(description="sha256 of the artefact, checked on every load")
    data_fingerprint: str = Field(description="sha256 of the training table")
    target: str
    features: list[str]
    validation: ValidationOut
    description: str
    created_at: str
    created_by: str


class ModelDetailOut(ModelOut):
    metrics: dict[str, Any] = Field(description="train and validation AUC, KS, Gini, Brier; IV per feature; PSI")
    training: dict[str, Any] = Field(description="rows, split, parameters")
    versions: list[str] = Field(description="every registered version of this name, oldest first")
    artefact: str | None = Field(None, description="the artefact text, when asked for with artefact=true")


@router.get("/v1/models", response_model=list[ModelOut], tags=["models"], summary="The model registry")
def list_models(
    engine: EngineDep, _p: Annotated[Principal, Depends(require(Permission.READ_MODEL))]
) -> list[dict[str, Any]]:
    return engine.models.list()


@router.get(
    "/v1/models/{name}",
    response_model=ModelDetailOut,
    tags=["models"],
    summary="A registered model (the latest version unless one is named) with its metrics",
)
def get_model(
    name: Annotated[str, PathParam(pattern=_NAME)],
    engine: EngineDep,
    _p: Annotated[Principal, Depends(require(Permission.READ_MODEL))],
    version: Annotated[str | None, Query(pattern=_VERSION)] = None,
    artefact: Annotated[bool, Query(description="include the artefact text (JSON)")] = False,
) -> dict[str, Any]:
    return engine.models.get(name, version, artefact=artefact)
