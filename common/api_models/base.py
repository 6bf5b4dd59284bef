"""What every API response model shares: JSON round-trips, optional keys, kept raw documents.

One model per shape serves three readers: the manager builds its responses
with it, the OpenAPI document is generated from it, and the SDK parses with
it. So the rules are:

- a field's type is what the manager sends; its default is what an SDK sees
  when an older manager leaves the field out (parsing stays lenient, unknown
  fields are ignored);
- the document marks every field required (the manager always sends it)
  except *optional keys* (`OPTIONAL_KEY`), which are sent only when the
  manager set them, e.g. a session's status history;
- `Timestamp` serializes with ``datetime.isoformat()``, exactly as the
  manager has always written times;
- ``from_json`` keeps the document each object came from (``raw``, what
  ``--json`` prints), nested objects included.
"""
from __future__ import annotations

from datetime import datetime
from functools import cache
from typing import Annotated, Any, Mapping, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PrivateAttr,
    SerializerFunctionWrapHandler,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    WithJsonSchema,
    model_serializer,
    model_validator,
)

_KEEP_RAW = "corral.keep_raw"


def _isoformat(value: datetime) -> str:
    return value.isoformat()


Timestamp = Annotated[
    datetime,
    PlainSerializer(_isoformat, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]


class _OptionalKey:
    """Marks a field sent only when set: ``Annotated[list[X], OPTIONAL_KEY] = []``."""

    def __repr__(self) -> str:
        return "OPTIONAL_KEY"


OPTIONAL_KEY = _OptionalKey()


def one_of(*values: str) -> Any:
    """Documents a string's known values without refusing new ones when parsing."""
    return Field(json_schema_extra={"enum": list(values)})


@cache
def _optional_keys(model: type[BaseModel]) -> frozenset[str]:
    return frozenset(name for name, info in model.model_fields.items() if OPTIONAL_KEY in info.metadata)


def _unrequire_optional_keys(schema: dict[str, Any], model: type[BaseModel]) -> None:
    optional = _optional_keys(model)
    if "required" in schema:
        schema["required"] = [name for name in schema["required"] if name not in optional]
        if not schema["required"]:
            del schema["required"]


class ApiModel(BaseModel):
    model_config = ConfigDict(
        frozen=True,
        json_schema_serialization_defaults_required=True,
        json_schema_extra=_unrequire_optional_keys,
    )

    _raw: dict[str, Any] | None = PrivateAttr(None)

    @model_validator(mode="wrap")
    @classmethod
    def _keep_raw(cls, data: Any, handler: ValidatorFunctionWrapHandler, info: ValidationInfo) -> Any:
        model = handler(data)
        if info.context and info.context.get(_KEEP_RAW) and isinstance(data, Mapping):
            model._raw = dict(data)
        return model

    # No return annotation: pydantic would take it for the schema of the serialized model.
    @model_serializer(mode="wrap")
    def _omit_unset_optional_keys(self, handler: SerializerFunctionWrapHandler):  # type: ignore[no-untyped-def]
        data = handler(self)
        for name in _optional_keys(type(self)) - self.model_fields_set:
            data.pop(name, None)
        return data

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Self:
        """Parse a JSON document (leniently), keeping it as ``raw``."""
        return cls.model_validate(doc, context={_KEEP_RAW: True})

    def __eq__(self, other: object) -> bool:
        # Equal data is equal whatever document it came from (pydantic would compare ``raw`` too).
        if not isinstance(other, ApiModel):
            return NotImplemented
        return type(self) is type(other) and self.__dict__ == other.__dict__

    @property
    def raw(self) -> dict[str, Any]:
        """The document this object was parsed from, or else its JSON form."""
        return self._raw if self._raw is not None else self.model_dump(mode="json")

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")
