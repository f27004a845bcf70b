"""A task's call signature as a cached pydantic validator.

Arguments are bound to parameter names and validated against the type hints in the
producer (strictly: a wrong call fails there) and again in the worker (laxly, turning the
serialized form back into the annotated types).
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NotRequired, Required

from pydantic import ConfigDict, TypeAdapter, ValidationError, with_config
from typing_extensions import TypedDict

from hasten.context import INJECTED
from hasten.dependencies import find_depends, injected_by_type
from hasten.errors import ArgumentError, ConfigurationError, SerializationError

__all__ = ["TaskSignature"]

_PLAIN = (int, str, bytes, float, bool, type(None))


class TaskSignature:
    """Binds, validates and dumps the arguments of one task function."""

    __slots__ = (
        "_adapter",
        "_context_param",
        "_dependency_params",
        "_names",
        "_plain",
        "_positional_only",
        "_progress_param",
        "arguments_type",
        "result_adapter",
    )

    def __init__(self, fn: Callable[..., Any]) -> None:
        try:
            hints = typing.get_type_hints(fn, include_extras=True)
        except Exception as exc:
            raise ConfigurationError(f"cannot resolve type hints of {fn.__qualname__}: {exc}") from exc
        fields: dict[str, Any] = {}
        self._names: list[str] = []
        self._positional_only: list[str] = []
        self._context_param: str | None = None
        self._progress_param: str | None = None
        self._dependency_params: dict[str, tuple[Any, Any]] = {}
        plain = True
        for param in inspect.signature(fn).parameters.values():
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                raise ConfigurationError(
                    f"task {fn.__qualname__} takes *{param.name}: tasks need named parameters "
                    "so their arguments can be validated and stored"
                )
            annotation = hints.get(param.name, Any)
            if (depends := find_depends(annotation, param.default)) is not None:
                if param.kind == param.POSITIONAL_ONLY:
                    raise ConfigurationError(
                        f"task {fn.__qualname__}: injected parameter {param.name!r} cannot be positional-only"
                    )
                self._dependency_params[param.name] = (annotation, depends)
                continue
            injected = injected_by_type(annotation)
            if injected == "progress":
                self._progress_param = param.name
                continue
            if injected == "context" or (param.default is INJECTED and annotation is Any):
                self._context_param = param.name
                continue
            if param.default is INJECTED:
                raise ConfigurationError(
                    f"task {fn.__qualname__}: parameter {param.name!r} defaults to INJECTED but nothing "
                    "injects it; annotate it JobContext, Progress or Annotated[..., Depends(...)]"
                )
            if param.kind == param.POSITIONAL_ONLY:
                self._positional_only.append(param.name)
            if param.kind != param.KEYWORD_ONLY:
                self._names.append(param.name)
            marker = NotRequired if param.default is not param.empty else Required
            fields[param.name] = marker[annotation]
            plain = plain and annotation in _PLAIN
        args_type = TypedDict(f"{fn.__qualname__}Arguments", fields)  # type: ignore[misc]
        config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)
        arguments_type: Any = with_config(config)(args_type)
        self.arguments_type = arguments_type
        """The arguments ``enqueue()`` takes, as a TypedDict (injected parameters left out)."""
        self._adapter: TypeAdapter[dict[str, Any]] = TypeAdapter(arguments_type)
        self._plain = plain
        returns = hints.get("return", Any)
        self.result_adapter: TypeAdapter[Any] = TypeAdapter(
            Any if returns is None or returns is type(None) else returns,
            config=None if _has_config(returns) else ConfigDict(arbitrary_types_allowed=True),
        )

    @property
    def context_param(self) -> str | None:
        return self._context_param

    @property
    def progress_param(self) -> str | None:
        return self._progress_param

    @property
    def dependency_params(self) -> Mapping[str, tuple[Any, Any]]:
        """Parameters declared with FastAPI's ``Depends``: name -> (annotation, Depends)."""
        return self._dependency_params

    def bind(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> dict[str, Any]:
        if len(args) > len(self._names):
            raise ArgumentError(f"takes {len(self._names)} positional arguments but {len(args)} were given")
        bound = dict(zip(self._names, args, strict=False))
        for name, value in kwargs.items():
            if name in bound:
                raise ArgumentError(f"got multiple values for argument {name!r}")
            if name in self._positional_only:
                raise ArgumentError(f"argument {name!r} is positional-only")
            bound[name] = value
        return bound

    def dump_arguments(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> dict[str, Any]:
        """Validate a call strictly and return its arguments as plain data."""
        return self.dump_named(self.bind(args, kwargs))

    def dump_named(self, bound: Mapping[str, Any]) -> dict[str, Any]:
        """Validate arguments given by name (positional-only ones too) and return them as plain data."""
        try:
            validated = self._adapter.validate_python(bound, strict=True)
        except ValidationError as exc:
            raise ArgumentError(str(exc)) from exc
        if self._plain:
            return dict(validated)
        try:
            dumped: dict[str, Any] = self._adapter.dump_python(validated)
        except Exception as exc:
            raise SerializationError(str(exc)) from exc
        return dumped

    def load_arguments(self, data: Any) -> tuple[list[Any], dict[str, Any]]:
        """Validate stored arguments and split them into a call's args and kwargs."""
        if not isinstance(data, dict):
            raise ArgumentError("stored arguments are not a map")
        values = self._adapter.validate_python(data)
        if not self._positional_only:
            return [], values
        kwargs = dict(values)
        args = [kwargs.pop(name) for name in self._positional_only if name in kwargs]
        return args, kwargs

    def dump_result(self, value: Any) -> Any:
        try:
            return self.result_adapter.dump_python(value)
        except Exception as exc:
            raise SerializationError(f"cannot serialize the result: {exc}") from exc

    def load_result(self, data: Any) -> Any:
        return self.result_adapter.validate_python(data)


def _has_config(tp: Any) -> bool:
    return isinstance(tp, type) and hasattr(tp, "model_config")
