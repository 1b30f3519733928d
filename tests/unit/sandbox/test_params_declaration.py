"""A strategy's ``params`` declaration: read from its top level when it is loaded, checked with messages that
name the parameter and the field, never able to run code while it is read."""

from __future__ import annotations

import pytest

from tradewind.sandbox.params import DeclarationError, parse_declaration
from tradewind.sandbox.runtime import StrategyError, StrategyRuntime, validate

DECIDE = 'function decide(c, params) return "long" end'


def declared(decl: str) -> dict:
    rt = StrategyRuntime(f"params = {decl}\n{DECIDE}", name="t", run_init=False)
    try:
        return {k: v.as_dict() for k, v in rt.declared.items()}
    finally:
        rt.close()


def test_a_declaration_is_read_with_its_types_inferred() -> None:
    got = declared(
        '{fast = {type = "int", min = 5, max = 50, step = 5, default = 10}, k = {min = 0.5, max = 2},'
        ' mode = {choices = {"a", "b"}, default = "b"}, on = {type = "bool", default = true},'
        ' rate = {type = "float", min = 0.001, max = 1, log = true}, size = {default = 3}}'
    )
    assert got == {
        "fast": {"name": "fast", "type": "int", "min": 5, "max": 50, "step": 5, "default": 10},
        "k": {"name": "k", "type": "float", "min": 0.5, "max": 2.0},
        "mode": {"name": "mode", "type": "choice", "choices": ["a", "b"], "default": "b"},
        "on": {"name": "on", "type": "bool", "default": True},
        "rate": {"name": "rate", "type": "float", "min": 0.001, "max": 1.0, "log": True},
        "size": {"name": "size", "type": "int", "default": 3},
    }


def test_no_declaration_is_none_and_decide_still_gets_its_own_params() -> None:
    rt = StrategyRuntime(DECIDE, name="t")
    assert rt.declared == {}
    rt.close()


@pytest.mark.parametrize(
    ("decl", "message"),
    [
        ("5", "params must be a table"),
        ("{fast = 3}", "params.fast must be a table"),
        ("{fast = {min = 9, max = 2}}", "params.fast: max (2) is below min (9)"),
        ("{fast = {min = 1}}", "give both min and max"),
        ('{fast = {type = "int", min = 1.5, max = 3}}', "params.fast.min must be a whole number"),
        ("{fast = {min = 1, max = 5, default = 7}}", "params.fast.default (7) is outside min..max (1..5)"),
        ("{fast = {min = 1, max = 5, step = 0}}", "params.fast.step must be above 0"),
        ('{fast = {min = 1, max = 5, colour = "red"}}', "params.fast: unknown field 'colour'"),
        ('{mode = {choices = {"a", "a"}}}', "params.mode.choices holds a value twice"),
        ('{mode = {choices = {"a"}, default = "c"}}', "params.mode.default ('c') is not one of its choices"),
        ("{mode = {choices = {}}}", "params.mode.choices must be a list"),
        (
            '{x = {type = "float", min = 0, max = 1, log = true}}',
            "params.x.log needs a range with min above 0",
        ),
        ('{x = {type = "bool", min = 0}}', "params.x.min: a bool has no min"),
        ('{x = {type = "text"}}', "params.x.type must be one of"),
        ("{x = {min = 0, max = 1, default = function() end}}", "not a function"),
        ("{x = {min = 0, max = 0/0}}", "params.x.max must be a finite number"),
        ("{[1] = {min = 0, max = 1}}", "not be a list"),
        ("{[true] = {min = 0, max = 1}}", "a table key must be a name"),
    ],
)
def test_a_bad_declaration_names_what_is_wrong(decl: str, message: str) -> None:
    with pytest.raises(StrategyError) as err:
        declared(decl)
    assert message in str(err.value)
    assert [d.message for d in validate(f"params = {decl}\n{DECIDE}")][0].endswith(str(err.value.reason))


def test_reading_runs_no_metamethod_and_stops_at_its_bounds() -> None:
    # __index or __pairs that never return would hang a reader that honoured them: it reads raw
    spin = "setmetatable({}, {__index = function() while true do end end, __pairs = function() while true do end end})"
    assert declared(spin) == {}
    many = "{}\nfor i = 1, 100000 do params['p' .. i] = {min = 1, max = 2} end"
    with pytest.raises(StrategyError, match="more than 100 entries"):
        declared(many)
    deep = "{x = {choices = {{{1}}}}}"
    with pytest.raises(StrategyError, match="too deep"):
        declared(deep)
    with pytest.raises(StrategyError, match="at most 1,000"):
        declared('{x = {description = string.rep("x", 5000)}}')


def test_at_most_fifty_parameters() -> None:
    with pytest.raises(DeclarationError, match="at most 50"):
        parse_declaration({f"p{i}": {"min": 0, "max": 1} for i in range(51)})


def test_the_declared_defaults_are_the_parameters_a_run_does_not_set() -> None:
    code = """
params = {fast = {type = "int", min = 2, max = 50, default = 10}, mode = {choices = {"a", "b"}, default = "b"},
          slow = {type = "int", min = 20, max = 200}}
function decide(c, p) print(p.fast, p.mode, p.slow) return "neutral" end
"""
    from tradewind.sandbox.runtime import StrategyRuntime
    from tradewind.sandbox.window import CandleWindow

    rt = StrategyRuntime(code, name="defaults", params={"mode": "a"})
    try:
        w = CandleWindow.from_rows([(60_000 * i, 1.0, 1.0, 1.0, 1.0, 1.0) for i in range(1, 4)], "t:1m")
        d = rt.decide(w, w.last_time)
        assert d.logs == ["10\ta\tnil"]  # fast from its default, mode as set, slow has no default
    finally:
        rt.close()
