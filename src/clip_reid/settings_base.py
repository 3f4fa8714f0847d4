"""Frozen, typed settings built from parameter dicts: a typo or a bad value fails at once.

A settings class is a frozen dataclass deriving from :class:`Settings`; its fields carry their
default and their allowed values (``setting(default, ge=..., choices=...)``), so the class is the
one place that says what a parameter block may hold. ``from_params`` rejects unknown keys (naming
the valid ones), wrong types and out-of-range values, nested blocks included, with an error
naming the dotted parameter, its value and what is allowed, and the file it came from when the
caller knows it. No Kedro import: the library stages take these objects directly.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Literal, Self, Union

MISSING = dataclasses.MISSING


class SettingsError(ValueError):
    """A parameter is unknown, missing, of the wrong type or out of range."""


def setting(
    default: Any = MISSING,
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    choices: tuple[Any, ...] | None = None,
    default_factory: Callable[[], Any] | None = None,
) -> Any:
    """A dataclass field with bounds (``ge``/``gt``/``le``/``lt``) or allowed ``choices``."""
    metadata = {"ge": ge, "gt": gt, "le": le, "lt": lt, "choices": choices}
    if default_factory is not None:
        return dataclasses.field(default_factory=default_factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


@dataclasses.dataclass(frozen=True)
class Settings:
    """Base of every settings block; subclasses are ``@dataclass(frozen=True)``."""

    # Keys that were renamed (old -> new): refused with the new name, so an old configuration
    # fails with the fix instead of a bare "unknown parameter".
    renamed: ClassVar[Mapping[str, str]] = {}

    @classmethod
    def from_params(
        cls, params: Mapping[str, Any] | None, where: str = "", locate: Locator | None = None
    ) -> Self:
        """Build from a parameters dict. ``where`` is the dotted name of the block (for
        messages), ``locate`` maps a dotted name to the file that set it (when known)."""
        if params is None:
            params = {}
        if not isinstance(params, Mapping):
            _fail(where, params, "a block of key: value settings", locate)
        hints = typing.get_type_hints(cls)
        fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
        for old_key in sorted(set(params) & set(cls.renamed)):
            name, new_name = _join(where, old_key), _join(where, cls.renamed[old_key])
            raise SettingsError(
                f"Parameter {name}{_origin(name, locate)} is now called {new_name}: rename the "
                f"key (e.g. {new_name}: {params[old_key]!r})."
            )
        unknown = sorted(set(params) - set(fields))
        if unknown:
            name = _join(where, unknown[0])
            raise SettingsError(
                f"Unknown parameter {name}{_origin(name, locate)}. Valid keys of "
                f"{where or cls.__name__}: {', '.join(sorted(fields))}. Check its spelling."
            )
        values = {}
        for name, field in fields.items():
            path = _join(where, name)
            if name not in params:
                if field.default is MISSING and field.default_factory is MISSING:
                    raise SettingsError(f"Missing parameter {path}: it has no default; set it.")
                continue
            values[name] = _checked(params[name], hints[name], path, field.metadata, locate)
        try:
            return cls(**values)
        except SettingsError:
            raise
        except (TypeError, ValueError) as error:
            raise SettingsError(f"{where or cls.__name__}{_origin(where, locate)}: {error}") \
                from error

    def to_dict(self) -> dict[str, Any]:
        """Plain values (nested blocks as dicts, tuples as lists): for fingerprints and logs."""
        return _plain(dataclasses.asdict(self))


Locator = Callable[[str], "str | None"]


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _join(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


def _origin(path: str, locate: Locator | None) -> str:
    source = locate(path) if locate and path else None
    return f" (set in {source})" if source else ""


def _fail(path: str, value: Any, allowed: str, locate: Locator | None) -> typing.NoReturn:
    raise SettingsError(
        f"Parameter {path or 'block'} = {value!r}{_origin(path, locate)} is invalid: "
        f"expected {allowed}."
    )


_BOUNDS = (("ge", ">=", lambda v, b: v >= b), ("gt", ">", lambda v, b: v > b),
           ("le", "<=", lambda v, b: v <= b), ("lt", "<", lambda v, b: v < b))


def _checked(value: Any, hint: Any, path: str, rules: Mapping[str, Any],
             locate: Locator | None) -> Any:
    """``value`` converted to ``hint`` (lists → tuples, ints → floats) and range-checked."""
    bounds = [(rules.get(key), sign, test) for key, sign, test in _BOUNDS]
    limits = " and ".join(f"{sign} {bound}" for bound, sign, _ in bounds if bound is not None)
    choices = rules.get("choices")
    allowed = (f"one of {', '.join(map(repr, choices))}" if choices is not None
               else f"{_describe(hint)} {limits}".strip())
    try:
        converted = _typed(value, hint, path, locate)
    except SettingsError:
        if isinstance(hint, type) and issubclass(hint, Settings):
            raise
        _fail(path, value, allowed, locate)
    if converted is None:
        return None
    if choices is not None and converted not in choices:
        _fail(path, value, allowed, locate)
    numbers = converted if isinstance(converted, tuple) else (converted,)
    for bound, _, holds in bounds:
        if bound is not None and not all(holds(v, bound) for v in numbers):
            _fail(path, value, allowed, locate)
    return converted


def _typed(value: Any, hint: Any, path: str, locate: Locator | None) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for option in (a for a in args if a is not type(None)):
            try:
                return _typed(value, option, path, None)
            except SettingsError:
                continue
        _fail(path, value, _describe(hint), locate)
    if origin is Literal:
        if value not in args:
            _fail(path, value, f"one of {', '.join(map(repr, args))}", locate)
        return value
    if isinstance(hint, type) and issubclass(hint, Settings):
        return hint.from_params(value, path, locate)
    if origin in (tuple, list):
        if not isinstance(value, list | tuple):
            _fail(path, value, _describe(hint), locate)
        if origin is tuple and args and args[-1] is not Ellipsis and len(args) != len(value):
            _fail(path, value, _describe(hint), locate)
        item_types = [args[0]] * len(value) if (origin is list or args[-1] is Ellipsis) else args
        return tuple(_typed(v, t, f"{path}[{i}]", locate)
                     for i, (v, t) in enumerate(zip(value, item_types, strict=True)))
    if origin is dict or hint is dict:
        if not isinstance(value, Mapping):
            _fail(path, value, "a block of key: value settings", locate)
        return dict(value)
    if hint is bool:
        if not isinstance(value, bool):
            _fail(path, value, "true or false", locate)
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            _fail(path, value, "an integer", locate)
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            _fail(path, value, "a number", locate)
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            _fail(path, value, "a string", locate)
        return value
    raise TypeError(f"Unsupported settings type {hint!r} for {path}.")


def _describe(hint: Any) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (Union, types.UnionType):
        return " or ".join("null" if a is type(None) else _describe(a) for a in args)
    if origin in (tuple, list):
        if args and args[-1] is Ellipsis or origin is list:
            return f"a list of {_describe(args[0])}s"
        return f"a list of {len(args)} values ({', '.join(_describe(a) for a in args)})"
    names = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
    return names.get(hint, getattr(hint, "__name__", str(hint)))
