"""Saving and loading programs: state files (format by suffix, through serializer plugins) and whole programs.

State files hold each parameter's ``dump_state`` plus a ``metadata`` entry (format version and the
versions of the libraries that wrote it). Whole programs (``save_program=True``) are a directory with
``program.pkl`` (cloudpickle) and ``metadata.json``; loading them runs code, so it needs ``allow_pickle``.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bestofn_core.errors import BestOfNCoreError, SerializationError
from bestofn_core.primitives.module import load_into

if TYPE_CHECKING:
    from bestofn_core.primitives.module import Module

logger = logging.getLogger(__name__)

#: Bumped when the layout of saved state changes incompatibly.
FORMAT_VERSION = 1
#: The deepest nesting of lists and mappings a saved state may hold, counted from the top of the file (a
#: demo's value starts 4 levels down: parameter, "demos", the demo, its field). Deeper files are refused
#: at load and deeper programs at save, with an error naming where: JSON writers stop at 255 levels,
#: and Python's own recursion limit is not far beyond.
MAX_DEPTH = 200
PROGRAM_FILE = "program.pkl"
METADATA_FILE = "metadata.json"
_TRACKED_PACKAGES = ("bestofn-core", "pydantic", "litellm", "cloudpickle", "orjson")


def dependency_versions() -> dict[str, str]:
    """Versions of Python and the libraries whose changes can break a saved program."""
    import importlib_metadata

    versions = {"python": f"{sys.version_info.major}.{sys.version_info.minor}"}
    for package in _TRACKED_PACKAGES:
        try:
            versions[package] = importlib_metadata.version(package)
        except importlib_metadata.PackageNotFoundError:
            continue
    return versions


def metadata() -> dict[str, Any]:
    """The metadata entry written with every save."""
    return {"format_version": FORMAT_VERSION, "dependency_versions": dependency_versions()}


def check_metadata(saved: Any, source: Path) -> None:
    """Refuse files from a newer format; warn when they were written with other library versions."""
    if saved is None:
        logger.warning("%s has no metadata; it may come from another version of bestofn-core", source)
        return
    if not isinstance(saved, dict):
        raise SerializationError(
            f"{source} has an invalid metadata entry (expected a mapping, got {type(saved).__name__}): "
            "the file was edited or is corrupt."
        )
    version = saved.get("format_version", FORMAT_VERSION)
    saved_versions = saved.get("dependency_versions") or {}
    if not isinstance(saved_versions, dict):
        raise SerializationError(
            f"{source} has invalid metadata: dependency_versions must be a mapping, got "
            f"{type(saved_versions).__name__}. The file was edited or is corrupt."
        )
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise SerializationError(
            f"{source} has an invalid format_version {version!r} in its metadata (expected a positive "
            "integer): the file was edited or is corrupt."
        )
    if version > FORMAT_VERSION:
        writer = saved_versions.get("bestofn-core")
        written_by = f" by bestofn-core {writer}" if writer else ""
        raise SerializationError(
            f"{source} was saved in format version {version}{written_by}, newer than this bestofn-core "
            f"({_own_version()}) supports (format version {FORMAT_VERSION}). Upgrade bestofn-core "
            "(pip install --upgrade bestofn-core) to load it."
        )
    current = dependency_versions()
    different = {
        name: (saved_versions[name], current.get(name))
        for name in saved_versions
        if saved_versions[name] != current.get(name)
    }
    if different:
        listed = ", ".join(f"{name} {old} (now {new})" for name, (old, new) in sorted(different.items()))
        logger.warning("%s was saved with different versions: %s. Loading may fail.", source, listed)


def _own_version() -> str:
    from bestofn_core._version import __version__

    return __version__


def _serializer(path: Path) -> Any:
    from bestofn_core.plugins import get_registry

    return get_registry().serializer_for(path).obj


def save_module(
    module: Module,
    path: str | Path,
    *,
    save_program: bool = False,
    modules_to_serialize: list[Any] | None = None,
) -> None:
    """Write ``module``'s state to ``path`` (by suffix) or, with ``save_program``, the whole program."""
    path = Path(path)
    if save_program:
        _save_program(module, path, modules_to_serialize or [])
        return
    serializer = _serializer(path)
    try:
        state = module.dump_state(json_mode=not serializer.executes_code)
    except RecursionError:
        # a value nested deeper than Python can walk: name the parameter that holds it
        raise SerializationError(f"Cannot save {path}: {_too_deep(_deepest_parameter(module))}") from None
    check_depth(state, path, "save")
    state["metadata"] = metadata()
    serializer.dump(state, path)


def check_depth(state: Any, source: Path, action: str) -> None:
    """Refuse a state nested more than ``MAX_DEPTH`` levels deep, naming where (never recurses itself)."""
    stack: list[tuple[Any, int, tuple[Any, ...]]] = [(state, 0, ())]
    while stack:
        value, depth, where = stack.pop()
        if isinstance(value, dict):
            children: Any = value.items()
        elif isinstance(value, list | tuple):
            children = enumerate(value)
        else:
            continue
        if depth >= MAX_DEPTH:
            raise SerializationError(f"Cannot {action} {source}: {_too_deep(_path_text(where))}")
        stack.extend((item, depth + 1, (*where, key)) for key, item in children)


def _too_deep(where: str) -> str:
    return (
        f"{where} is nested more than {MAX_DEPTH} levels deep, the most a saved program may hold. "
        "Flatten the value (e.g. store it as a string)."
    )


def _path_text(where: tuple[Any, ...]) -> str:
    shown = "".join(f"[{key}]" if isinstance(key, int) else f".{key}" for key in where[:6]).lstrip(".")
    return (shown + ("..." if len(where) > 6 else "")) or "the state"


def _deepest_parameter(module: Module) -> str:
    for name, param in module.named_parameters():
        try:
            param.dump_state()
        except RecursionError:
            return f"the state of {name}"
    return "the program's state"


def _save_program(module: Module, directory: Path, modules_to_serialize: list[Any]) -> None:
    if _names_a_state_file(directory):  # "p.json": the user meant a state file; "runs/v1.2" is a directory
        raise SerializationError(
            f"save_program=True writes a directory, but {directory} has the suffix of a state file "
            f"({directory.suffix}). Pass a directory path such as {directory.with_suffix('')}, or save the "
            f"state alone with save({str(directory)!r}) (without save_program=True)."
        )
    if directory.exists() and not directory.is_dir():
        raise SerializationError(f"{directory} exists and is not a directory.")
    # through the registry, like state files: blocking the pickle plugin (BESTOFN_BLOCK_PLUGINS=pickle)
    # turns whole-program pickles off too
    pickler = _serializer(directory / PROGRAM_FILE)
    directory.mkdir(parents=True, exist_ok=True)
    try:
        with _pickled_by_value(modules_to_serialize):
            pickler.dump(module, directory / PROGRAM_FILE)
    except SerializationError:
        raise
    except Exception as exc:
        raise SerializationError(f"Could not pickle the program into {directory}: {exc}") from exc
    _serializer(directory / METADATA_FILE).dump(metadata(), directory / METADATA_FILE)


def _names_a_state_file(path: Path) -> bool:
    try:
        _serializer(path)
    except SerializationError:
        return False  # no format has this suffix (".2" of "v1.2")
    return True


@contextmanager
def _pickled_by_value(modules: list[Any]) -> Iterator[None]:
    """Pickle the code of ``modules`` by value (not by reference) inside the block."""
    import cloudpickle

    for extra in modules:
        cloudpickle.register_pickle_by_value(extra)
    try:
        yield
    finally:
        for extra in modules:
            cloudpickle.unregister_pickle_by_value(extra)


def load_state_file(path: str | Path, *, allow_pickle: bool = False) -> dict[str, Any]:
    """Read a state file written by ``save_module`` (checks the metadata, refuses pickle by default)."""
    path = Path(path)
    if path.is_dir():
        raise SerializationError(
            f"{path} is a directory (a whole saved program): load it with bestofn_core.load(path, "
            "allow_pickle=True)."
        )
    serializer = _serializer(path)
    if serializer.executes_code and not allow_pickle:
        raise SerializationError(
            f"Loading {path} would run code stored in it ({path.suffix} files can execute anything). "
            "Pass allow_pickle=True only for files you trust, or save as .json instead."
        )
    if not path.exists():
        raise SerializationError(f"{path} does not exist.")
    state = serializer.load(path)
    if not isinstance(state, dict):
        raise SerializationError(
            f"{path} does not hold a saved program state (expected a mapping, got {type(state).__name__})."
        )
    check_metadata(state.pop("metadata", None), path)
    check_depth(state, path, "load")
    return state


def load_module(
    module: Module, path: str | Path, *, allow_pickle: bool = False, allow_unsafe_lm_state: bool = False
) -> Module:
    """Load the state file ``path`` into ``module`` (what ``Module.load`` does); returns ``module``.

    The file is not trusted: its shape is checked against what ``module`` itself saves (no state for
    parameters the program does not have, no list where the program saves a mapping, ...), and every
    error names the file. LM settings in it cannot choose where requests go (see ``lm_from_state``),
    unless ``allow_unsafe_lm_state`` says the file is trusted (see ``Module.load``).
    """
    path = Path(path)
    state = load_state_file(path, allow_pickle=allow_pickle)
    _check_shape(state, module, path)
    try:
        load_into(module, state, trusted=allow_unsafe_lm_state)
    except BestOfNCoreError as exc:
        # keep the class (callers catch UnknownNameError, ConfigurationError, ...); add the file's name
        if exc.args and isinstance(exc.args[0], str) and str(path) not in exc.args[0]:
            exc.args = (f"Cannot load {path}: {exc.args[0]}", *exc.args[1:])
        raise
    except (TypeError, ValueError, LookupError, AttributeError) as exc:
        raise SerializationError(
            f"Cannot load {path}: its content does not have the shape a {type(module).__name__} saves "
            f"({type(exc).__name__}: {exc}). Was the file edited, or saved from another program?"
        ) from exc
    return module


def _check_shape(state: dict[str, Any], module: Module, path: Path) -> None:
    expected, program = module.dump_state(), type(module).__name__
    unknown = [name for name in state if name not in expected]
    # with parameters missing too, the file is another program's: Module.load_state names the missing ones
    if unknown and all(name in state for name, _ in module.named_parameters()):
        raise SerializationError(
            f"Cannot load {path}: it holds state for {', '.join(map(repr, unknown))}, which this "
            f"{program} does not have (it has {', '.join(map(repr, expected)) or 'no parameters'}). "
            "Was it saved from another program?"
        )
    for name, value in state.items():
        if name in expected:
            _check_kind(name, value, expected[name], path, depth=1)


def _check_kind(where: str, value: Any, expected: Any, path: Path, depth: int) -> None:
    # Only containers are compared, and only two levels deep (a parameter, then its fields): below that,
    # and for scalars, each parameter's load_state validates what it reads.
    kind = _container_kind(expected)
    if kind is None or value is None:
        return
    if _container_kind(value) != kind:
        raise SerializationError(
            f"Cannot load {path}: {where} must be a {kind}, got {type(value).__name__} ({_preview(value)}). "
            "The file was edited or is corrupt."
        )
    if kind == "mapping" and depth < 2:
        for name, item in value.items():
            if name in expected:
                _check_kind(f"{where}.{name}", item, expected[name], path, depth + 1)


def _container_kind(value: Any) -> str | None:
    if isinstance(value, dict):
        return "mapping"
    if isinstance(value, list | tuple):
        return "list"
    return None


def _preview(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:60] + "..."


def load_program(path: str | Path, *, allow_pickle: bool = False) -> Any:
    """Load a whole program saved with ``save(dir, save_program=True)``."""
    directory = Path(path)
    if not allow_pickle:
        raise SerializationError(
            f"Loading the program in {directory} runs the code pickled in {PROGRAM_FILE}. "
            "Pass allow_pickle=True only for programs you trust."
        )
    if not directory.is_dir() or not (directory / PROGRAM_FILE).exists():
        raise SerializationError(
            f"{directory} is not a saved program directory (it needs {PROGRAM_FILE} and {METADATA_FILE}). "
            "For a state file, create the program and call program.load(path)."
        )
    unpickler = _serializer(directory / PROGRAM_FILE)  # refused when the pickle plugin is blocked
    meta_path = directory / METADATA_FILE
    if meta_path.exists():
        check_metadata(_serializer(meta_path).load(meta_path), meta_path)
    try:
        return unpickler.load(directory / PROGRAM_FILE)
    except SerializationError:
        raise
    except Exception as exc:
        raise SerializationError(f"Could not unpickle {directory / PROGRAM_FILE}: {exc}") from exc


def load(path: str | Path, allow_pickle: bool = False) -> Any:
    """Load a program saved with ``program.save(path, save_program=True)``; needs ``allow_pickle=True``."""
    return load_program(path, allow_pickle=allow_pickle)


# ----------------------------------------------------------------------------------------------------------
# Settings files (``settings.save`` / ``load_settings``)


def save_settings(
    values: Mapping[str, Any], path: str | os.PathLike[str], *, modules_to_serialize: list[Any] | None = None
) -> None:
    """Write settings ``values`` to ``path`` with the pickle serializer its suffix names.

    Settings hold live objects (LMs, adapters, callbacks) that only pickle can save, so a suffix whose
    serializer cannot run code (``.json``) is refused. A value that cannot be pickled raises
    ``SerializationError`` naming the setting, and no file is left behind.
    """
    path = Path(path)
    pickler = _serializer(path)
    if not pickler.executes_code:
        raise SerializationError(
            f"Settings hold live objects (LMs, adapters, callbacks) that only pickle can save: save them to "
            f"a .pkl file, not {path.name}."
        )
    state = {"settings": dict(values), "metadata": metadata()}
    try:
        with _pickled_by_value(list(modules_to_serialize or ())):
            pickler.dump(state, path)
    except SerializationError as exc:
        culprits = [name for name, value in values.items() if not _picklable(value, modules_to_serialize)]
        named = (
            f" (setting(s) {', '.join(culprits)}; leave them out with exclude_keys=[...])" if culprits else ""
        )
        raise SerializationError(f"Cannot save the settings to {path}{named}: {exc}") from exc


def read_settings(path: str | os.PathLike[str], *, allow_pickle: bool = False) -> dict[str, Any]:
    """The settings ``save_settings`` wrote to ``path`` (refused without ``allow_pickle=True``)."""
    path = Path(path)
    if not allow_pickle:
        raise SerializationError(
            f"Loading the settings in {path} runs the code pickled in it. Pass allow_pickle=True only for "
            "files you trust."
        )
    if not path.exists():
        raise SerializationError(f"{path} does not exist.")
    state = _serializer(path).load(path)
    saved = state.get("settings") if isinstance(state, dict) else None
    if not isinstance(saved, dict) or not all(isinstance(name, str) for name in saved):
        raise SerializationError(
            f"{path} holds no settings (expected what settings.save() writes, got {type(state).__name__})."
        )
    check_metadata(state.get("metadata"), path)
    return dict(saved)


def _picklable(value: Any, modules_to_serialize: list[Any] | None) -> bool:
    import io

    import cloudpickle

    try:
        with _pickled_by_value(list(modules_to_serialize or ())):
            cloudpickle.dump(value, io.BytesIO())
    except Exception:
        return False
    return True
