"""Parameter values checked against a strategy's declaration (``tradewind.sandbox.params.check_params``): the one
rule the web app's assignments, backtests and studies apply, with a message that names the parameter."""

from __future__ import annotations

import math

import pytest

from tradewind.sandbox.params import ParamError, check_params, check_value, from_dicts, parse_declaration
from tradewind.sandbox.runtime import inspect

SPECS = parse_declaration(
    {
        "fast": {"type": "int", "min": 5, "max": 50, "default": 10},
        "k": {"type": "float", "min": 0.5, "max": 2.0},
        "mode": {"choices": ["a", "b", 1, True]},
        "on": {"type": "bool"},
        "size": {"default": 3},
    }
)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("fast", "abc", "must be a whole number from 5 to 50, got 'abc'"),
        ("fast", "10", "must be a whole number from 5 to 50, got '10'"),
        ("fast", 10.5, "must be a whole number from 5 to 50, got 10.5"),
        ("fast", 51, "must be from 5 to 50, got 51"),
        ("fast", True, "must be a whole number from 5 to 50, got True"),
        ("fast", math.inf, "must be a finite number of at most 2^53 in size, got inf"),
        ("fast", math.nan, "must be a finite number of at most 2^53 in size, got nan"),
        ("k", 1e400, "must be a finite number of at most 2^53 in size, got inf"),
        ("k", 2.5, "must be from 0.5 to 2, got 2.5"),
        ("on", "yes", "must be true or false, got 'yes'"),
        ("on", 1, "must be true or false, got 1"),
        ("mode", "c", "must be one of 'a', 'b', 1, True, got 'c'"),
        ("mode", "1", "must be one of 'a', 'b', 1, True, got '1'"),
        ("size", 2**54, "must be a finite number of at most 2^53 in size, got 18014398509481984"),
    ],
)
def test_a_value_its_declaration_refuses_says_what_it_must_be(name: str, value: object, message: str) -> None:
    with pytest.raises(ParamError) as e:
        check_value(SPECS[name], value)
    assert (e.value.name, e.value.message) == (name, message)
    assert str(e.value) == f"params.{name}: {message}"


def test_the_sweep_syntax_is_refused_with_where_sweeps_are_made() -> None:
    with pytest.raises(ParamError, match=r"takes one value, not a range: '5\.\.20' is the syntax of a sweep"):
        check_value(SPECS["fast"], "5..20")
    with pytest.raises(ParamError, match="not a range"):
        check_value(SPECS["k"], "0.5..1.5:0.25")


def test_good_values_come_back_as_the_declared_type() -> None:
    assert check_params(SPECS, {"fast": 12.0, "k": 1, "mode": "b", "on": False, "size": -4}) == {
        "fast": 12,
        "k": 1.0,
        "mode": "b",
        "on": False,
        "size": -4,
    }
    assert type(check_value(SPECS["fast"], 12.0)) is int and type(check_value(SPECS["k"], 1)) is float
    # one number, whether written 1 or 1.0 (as in Lua); a boolean or a text never equals it
    assert check_value(SPECS["mode"], 1.0) == 1 and check_value(SPECS["mode"], True) is True


def test_a_name_the_strategy_does_not_declare_is_refused_with_those_it_does() -> None:
    with pytest.raises(ParamError) as e:
        check_params(SPECS, {"fsat": 10})
    assert e.value.name == "fsat"
    assert e.value.message == "the strategy declares no parameter 'fsat'; it declares fast, k, mode, on, size"


def test_a_strategy_that_declares_nothing_takes_any_parameters() -> None:
    assert check_params({}, {"fast": "abc", "x": 1}) == {"fast": "abc", "x": 1}


def test_a_stored_declaration_reads_back_to_the_same_specs() -> None:
    assert from_dicts([s.as_dict() for s in SPECS.values()]) == SPECS


def test_inspecting_code_gives_its_declaration_or_its_errors() -> None:
    found, specs = inspect('params = {fast = {min = 2, max = 9}}\nfunction decide(c, p) return "long" end')
    assert found == [] and specs["fast"].as_dict() == {"name": "fast", "type": "int", "min": 2, "max": 9}
    found, specs = inspect('params = {fast = {min = 9, max = 2}}\nfunction decide(c, p) return "long" end')
    assert "max (2) is below min (9)" in found[0].message and specs == {}
