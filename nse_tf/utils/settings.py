"""Settings declared once, on the dataclass field that holds them (TF Model Garden's dataclass configs that absl
flags override; TuNAS's one schema). Each field says its default, help, flag (per cost mode where the search's
unit renames it), when a run may change it, its check, and what an older file without it meant; the command
lines' flags, their one-line errors and the reading of saved configs derive from these declarations.

TensorFlow-free; absl is imported only to define flags. The library raises ``SettingError`` naming the field,
never the flag: a command line turns the field into its flag through the schema (``Setting.flag``).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Iterable, Mapping

# When a run may change a setting once it has started:
FIXED = "fixed"  # never: a resumed run must have the value it was made with
END_OF_ROUND = "end_of_round"  # read only at the end of a round: may change until that round's evaluation ends
ANY_TIME = "any_time"  # read only after the last round (the verification): may change even once the search is done
WHEN = (FIXED, END_OF_ROUND, ANY_TIME)
# absl flag kinds
KINDS = ("string", "integer", "float", "boolean", "enum", "list", "multi_string")
REQUIRED = dataclasses.MISSING  # a field without a default (its flag defaults to None)


class _Absent:
    def __repr__(self) -> str:
        return "ABSENT"


ABSENT = _Absent()  # ``Spec.missing``: the setting was in every saved file from the start
_SPEC = "nse_tf.setting"
_SECTION = "nse_tf.section"
Check = Callable[[Any], "str | None"]


class SettingError(ValueError):
    """A setting's value that cannot be used. ``field`` names it: a dataclass field, qualified by its section
    (``evolution.drift``) once the section is known; ``cost``, where given, is the cost mode whose flag is at
    fault (a flag of the other mode). The message reads alone (``str``); command lines prefix the flag."""

    def __init__(self, field: str, message: str, cost: str | None = None):
        super().__init__(message)
        self.field = field
        self.message = message
        self.cost = cost

    def within(self, section: str) -> "SettingError":
        """The same error, its field qualified by the section that holds it (``optim`` + ``weight_lr``)."""
        return type(self)(f"{section}.{self.field}" if self.field else section, self.message, self.cost)


@dataclasses.dataclass(frozen=True)
class Flag:
    """A command-line flag that sets a setting; ``cost``: the only cost mode that has it (None: every mode).
    ``{name}`` in ``help`` names another flag (written ``--name`` when flags are defined)."""

    name: str
    default: Any
    help: str
    cost: str | None = None


@dataclasses.dataclass(frozen=True)
class Spec:
    """One setting's declaration, beside its field's default.

    ``flags`` None gives one flag with the field's default and help, named ``flag`` (the field's name unless
    given); ``()`` no flag; flags of their own where they differ per cost mode. ``same_as``: the
    path of the setting whose flag also sets this one (``data.seed`` is ``--seed``). ``saved`` False: how this
    process runs, not a setting of the run (never in a saved config). ``check(value)`` returns what is wrong
    (``"must be positive, got 0"``), which follows ``label`` (the field's name by default). ``missing``: what a
    saved config written before the setting existed meant; ``old_names``: the field's earlier names there.
    ``parse`` turns the flag's value into the field's (``ema_momentum``: 0 is off, None)."""

    help: str
    kind: str
    flag: str | None = None
    flags: tuple[Flag, ...] | None = None
    choices: tuple[str, ...] = ()
    when: str = FIXED
    saved: bool = True
    check: Check | None = None
    label: str | None = None
    missing: Any = ABSENT
    old_names: tuple[str, ...] = ()
    parse: Callable[[Any], Any] | None = None
    same_as: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if self.when not in WHEN:
            raise ValueError(f"when must be one of {', '.join(WHEN)}, got {self.when!r}")
        if (self.kind == "enum") != bool(self.choices):
            raise ValueError("an enum setting, and only one, lists its choices")


def setting(default: Any, help: str, kind: str | None = None, **spec: Any) -> Any:
    """A dataclass field that declares one setting (``spec``: the other fields of ``Spec``); ``kind`` follows
    the default's type (or ``choices``) unless given."""
    kind = kind or _kind_of(default, spec.get("choices", ()))
    field: dict[str, Any] = {} if default is REQUIRED else {"default": default}
    return dataclasses.field(**field, metadata={_SPEC: Spec(help, kind, **spec)})


def section(cls: type, default: Any = REQUIRED) -> Any:
    """A dataclass field holding a group of settings (its own dataclass): the paths ``<field>.<its field>``."""
    field: dict[str, Any] = {} if default is REQUIRED else {"default": default}
    return dataclasses.field(**field, metadata={_SECTION: cls})


def _kind_of(default: Any, choices: tuple[str, ...]) -> str:
    if choices:
        return "enum"
    for kind, types in (("boolean", bool), ("integer", int), ("float", float), ("string", str),
                        ("list", (tuple, list))):
        if isinstance(default, types):
            return kind
    raise ValueError(f"give the kind of a setting whose default is {default!r}")


@dataclasses.dataclass(frozen=True)
class Setting:
    """A declared setting at its path (``evolution.drift``; top-level fields have no dot)."""

    path: str
    default: Any  # the field's default (REQUIRED: none)
    spec: Spec

    @property
    def name(self) -> str:
        return self.path.rsplit(".", 1)[-1]

    @property
    def flags(self) -> tuple[Flag, ...]:
        if self.spec.flags is not None:
            return self.spec.flags
        default = None if self.default is REQUIRED else self.default
        return (Flag(self.spec.flag or self.name, list(default) if isinstance(default, tuple) else default,
                     self.spec.help),)

    def flag(self, cost: str | None = None) -> Flag | None:
        """The flag that sets it under ``cost`` (that mode's own, else one of every mode); None: no flag."""
        flags = self.flags
        return (next((f for f in flags if f.cost is not None and f.cost == cost), None)
                or next((f for f in flags if f.cost is None), None)
                or (flags[0] if flags and cost is None else None))


def flag_option(cls: type, field: str, cost: str | None = None) -> str:
    """How a command line spells the flag of ``cls``'s field ``field`` under ``cost``, for messages that say what
    to change (a module that cannot see the whole schema names its own settings' flags so)."""
    item = next(s for s in settings_of(cls) if s.path == field)
    flag = item.flag(cost)
    return option(flag.name if flag is not None else field)


def settings_of(cls: type, prefix: str = "") -> tuple[Setting, ...]:
    """Every declared setting of dataclass ``cls``, sections included, in field order."""
    out: list[Setting] = []
    for field in dataclasses.fields(cls):
        if _SECTION in field.metadata:
            out.extend(settings_of(field.metadata[_SECTION], f"{prefix}{field.name}."))
        elif _SPEC in field.metadata:
            default = REQUIRED if field.default is dataclasses.MISSING else field.default
            out.append(Setting(prefix + field.name, default, field.metadata[_SPEC]))
    return tuple(out)


def check_fields(config: Any, error: type[SettingError] = SettingError) -> None:
    """Each declared field's check in field order; the first failure raised as ``error`` naming its field."""
    for field in dataclasses.fields(config):
        spec = field.metadata.get(_SPEC)
        if spec is None or spec.check is None:
            continue
        problem = spec.check(getattr(config, field.name))
        if problem:
            label = field.name if spec.label is None else spec.label
            raise error(field.name, f"{label} {problem}".strip())


# ----------------------------------------------------------------- checks (what is wrong, or None)
def positive(value: Any) -> str | None:
    return None if value > 0 else f"must be positive, got {value}"


def at_least(low: float) -> Check:
    return lambda value: None if value >= low else f"must be >= {low:g}, got {value}"


def between(low: float, high: float, low_open: bool = False, high_open: bool = False) -> Check:
    def check(value: Any) -> str | None:
        inside = (low < value if low_open else low <= value) and (value < high if high_open else value <= high)
        return None if inside else (f"must be in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
                                    f", got {value}")

    return check


def one_of(*choices: str, quote: bool = True) -> Check:
    shown = [repr(c) if quote else c for c in choices]
    listed = shown[0] if len(shown) == 1 else ", ".join(shown[:-1]) + f" or {shown[-1]}"
    return lambda value: None if value in choices else f"must be {listed}, got {value!r}"


def optional(check: Check) -> Check:
    """``check``, with None accepted."""
    return lambda value: None if value is None else check(value)


# ----------------------------------------------------------------- command lines
def option(flag: str) -> str:
    """How a command line spells ``flag``."""
    return f"--{flag}"


class _Options(dict):
    def __missing__(self, key: str) -> str:
        return option(key)


def help_text(text: str) -> str:
    """``text`` with each ``{flag}`` written as the command line spells it."""
    return text.format_map(_Options())


def define_flags(settings: Iterable[Setting], helps: Mapping[str, str] | None = None) -> dict[str, Any]:
    """absl flags of ``settings`` (each flag once; ``same_as`` settings have their own's), with ``helps``
    replacing a flag's help; their holders by flag name. absl counts them as the calling module's flags (its
    ``--helpfull`` section), as if it had defined them itself."""
    from absl import flags

    flags.disclaim_key_flags()  # this module defines flags for its callers

    definers = {"string": flags.DEFINE_string, "integer": flags.DEFINE_integer, "float": flags.DEFINE_float,
                "boolean": flags.DEFINE_boolean, "list": flags.DEFINE_list,
                "multi_string": flags.DEFINE_multi_string}
    holders: dict[str, Any] = {}
    for item in settings:
        if item.spec.same_as:
            continue
        for flag in item.flags:
            if flag.name in holders:
                continue
            text = help_text((helps or {}).get(flag.name, flag.help))
            if item.spec.kind == "enum":
                holders[flag.name] = flags.DEFINE_enum(flag.name, flag.default, list(item.spec.choices), text)
            else:
                holders[flag.name] = definers[item.spec.kind](flag.name, flag.default, text)
    return holders


def flag_values(settings: Iterable[Setting], values: Mapping[str, Any], cost: str | None = None) -> dict[str, Any]:
    """Field values of a flat settings group (its fields' own flags under ``cost``) from ``values`` (flag name ->
    value as parsed); fields without a flag keep their defaults."""
    out = {}
    for item in settings:
        flag = item.flag(cost)
        if flag is not None and flag.name in values:
            value = values[flag.name]
            out[item.name] = item.spec.parse(value) if item.spec.parse else value
    return out
