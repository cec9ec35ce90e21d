"""What ``bestofn run`` runs: the LM it resolves and the inputs it reads, checked before anything runs.

Every problem here is the user's to fix, so each raises :class:`UsageError` with one line that names the
problem and the fix; the command turns it into exit status 2.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from bestofn_core.errors import BestOfNCoreError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

__all__ = [
    "DEFAULT_LM",
    "LMChoice",
    "UsageError",
    "config_path",
    "parse_assignments",
    "parse_input_values",
    "read_input_file",
    "resolve_lm",
]

#: The model ``bestofn run`` uses when no other is configured: SmolLM2-135M-Instruct, embedded through
#: llama.cpp by the ``bestofn-llamacpp`` plugin (no API key, no network).
DEFAULT_LM = "local/smollm2"
#: The environment variable naming the LM (``--lm`` wins over it).
LM_ENV_VAR = "BESTOFN_LM"
#: The environment variable naming the configuration file (else ``$XDG_CONFIG_HOME/bestofn/config.toml``).
CONFIG_ENV_VAR = "BESTOFN_CONFIG"


class UsageError(BestOfNCoreError):
    """The command line or a file it names is wrong; the message says what and how to fix it."""


@dataclass(frozen=True)
class LMChoice:
    """The LM ``bestofn run`` builds, and where its model string came from (shown by ``--json``)."""

    model: str
    #: ``"--lm"``, ``"BESTOFN_LM"``, the configuration file's path, or ``"default"``
    source: str
    #: further ``LM(...)`` keyword arguments from the configuration file's ``[lm]`` table
    kwargs: dict[str, Any] = field(default_factory=dict)


def config_path(environ: Mapping[str, str] = os.environ) -> Path:
    """The configuration file: ``$BESTOFN_CONFIG``, else ``$XDG_CONFIG_HOME/bestofn/config.toml``."""
    if environ.get(CONFIG_ENV_VAR):
        return Path(environ[CONFIG_ENV_VAR]).expanduser()
    base = environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "bestofn" / "config.toml"


def resolve_lm(flag: str | None, environ: Mapping[str, str] = os.environ) -> LMChoice:
    """The LM to use: ``--lm``, else ``$BESTOFN_LM``, else the config file's ``[lm] model``, else the default.

    The configuration file's other ``[lm]`` keys (``api_base``, ``max_tokens``, ...) become ``LM``
    keyword arguments whichever way the model was chosen; a configuration file that is named by
    ``$BESTOFN_CONFIG`` must exist.
    """
    path = config_path(environ)
    table = _lm_table(path, required=bool(environ.get(CONFIG_ENV_VAR)))
    kwargs = {key: value for key, value in table.items() if key != "model"}
    if flag:
        return LMChoice(flag, "--lm", kwargs)
    if environ.get(LM_ENV_VAR):
        return LMChoice(environ[LM_ENV_VAR], LM_ENV_VAR, kwargs)
    if "model" in table:
        model = table["model"]
        if not isinstance(model, str) or not model:
            raise UsageError(f"{path}: [lm] model must be a model string such as 'openai/gpt-4o-mini'.")
        return LMChoice(model, str(path), kwargs)
    return LMChoice(DEFAULT_LM, "default", kwargs)


def _lm_table(path: Path, *, required: bool) -> dict[str, Any]:
    if not path.exists():
        if required:
            raise UsageError(f"{CONFIG_ENV_VAR} names {path}, which does not exist; create it or unset it.")
        return {}
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"cannot read the configuration file {path}: {exc.strerror or exc}.") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(
            f"the configuration file {path} is not valid TOML: {exc}; fix or remove it."
        ) from exc
    unknown = sorted(set(document) - {"lm"})
    if unknown:
        raise UsageError(
            f"{path}: unknown table(s) {', '.join(map(repr, unknown))}; the configuration file has one "
            "table, [lm] (model = '...', plus LM(...) keyword arguments such as api_base)."
        )
    table = document.get("lm", {})
    if not isinstance(table, dict):
        raise UsageError(f"{path}: 'lm' must be a table ([lm]), not a {type(table).__name__}.")
    return table


def parse_assignments(items: Sequence[str], what: str) -> dict[str, str]:
    """``["a=1", "b=x y"]`` -> ``{"a": "1", "b": "x y"}``; ``what`` names them in errors."""
    values: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise UsageError(f'{what} {item!r} is not NAME=VALUE; write it as e.g. question="...".')
        if name in values:
            raise UsageError(f"{what} {name!r} is given twice; give each once.")
        values[name] = value
    return values


def parse_input_values(signature: Any, raw: Mapping[str, str]) -> dict[str, Any]:
    """The input fields from ``field=value`` arguments, checked against the signature.

    Text fields take the value as it is; fields of other types read it as JSON (``n=3``, ``tags='["a"]'``).
    """
    _check_fields(signature, raw.keys(), "")
    inputs: dict[str, Any] = {}
    for name, text in raw.items():
        annotation = signature.input_fields[name].annotation
        if annotation is str:
            inputs[name] = text
            continue
        try:
            inputs[name] = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            raise UsageError(
                f"input {name!r} is typed {getattr(annotation, '__name__', annotation)!s} and must be "
                f"written as JSON (e.g. {name}=3 or {name}='[\"a\"]'), not {text!r}."
            ) from exc
    return inputs


def read_input_file(path: Path, signature: Any) -> list[dict[str, Any]]:
    """Every example of a JSONL file (one JSON object of input fields per line; blank lines skipped)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read the input file {path}: {exc.strerror or exc}.") from exc
    examples: list[dict[str, Any]] = []
    for number, line in enumerate(data.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise UsageError(
                f"{path}, line {number}: not valid JSON ({exc}); each line must be one JSON object such as "
                '{"question": "..."}.'
            ) from exc
        if not isinstance(value, dict):
            shape = ", ".join(f'"{name}": "..."' for name in signature.input_fields)
            raise UsageError(
                f"{path}, line {number}: expected a JSON object of input fields such as {{{shape}}}, got "
                f"{_json_kind(value)}."
            )
        _check_fields(signature, value.keys(), f"{path}, line {number}: ")
        examples.append(value)
    if not examples:
        raise UsageError(f"the input file {path} has no examples; write one JSON object per line.")
    return examples


def _json_kind(value: Any) -> str:
    """What a parsed JSON value is, in JSON's words (``null``, ``an array``), not Python's."""
    if value is None or isinstance(value, bool):
        return orjson.dumps(value).decode()
    if isinstance(value, int | float):
        return f"the number {orjson.dumps(value).decode()}"
    return "a string" if isinstance(value, str) else "an array"


def _check_fields(signature: Any, given: Any, where: str) -> None:
    expected = list(signature.input_fields)
    unknown = [name for name in given if name not in signature.input_fields]
    if unknown:
        hint = (
            " (it is an output field)" if len(unknown) == 1 and unknown[0] in signature.output_fields else ""
        )
        raise UsageError(
            f"{where}unknown input field(s) {', '.join(map(repr, unknown))}{hint}; the signature's inputs "
            f"are {', '.join(expected)}."
        )
    missing = [name for name in expected if name not in given]
    if missing:
        raise UsageError(
            f"{where}missing input field(s) {', '.join(map(repr, missing))}; give "
            + ", ".join(f'{name}="..."' for name in missing)
            + "."
        )
