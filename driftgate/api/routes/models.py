"""Model registry routes."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, field_validator
from starlette.concurrency import run_in_threadpool

from driftgate.api.auth import require
from driftgate.api.services import services
from driftgate.errors import BadRequest
from driftgate.registry.registry import MAX_VERSION, Registration, check_version, register, validate_name

router = APIRouter(prefix="/v1/models", tags=["models"], dependencies=[Depends(require("admin"))])


@router.post("/{name}/versions", status_code=201)
async def create_version(
    request: Request,
    name: str,
    file: Annotated[UploadFile, File(description="The model artifact (skops, ONNX, zipped MLflow directory).")],
    format: Annotated[str, Form(description="sklearn | onnx | mlflow (python is local registration only).")],
    reference: Annotated[UploadFile | None, File(description="Reference data, CSV or Parquet.")] = None,
    target: Annotated[str | None, Form(description="Target column in the reference data.")] = None,
    description: Annotated[str | None, Form()] = None,
    trust: Annotated[bool, Form(description="Load a pickle/joblib artifact (runs its code).")] = False,
    declared: Annotated[
        str | None,
        Form(
            alias="schema",
            description='Declared input schema, JSON: {"features": [{"name", "kind", ...}]}; each entry '
            "overrides the inferred feature of its name (text and tensor features are declared this way).",
        ),
    ] = None,
) -> JSONResponse:
    if format == "python":
        raise BadRequest(
            "format 'python' imports code and is accepted from the local CLI only: driftgate models register",
            field="format",
        )
    reg = Registration(
        name=name,
        artifact=await file.read(),
        format=format,
        reference=await reference.read() if reference is not None else None,
        reference_filename=(reference.filename or "") if reference is not None else "",
        target=target or None,
        trust=trust,
        description=description,
        schema=declared or None,
    )
    record = await run_in_threadpool(register, services(request).store, reg)
    return JSONResponse(record.to_dict(), status_code=201)


@router.get("")
async def list_models(request: Request) -> dict[str, Any]:
    store = services(request).store
    names = await run_in_threadpool(store.models.names)
    out = []
    for name in names:
        versions = await run_in_threadpool(store.models.versions, name)
        out.append({"name": name, "latest": versions[-1].version, "versions": [v.version for v in versions]})
    return {"models": out}


@router.get("/{name}")
async def get_model(request: Request, name: str) -> dict[str, Any]:
    store = services(request).store
    versions = await run_in_threadpool(store.models.versions, name)
    aliases = await run_in_threadpool(store.models.aliases, name)
    return {"name": name, "versions": [v.to_dict() for v in versions], "aliases": aliases}


@router.get("/{name}/versions/{version}")
async def get_version(request: Request, name: str, version: str) -> dict[str, Any]:
    record = await run_in_threadpool(services(request).store.models.get, name, check_version(version))
    return record.to_dict()


class AliasBody(BaseModel):
    version: int = Field(ge=1, le=MAX_VERSION)

    @field_validator("version", mode="before")
    @classmethod
    def _a_number(cls, value: Any) -> Any:
        if isinstance(value, bool | str):  # lax mode read `true` as 1 and "3" as 3
            raise ValueError("must be a version number")
        return value


@router.put("/{name}/aliases/{alias}")
async def set_alias(request: Request, name: str, alias: str, body: AliasBody) -> dict[str, Any]:
    validate_name(alias, what="alias", field="alias")
    store = services(request).store
    await run_in_threadpool(store.models.set_alias, name, alias, body.version)
    return {"name": name, "alias": alias, "version": body.version}
