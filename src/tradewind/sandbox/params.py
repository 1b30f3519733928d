"""A strategy's declared parameters: ``params = {fast = {type = "int", min = 5, max = 50, default = 10}, ...}``.

A strategy may assign a table to the top-level global ``params``; the sandbox reads it (raw, bounded: see
``plain``) after the top level runs and checks it here. One declaration serves the web app's forms (name,
type, default, range, description) and the optimiser's search space (ranges, steps, choices). ``decide``'s
own ``params`` argument shadows the global, so declaring it changes nothing at run time.

Each entry is a table of:

- ``type``: ``"int"``, ``"float"``, ``"bool"`` or ``"choice"`` (inferred: ``choice`` with ``choices``,
  else ``int`` when min, max and step are whole numbers, else ``float``);
- ``min`` / ``max`` (int, float): the range, inclusive; ``step`` (optional, > 0): the grid within it;
  ``log = true`` (float, min > 0, no step): searched on a log scale;
- ``choices`` (choice): a list of 1 to 100 numbers, strings or booleans;
- ``default`` (optional): within the range, or one of the choices;
- ``description`` (optional): up to 200 characters.

A parameter with a range or choices is searched by ``tradewind optimize``; one with only a default is fixed.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

MAX_PARAMS = 50
MAX_CHOICES = 100
MAX_TEXT = 200
MAX_NUMBER = 2**53
TYPES = ("int", "float", "bool", "choice")
KEYS = {"type", "min", "max", "step", "log", "choices", "default", "description"}

Scalar = int | float | str | bool


class DeclarationError(ValueError):
    """A ``params`` declaration that cannot be read; the message names the parameter and the field."""


@dataclass(frozen=True)
class ParamSpec:
    """One declared parameter (see the module's docstring)."""

    name: str
    type: str
    min: float | None = None
    max: float | None = None
    step: float | None = None
    log: bool = False
    choices: tuple[Scalar, ...] = field(default_factory=tuple)
    default: Scalar | None = None
    description: str | None = None

    @property
    def searchable(self) -> bool:
        """Whether an optimiser can vary it: a range, choices, or a boolean."""
        return (
            self.type == "bool"
            or bool(self.choices)
            or (self.min is not None and self.max is not None and self.min < self.max)
        )

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "type": self.type}
        for key in ("min", "max", "step", "default", "description"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        if self.log:
            out["log"] = True
        if self.choices:
            out["choices"] = list(self.choices)
        return out


def _is_identifier(name: str) -> bool:
    return 1 <= len(name) <= 50 and name.isascii() and name.isidentifier()


def _number(value: Any, where: str) -> int | float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise DeclarationError(f"{where} must be a finite number, got {_show(value)}")
    if abs(value) > MAX_NUMBER:
        raise DeclarationError(f"{where} must be at most 2^53 in size, got {value}")
    return value


def _whole(x: float) -> bool:
    return float(x).is_integer()


def _same(a: Any, b: Any) -> bool:
    """Equal and of one kind: two booleans, two texts, or two numbers (1 and 1.0 are one number, as in Lua)."""
    if isinstance(a, (bool, str)) or isinstance(b, (bool, str)):
        return type(a) is type(b) and a == b
    return bool(a == b)


def _show(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return "a table"
    return repr(value)[:40]


def parse_declaration(decl: Any) -> dict[str, ParamSpec]:
    """The declared parameters by name, checked; raises DeclarationError saying which entry is wrong."""
    if isinstance(decl, list):
        raise DeclarationError("params must name its entries (params = {fast = {...}}), not be a list")
    if not isinstance(decl, dict):
        raise DeclarationError("params must be a table of name = {type = ..., ...}")
    if len(decl) > MAX_PARAMS:
        raise DeclarationError(f"params declares {len(decl)} parameters; at most {MAX_PARAMS}")
    specs: dict[str, ParamSpec] = {}
    for name in sorted(decl, key=str):
        if not isinstance(name, str) or not _is_identifier(name):
            raise DeclarationError(
                f"params: {_show(name)} is not a parameter name (a Lua identifier of 1-50 characters)"
            )
        specs[name] = _entry(name, decl[name])
    return specs


def _entry(name: str, raw: Any) -> ParamSpec:
    where = f"params.{name}"
    if not isinstance(raw, dict):
        raise DeclarationError(
            f'{where} must be a table such as {{type = "int", min = 1, max = 10}}, got {_show(raw)}'
        )
    unknown = sorted(str(k) for k in raw if k not in KEYS)
    if unknown:
        raise DeclarationError(f"{where}: unknown field {unknown[0]!r}; use {', '.join(sorted(KEYS))}")
    kind = raw.get("type")
    if kind is not None and kind not in TYPES:
        raise DeclarationError(f"{where}.type must be one of {', '.join(TYPES)}, got {_show(kind)}")
    description = raw.get("description")
    if description is not None and (not isinstance(description, str) or len(description) > MAX_TEXT):
        raise DeclarationError(f"{where}.description must be text of at most {MAX_TEXT} characters")
    log = raw.get("log", False)
    if not isinstance(log, bool):
        raise DeclarationError(f"{where}.log must be true or false")
    default = raw.get("default")
    if "choices" in raw or kind == "choice":
        return _choice(name, raw, kind, default, description, log)
    if kind == "bool":
        for key in ("min", "max", "step"):
            if key in raw:
                raise DeclarationError(f"{where}.{key}: a bool has no {key}")
        if default is not None and not isinstance(default, bool):
            raise DeclarationError(f"{where}.default must be true or false, got {_show(default)}")
        if log:
            raise DeclarationError(f"{where}.log: only a float can be searched on a log scale")
        return ParamSpec(name, "bool", default=default, description=description)
    lo = _number(raw["min"], f"{where}.min") if "min" in raw else None
    hi = _number(raw["max"], f"{where}.max") if "max" in raw else None
    step = _number(raw["step"], f"{where}.step") if "step" in raw else None
    if (lo is None) != (hi is None):
        raise DeclarationError(f"{where}: give both min and max (a range), or neither (a fixed default)")
    if lo is not None and hi is not None and hi < lo:
        raise DeclarationError(f"{where}: max ({hi}) is below min ({lo})")
    if step is not None and step <= 0:
        raise DeclarationError(f"{where}.step must be above 0, got {step}")
    if default is not None:
        _number(default, f"{where}.default")
    if kind is None:
        present = [x for x in (lo, hi, step, default) if x is not None]
        if not present:
            raise DeclarationError(f"{where}: give a type, a range (min and max), choices or a default")
        kind = "int" if all(isinstance(x, int) or _whole(x) for x in present) and not log else "float"
    if kind == "int":
        for key, value in (("min", lo), ("max", hi), ("step", step), ("default", default)):
            if value is not None and not _whole(value):
                raise DeclarationError(f"{where}.{key} must be a whole number for an int, got {value}")
        if log:
            raise DeclarationError(f"{where}.log: only a float can be searched on a log scale")
        lo, hi = (None if lo is None else int(lo)), (None if hi is None else int(hi))
        step = None if step is None else int(step)
        default = None if default is None else int(default)
    else:
        lo, hi = (None if lo is None else float(lo)), (None if hi is None else float(hi))
        step = None if step is None else float(step)
        default = None if default is None else float(default)
        if log and (lo is None or lo <= 0):
            raise DeclarationError(f"{where}.log needs a range with min above 0")
        if log and step is not None:
            raise DeclarationError(f"{where}: log and step do not go together")
    if default is not None and lo is not None and hi is not None and not lo <= default <= hi:
        raise DeclarationError(f"{where}.default ({default}) is outside min..max ({lo}..{hi})")
    if step is not None and lo is None:
        raise DeclarationError(f"{where}.step needs a range (min and max)")
    return ParamSpec(name, kind, lo, hi, step, log, default=default, description=description)


def _choice(
    name: str, raw: dict[str, Any], kind: Any, default: Any, description: str | None, log: bool
) -> ParamSpec:
    where = f"params.{name}"
    for key in ("min", "max", "step"):
        if key in raw:
            raise DeclarationError(f"{where}.{key}: a choice has choices, not a range")
    if log:
        raise DeclarationError(f"{where}.log: only a float can be searched on a log scale")
    choices = raw.get("choices")
    if not isinstance(choices, list) or not 1 <= len(choices) <= MAX_CHOICES:
        raise DeclarationError(
            f'{where}.choices must be a list of 1 to {MAX_CHOICES} values, such as {{"a", "b"}}'
        )
    for i, c in enumerate(choices, 1):
        if isinstance(c, str):
            if len(c) > MAX_TEXT:
                raise DeclarationError(f"{where}.choices[{i}] is longer than {MAX_TEXT} characters")
        elif not isinstance(c, bool):
            _number(c, f"{where}.choices[{i}]")
    if len(set(map(repr, choices))) != len(choices):
        raise DeclarationError(f"{where}.choices holds a value twice")
    if default is not None and not any(_same(default, c) for c in choices):
        raise DeclarationError(f"{where}.default ({_show(default)}) is not one of its choices")
    return ParamSpec(name, "choice", choices=tuple(choices), default=default, description=description)


def defaults(specs: dict[str, ParamSpec]) -> dict[str, Scalar]:
    """The declared defaults (parameters without one are left out)."""
    return {n: s.default for n, s in specs.items() if s.default is not None}


class ParamError(ValueError):
    """A parameter value that its declaration refuses; ``name`` is the parameter, ``message`` says why."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"params.{name}: {message}")
        self.name, self.message = name, message


SWEEP = re.compile(r"\s*-?[0-9.]+\s*\.\.\s*-?[0-9.]+\s*(:\s*[0-9.]+\s*)?")


def _range_text(spec: ParamSpec) -> str:
    return "" if spec.min is None else f" from {spec.min:g} to {spec.max:g}"


def check_value(spec: ParamSpec, value: Any) -> Scalar:
    """``value`` as the declared parameter ``spec`` takes it (a whole float as an int for an int), or a
    ParamError saying what it must be. The same rules as a declaration's own default: a number of the
    declared type, finite, at most 2^53 in size, within min..max; a boolean; one of the choices."""
    shown = _show(value)
    if spec.type == "bool":
        if not isinstance(value, bool):
            raise ParamError(spec.name, f"must be true or false, got {shown}")
        return value
    if spec.type == "choice":
        for c in spec.choices:
            if _same(c, value):
                return c
        listed = ", ".join(_show(c) for c in spec.choices[:10]) + (", ..." if len(spec.choices) > 10 else "")
        raise ParamError(spec.name, f"must be one of {listed}, got {shown}")
    kind = "a whole number" if spec.type == "int" else "a number"
    if isinstance(value, str) and SWEEP.fullmatch(value):
        raise ParamError(
            spec.name,
            f"takes one value, not a range: {shown} is the syntax of a sweep "
            "(tradewind sweep); Research searches the declared range",
        )
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ParamError(spec.name, f"must be {kind}{_range_text(spec)}, got {shown}")
    if not math.isfinite(value) or abs(value) > MAX_NUMBER:
        raise ParamError(spec.name, f"must be a finite number of at most 2^53 in size, got {value}")
    number: int | float
    if spec.type == "int":
        if not _whole(value):
            raise ParamError(spec.name, f"must be a whole number{_range_text(spec)}, got {value}")
        number = int(value)
    else:
        number = float(value)
    if spec.min is not None and spec.max is not None and not spec.min <= number <= spec.max:
        raise ParamError(spec.name, f"must be{_range_text(spec)}, got {number:g}")
    return number


def check_params(specs: dict[str, ParamSpec], params: dict[str, Any]) -> dict[str, Scalar]:
    """``params`` checked against the declared ``specs``: each name declared, each value as ``check_value``
    takes it. A strategy that declares nothing takes any parameters: they come back as given."""
    if not specs:
        return dict(params)
    out: dict[str, Scalar] = {}
    for name, value in params.items():
        spec = specs.get(name)
        if spec is None:
            raise ParamError(
                name, f"the strategy declares no parameter {name!r}; it declares {', '.join(sorted(specs))}"
            )
        out[name] = check_value(spec, value)
    return out


def from_dicts(declared: list[dict[str, Any]]) -> dict[str, ParamSpec]:
    """The specs of a declaration stored as ``ParamSpec.as_dict()`` rows, read by the same rules again."""
    return parse_declaration({d["name"]: {k: v for k, v in d.items() if k != "name"} for d in declared})
