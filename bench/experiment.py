"""Experiment files: every ``bench run`` option in a TOML file (``--config exp.toml``),
and the resolved configuration written into the run directory (``experiment.toml``).

The valid keys are **derived from the ``run`` subcommand's argparse parser**, passed in
by the command line (`bench.cli`): every option is a key, named by its destination
(``--k-train`` -> ``k_train``), and its type follows from how the parser converts it.
A new option of ``bench run`` is a key with no change here; an option whose type this
module cannot map is refused when the keys are built (``tests/test_experiment.py``
builds them), so the two cannot drift apart.

Precedence: the parser's defaults < the file < options given explicitly on the command
line. The resolved file (`write_experiment`) holds every option after that merge and the
run's own resolution (threads, absolute ``out`` and ``data_dir``); an option that is
not set (``None``) is written as a comment, since TOML has no null. Python's
``tomllib`` only reads TOML, so the file is written by `dumps`, a minimal writer for the
flat key = value types this needs (booleans, integers, floats, strings, arrays of them).
See docs/experiments.md.
"""

from __future__ import annotations

import argparse
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nskernel.errors import UsageError

try:  # Python >= 3.11; tomli is the same parser for 3.10
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    try:
        import tomli as tomllib  # type: ignore[no-redef]
    except ModuleNotFoundError:
        tomllib = None  # type: ignore[assignment]

#: the resolved configuration's file name inside a run directory
FILENAME = "experiment.toml"
#: options that are not settings of the experiment: ``--help`` and the file itself
NOT_KEYS = ("help", "config")
#: options whose value is a comma list of names; in a file also a TOML array of strings,
#: joined with ',' (a method variant's own ``a=1,b=2`` stays one element)
NAME_LISTS = ("tasks", "methods")

EXPECTED = {
    "bool": "a boolean (true or false)",
    "int": "an integer",
    "float": "a number",
    "path": "a path (a string)",
    "str": "a string",
    "names": "a string (a comma list, as on the command line) or an array of strings",
    "ints": "an array of integers or a comma string like '4,8'",
}


@dataclass(frozen=True)
class Option:
    """One key of an experiment file: a ``bench run`` option."""

    key: str  # the parser's destination, e.g. k_train
    flag: str  # the command-line spelling, e.g. --k-train
    kind: str  # a key of EXPECTED
    default: Any
    choices: tuple[str, ...] | None
    help: str
    action: argparse.Action

    @property
    def expected(self) -> str:
        if self.choices:
            return f"one of {', '.join(map(repr, self.choices))}"
        return EXPECTED[self.kind]


def _kind(action: argparse.Action) -> str:
    if action.nargs == 0 and isinstance(action.const, bool):  # store_true / store_false
        return "bool"
    if action.type is None:
        return "names" if action.dest in NAME_LISTS else "str"
    if action.type in (int, float):
        return action.type.__name__
    if action.type is Path:
        return "path"
    if _int_list(action):
        return "ints"  # a comma list of integers, converted by the parser's own type function
    raise TypeError(f"bench run option {action.option_strings[0]} has a type that experiment files cannot map "
                    f"({action.type!r}); teach bench.experiment._kind about it")


def _int_list(action: argparse.Action) -> bool:
    """A comma list of integers: the default is a tuple of them or, not set by default
    (``--n-train``), the type function makes one of ``"1"``."""
    try:
        value = action.default if action.default is not None else action.type("1")  # type: ignore[misc,operator]
    except Exception:  # noqa: BLE001 -- a type function that refuses "1": not such a list
        return False
    return isinstance(value, tuple) and bool(value) and all(isinstance(v, int) and not isinstance(v, bool)
                                                            for v in value)


def options(run_parser: argparse.ArgumentParser) -> dict[str, Option]:
    """The keys of an experiment file, in the parser's order: every option of
    ``run_parser`` (the ``run`` subcommand's parser) except ``--help`` and ``--config``."""
    out: dict[str, Option] = {}
    for action in run_parser._actions:  # argparse has no public list of its arguments
        if action.dest in NOT_KEYS or not action.option_strings:
            continue
        flag = next((s for s in action.option_strings if s.startswith("--")), action.option_strings[0])
        out[action.dest] = Option(action.dest, flag, _kind(action), action.default,
                                  tuple(action.choices) if action.choices else None, action.help or "", action)
    return out


def _toml_type(value: Any) -> str:
    for t, name in ((bool, "boolean"), (int, "integer"), (float, "float"), (str, "string"), (list, "array"),
                    (dict, "table")):
        if isinstance(value, t):
            return name
    return type(value).__name__  # dates and times


def convert(opt: Option, value: Any, where: str = "") -> Any:
    """A TOML value for ``opt`` as the command line would have produced it; `UsageError`
    naming the key and the expected type otherwise."""
    prefix = f"{where}: " if where else ""

    def bad() -> UsageError:
        return UsageError(f"{prefix}key {opt.key!r} expects {opt.expected}, got {_toml_type(value)} {value!r}")

    is_int = isinstance(value, int) and not isinstance(value, bool)
    if opt.kind == "bool":
        if not isinstance(value, bool):
            raise bad()
        out = value
    elif opt.kind == "int":
        if not is_int:
            raise bad()
        out = value
    elif opt.kind == "float":
        if not (is_int or isinstance(value, float)):
            raise bad()
        out = float(value)
    elif opt.kind == "path":
        if not isinstance(value, str) or not value:
            raise bad()
        out = Path(value)
    elif opt.kind == "str":
        if not isinstance(value, str):
            raise bad()
        out = value
    elif opt.kind == "names":
        if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
            value = ",".join(value)
        if not isinstance(value, str):
            raise bad()
        out = value
    else:  # "ints": through the parser's own conversion, so file and command line agree
        if isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            text = ",".join(map(str, value))
        elif isinstance(value, str):
            text = value
        elif is_int:
            text = str(value)
        else:
            raise bad()
        try:
            out = opt.action.type(text)
        except (argparse.ArgumentTypeError, ValueError, TypeError) as e:
            raise UsageError(f"{prefix}key {opt.key!r} expects {opt.expected}: {e}") from None
    if opt.choices and out not in opt.choices:
        raise bad()
    return out


def read_experiment(path: Path, opts: Mapping[str, Option]) -> dict[str, Any]:
    """The options set by the experiment file at ``path``, converted and validated;
    `UsageError` for an unreadable file, invalid TOML, an unknown key (naming the valid
    ones) or a value of the wrong type (naming the key and the type)."""
    if tomllib is None:  # pragma: no cover - Python 3.10 without tomli
        raise UsageError("--config needs Python >= 3.11 (tomllib) or: pip install tomli")
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise UsageError(f"cannot read the experiment file {path}: {e.strerror or e}") from None
    except UnicodeDecodeError as e:
        raise UsageError(f"{path} is not UTF-8 text: {e}") from None
    except tomllib.TOMLDecodeError as e:
        raise UsageError(f"{path} is not valid TOML: {e}") from None
    unknown = [k for k in data if k not in opts]
    if unknown:
        hints = [f"{k!r} -> {k.replace('-', '_')!r}" for k in unknown if k.replace("-", "_") in opts]
        hint = f" (keys use underscores: {', '.join(hints)})" if hints else ""
        raise UsageError(f"{path}: unknown key{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}"
                         f"{hint}; valid keys: {', '.join(opts)}")
    return {k: convert(opts[k], v, str(path)) for k, v in data.items()}


def explicit_keys(run_parser: argparse.ArgumentParser, argv: Sequence[str]) -> set[str]:
    """The options that ``argv`` (the arguments after ``run``) gives explicitly, as
    opposed to those left at their defaults: ``argv`` parsed again with every default
    suppressed. Changes ``run_parser``: pass a fresh one."""
    for action in run_parser._actions:
        if action.dest != "help":
            action.default = argparse.SUPPRESS
    return set(vars(run_parser.parse_args(list(argv))))


def merge(namespace: argparse.Namespace, from_file: Mapping[str, Any], explicit: set[str]) -> None:
    """Put the file's values into ``namespace`` except where the command line gave the
    option explicitly (the command line wins)."""
    for key, value in from_file.items():
        if key not in explicit:
            setattr(namespace, key, value)


def resolved(namespace: argparse.Namespace, opts: Mapping[str, Option], **values: Any) -> dict[str, Any]:
    """Every option's value after the merge (``values``: what the run itself resolved,
    e.g. ``threads``, ``out``, ``data_dir``); paths absolute, so that the written file
    names the same directories from anywhere."""
    unknown = set(values) - set(opts)
    if unknown:
        raise ValueError(f"not options of bench run: {sorted(unknown)}")
    out = {}
    for key, opt in opts.items():
        value = values[key] if key in values else getattr(namespace, key)
        if opt.kind == "path" and value is not None:
            value = Path(value).resolve()
        out[key] = value
    return out


# --------------------------------------------------------------------------- writing
_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
_COMMENT_BAD = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # a TOML comment may hold no control character but tab
_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}


def _string(text: str) -> str:
    """A TOML basic string: quotes, backslashes and control characters escaped."""
    out = []
    for ch in text:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)  # '30.0', '2e+13': valid TOML floats
    if isinstance(value, (str, Path)):
        return _string(str(value))
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} {value!r} as a TOML value")


def dumps(values: Mapping[str, Any], header: str = "") -> str:
    """Flat ``key = value`` TOML (``header`` as leading comments); a value ``None`` is
    written as the comment ``# key = (not set)``, since TOML has no null."""
    lines = ["# " + _COMMENT_BAD.sub(" ", line).rstrip() for line in header.splitlines()]
    for key, value in values.items():
        if not _BARE_KEY.match(key):
            raise ValueError(f"not a bare TOML key: {key!r}")
        lines.append(f"# {key} = (not set)" if value is None else f"{key} = {_value(value)}")
    return "\n".join(lines) + "\n"


HEADER = """\
NeuroScale Bench experiment: the resolved options of this run (defaults < --config file
< command line), written by `python -m bench run`; see docs/experiments.md.
Reproduce the run in a new directory:  python -m bench run --config {path} --out NEW_DIR
(without --out it resumes this run directory). Code version and machine: run.json.
command: {command}"""


def write_experiment(run_dir: Path, values: Mapping[str, Any], command: str = "") -> Path:
    """Write the resolved options to ``<run_dir>/experiment.toml`` (atomically)."""
    path = Path(run_dir) / FILENAME
    text = dumps(values, HEADER.format(path=path, command=" ".join(command.splitlines())))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # the debris pattern bench.runner removes
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path


def markdown_table(opts: Mapping[str, Option]) -> str:
    """The keys as a Markdown table: docs/experiments.md holds it verbatim (a test checks
    that it is up to date; the page says how to regenerate it)."""
    rows = ["| key | option | value | default | meaning |", "|---|---|---|---|---|"]
    for opt in opts.values():
        default = "not set" if opt.default is None else f"`{_value(opt.default)}`"
        meaning = " ".join(opt.help.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;").split())
        rows.append(f"| `{opt.key}` | `{opt.flag}` | {opt.expected} | {default} | {meaning} |")
    return "\n".join(rows) + "\n"

