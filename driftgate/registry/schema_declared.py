"""A schema declared at registration (form field `schema`, `--schema FILE`, `Client.register_model(schema=)`).

    {"features": [{"name": "image", "kind": "tensor", "shape": [8, 8], "dtype": "float32",
                   "media": "image", "max": 16},
                  {"name": "text", "kind": "text", "max_chars": 5000}]}

Each entry overrides the inferred feature of the same name; entries for features the reference data
lacks add them. Checked here, before anything is loaded: a bad declaration is a 400 naming the field.
"""

from __future__ import annotations

import json
import math
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from driftgate.errors import BadRequest
from driftgate.registry.schema import FeatureSpec, InputSchema
from driftgate.registry.schema_media import TENSOR_DTYPES

# Bounds on what one declaration may ask of every request (and of memory per row).
MAX_TENSOR_ELEMENTS = 1 << 24
MAX_DIMS = 8
MAX_CHARS_LIMIT = 10_000_000
MAX_FEATURES = 10_000
IMAGE_CHANNELS = (1, 3, 4)

Dim = Annotated[int, Field(strict=True, ge=1)]


class DeclaredFeature(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    name: str = Field(min_length=1, max_length=500)
    kind: Literal["numeric", "integer", "boolean", "categorical", "text", "tensor"]
    nullable: bool = False
    min: float | None = Field(default=None, strict=False)
    max: float | None = Field(default=None, strict=False)
    categories: list[str] | None = None
    shape: list[Dim] | None = Field(default=None, min_length=1, max_length=MAX_DIMS)
    dtype: str | None = None
    media: Literal["image", "audio"] | None = None
    sample_rate: int | None = Field(default=None, ge=1, le=10_000_000)
    max_chars: int | None = Field(default=None, ge=1, le=MAX_CHARS_LIMIT)

    @model_validator(mode="after")
    def _fits_its_kind(self) -> DeclaredFeature:
        tensor_only = ("shape", "dtype", "media", "sample_rate")
        if self.kind != "tensor":
            for key in tensor_only:
                if getattr(self, key) is not None:
                    raise ValueError(f"{key!r} applies to kind 'tensor' only, not {self.kind!r}")
        if self.kind != "text" and self.max_chars is not None:
            raise ValueError(f"'max_chars' applies to kind 'text' only, not {self.kind!r}")
        if self.kind != "categorical" and self.categories is not None:
            raise ValueError(f"'categories' applies to kind 'categorical' only, not {self.kind!r}")
        if self.kind == "tensor":
            self._check_tensor()
        return self

    def _check_tensor(self) -> None:
        if self.shape is None:
            raise ValueError("a tensor needs 'shape' (its dimensions without the row axis, e.g. [8, 8])")
        if math.prod(self.shape) > MAX_TENSOR_ELEMENTS:
            raise ValueError(f"'shape' {self.shape} holds more than {MAX_TENSOR_ELEMENTS} values a row")
        if self.dtype is not None and self.dtype not in TENSOR_DTYPES:
            raise ValueError(f"'dtype' must be one of {sorted(TENSOR_DTYPES)}, got {self.dtype!r}")
        if self.media == "image" and not (
            len(self.shape) == 2 or (len(self.shape) == 3 and self.shape[2] in IMAGE_CHANNELS)
        ):
            raise ValueError(f"an image's 'shape' is [height, width] or [height, width, 1|3|4], got {self.shape}")
        if self.media == "audio":
            if len(self.shape) != 1:
                raise ValueError(f"an audio clip's 'shape' is [samples], got {self.shape}")
            if self.sample_rate is None:
                raise ValueError("an audio clip needs 'sample_rate' (Hz)")
        elif self.sample_rate is not None:
            raise ValueError("'sample_rate' applies to media 'audio' only")

    def spec(self) -> FeatureSpec:
        tensor = self.kind == "tensor"
        return FeatureSpec(
            name=self.name,
            kind=self.kind,
            nullable=self.nullable,
            min=self.min,
            max=self.max,
            categories=tuple(self.categories) if self.categories is not None else None,
            shape=tuple(self.shape) if self.shape is not None else None,
            dtype=(self.dtype or "float32") if tensor else None,
            media=self.media,
            sample_rate=self.sample_rate,
            max_chars=self.max_chars,
        )


class DeclaredSchema(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    features: list[DeclaredFeature] = Field(min_length=1, max_length=MAX_FEATURES)

    @model_validator(mode="after")
    def _unique(self) -> DeclaredSchema:
        names = [f.name for f in self.features]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"each feature once; declared twice: {twice}")
        return self


def parse_declared(value: str | bytes | dict[str, Any] | None) -> list[FeatureSpec] | None:
    """The features a declaration holds (JSON text or an object), or BadRequest (400, field `schema`)
    saying which entry and key are wrong."""
    if value is None or value == "":
        return None
    if isinstance(value, str | bytes):
        try:
            value = json.loads(value)
        except (ValueError, UnicodeDecodeError) as exc:
            raise BadRequest(f"schema: expected a JSON object, got a parse error: {exc}", field="schema") from None
    try:
        declared = DeclaredSchema.model_validate(value)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in first["loc"])
        message = str(first["msg"]).removeprefix("Value error, ")
        raise BadRequest(f"schema{where}: {message}", field="schema", errors=len(exc.errors())) from None
    return [f.spec() for f in declared.features]


def apply_declared(inferred: InputSchema | None, declared: list[FeatureSpec] | None) -> InputSchema:
    """The inferred schema with declared features laid over it (same name: replaced in place; new
    names: added after the inferred ones)."""
    if inferred is None:
        if not declared:
            raise ValueError("nothing inferred and nothing declared")
        return InputSchema(tuple(declared))
    if not declared:
        return inferred
    by_name = {f.name: f for f in declared}
    features = [by_name.pop(f.name, f) for f in inferred.features]
    return InputSchema((*features, *by_name.values()), inferred.unknown_categories)
