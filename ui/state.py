"""The pair config as flat string parameters (the URL) and as widget state.

URL keys: `data.<field>` for the shared data, `a.<section.field>` for A's settings,
`b.<section.field>` for each factor in which B differs, `init=a` when B starts from
A's initial weights (`init=none` alone for a pair of nothing but defaults, since an empty
link opens the default scenario), `process=one` when A and B are built one after the other in
one process, and `scenario=<preset>` when the pair was loaded from a
scenario (edited or not), so that a recipient sees its name and description. Only values away from the defaults are written, so a link is
short. Reading never raises: a parameter that makes no sense becomes a warning and
falls back to the default.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

from core.config import ConfigError, DataConfig, PairConfig, RunConfig, run_paths, shorten
from core.factors import BY_PATH, DATA_RULES, Choice, Number, make_pair
from core.presets import PRESETS, default_pair

DATA_FIELDS = [f.name for f in dataclasses.fields(DataConfig)]
NOT_IN_LINKS = {"csv_path"}  # an uploaded file lives on this server only
ECHO = 80  # characters of a link's key or value repeated in a warning
SCENARIO = "scenario"


def scenario_in(params: Mapping[str, str]) -> str | None:
    """The scenario a link names, if it is one this app knows."""
    name = params.get(SCENARIO)
    return name if name in PRESETS else None


def scenario_of(pair: PairConfig) -> str | None:
    """The scenario this pair is as loaded (not edited), if any."""
    return next((name for name, preset in PRESETS.items() if preset.pair() == pair), None)


def encode(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (tuple, list)):
        return ",".join(map(str, value))
    return repr(value) if isinstance(value, float) else str(value)


def decode(text: str, allowed, where: str) -> Any:
    """A URL string as the value `allowed` expects (then checked by it)."""
    if isinstance(allowed, Choice):
        for option in allowed.options:
            if text == encode(option) or (isinstance(option, bool) and text.lower() in (
                    ("1", "on", "yes", "true") if option else ("0", "off", "no", "false"))):
                return option
        return allowed.check(text, where)  # raises with the allowed list
    if isinstance(allowed, Number):
        try:
            value = float(text)
        except ValueError:
            raise ConfigError(f"{where}: expected a number, got {text!r}") from None
        if allowed.integer:
            if not value.is_integer():
                raise ConfigError(f"{where}: expected an integer, got {text!r}")
            value = int(value)
        return allowed.check(value, where)
    return allowed.check(text, where)  # Layers parse "64,32" themselves; Text is text


def to_params(pair: PairConfig, scenario: str | None = None) -> dict[str, str]:
    """A link's parameters: the pair's values (those not at their defaults), and the name of the scenario it was
    loaded from, if given (the link then opens with that scenario in the sidebar)."""
    params = {}
    default_data = DataConfig()
    for name in DATA_FIELDS:
        value = getattr(pair.data, name)
        if value != getattr(default_data, name) and name not in NOT_IN_LINKS:
            params[f"data.{name}"] = encode(value)
    for path in run_paths():
        if pair.a.get(path) != BY_PATH[path].default:
            params[f"a.{path}"] = encode(pair.a.get(path))
    for path, value in pair.b_differs:
        params[f"b.{path}"] = encode(value)
    if pair.same_process:
        params[PROCESS] = "one"
    if pair.b_starts_from_a_init or not params:
        # An empty link opens the default scenario; a pair of nothing but defaults says so explicitly.
        params["init"] = "a" if pair.b_starts_from_a_init else "none"
    if scenario is not None:
        params[SCENARIO] = scenario
    return params


def from_params(params: Mapping[str, str]) -> tuple[PairConfig, list[str]]:
    """The pair a link describes, and a warning for each parameter that was ignored."""
    if not params:
        return default_pair(), []
    if set(params) == {SCENARIO} and scenario_in(params):  # a hand-written link: just the scenario's name
        return PRESETS[params[SCENARIO]].pair(), []
    warnings: list[str] = []
    data, a, b, flags = {}, RunConfig(), {}, {}
    for key, text in params.items():
        head, _, rest = key.partition(".")
        try:
            if key == SCENARIO:
                decode(text, Choice(tuple(PRESETS)), key)  # read by scenario_in; here only checked
            elif key == "init":
                flags["b_starts_from_a_init"] = decode(text, Choice(("a", "none")), "init") == "a"
            elif key == PROCESS:
                flags["same_process"] = decode(text, Choice(("one",)), PROCESS) == "one"
            elif head == "data" and rest in DATA_RULES and rest not in NOT_IN_LINKS:
                data[rest] = decode(text, DATA_RULES[rest], key)
            elif head in ("a", "b") and rest in BY_PATH:
                value = decode(text, BY_PATH[rest].allowed, key)
                if head == "a":
                    a = a.with_value(rest, value)
                else:
                    b[rest] = value
            else:
                warnings.append(f"Ignored the unknown link parameter {shorten(key, ECHO)!r}.")
        except ConfigError as e:
            warnings.append(f"Ignored link parameter {shorten(key, ECHO)}={shorten(text, ECHO)!r}: "
                            f"{shorten(str(e), 2 * ECHO)}. Using the default.")
    try:
        return make_pair(DataConfig(**data), a, b, **flags), warnings
    except ConfigError as e:
        return default_pair(), warnings + [f"The link describes a pair that cannot run ({shorten(str(e), 2 * ECHO)}); "
                                           "showing the default scenario instead."]


# Widget state: one session-state key per field, the same names as the URL keys.
B_FACTORS = "b.factors"  # the multiselect of factors in which B differs
INIT = "init"
PROCESS = "process"


def to_state(pair: PairConfig) -> dict[str, Any]:
    state = {f"data.{name}": getattr(pair.data, name) for name in DATA_FIELDS}
    state.update({f"a.{path}": _widget_value(pair.a.get(path)) for path in run_paths()})
    state.update({f"b.{path}": _widget_value(pair.a.get(path)) for path in run_paths()})  # B's inputs start at A's
    state.update({f"b.{path}": _widget_value(value) for path, value in pair.b_differs})
    state[B_FACTORS] = [path for path, _ in pair.b_differs]
    state[INIT] = pair.b_starts_from_a_init
    state[PROCESS] = pair.same_process
    return state


def from_state(state: Mapping[str, Any]) -> PairConfig:
    """The pair the widgets describe; ConfigError names the first field that is wrong."""
    data = DataConfig(**{name: DATA_RULES[name].check(state[f"data.{name}"], f"data.{name}") for name in DATA_FIELDS})
    a = RunConfig()
    for path in run_paths():
        a = a.with_value(path, BY_PATH[path].allowed.check(state[f"a.{path}"], path))
    b = {path: state[f"b.{path}"] for path in state.get(B_FACTORS, [])}
    return make_pair(data, a, b, bool(state.get(INIT)), bool(state.get(PROCESS)))


def _widget_value(value: Any) -> Any:
    return encode(value) if isinstance(value, tuple) else value
