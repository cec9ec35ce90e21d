"""Loading a saved file that someone else wrote or edited: no code runs, no request is redirected.

- Pickles (state ``.pkl`` files and ``save_program`` directories) are refused *before* anything is
  unpickled unless ``allow_pickle=True``: a payload that would create a file never runs.
- A ``.json`` file cannot name code: rewards, policies and LM backends are registry references
  (``"plugin:name"``), never import paths, so ``"os:system"`` or a module on ``sys.path`` is not imported.
- A ``.json`` file cannot choose where requests go nor which credentials they carry: ``api_base``,
  ``base_url`` and the like, another provider or backend, keys and headers are ignored with a warning
  naming the setting and the opt-in (``bestofn_core.context(allow_api_base_from_file=True)``). Two real
  servers show where the requests go.
- A reference to a plugin that is not installed, blocked or not loaded is one error naming the plugin and
  the fix; real entry-point plugins (tests/fixtures/plugin_dists) show the blocked and not-loaded cases.
- Truncated, edited or wrongly typed files, files of another program and files from a newer version each
  give one error naming the file and the problem (the field, both versions).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import pickle
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import bestofn_tests_plugin_fixtures as plugin_fixtures  # loaded by tests/conftest.py
import orjson
import pytest

import bestofn_core as bon
from bestofn_core.errors import (
    BestOfNCoreError,
    ConfigurationError,
    SerializationError,
    UnknownNameError,
)
from bestofn_core.lm.credentials import ROUTING_SETTINGS
from bestofn_core.plugins import reset_plugins
from bestofn_core.serialization import FORMAT_VERSION, MAX_DEPTH, load_state_file
from bestofn_core.testing.openai_server import OpenAICompatServer

TESTS = Path(__file__).resolve().parent
OPT_IN = "allow_lm_from_file=True"


plugin_site = plugin_fixtures.plugin_site
installed_plugins = plugin_fixtures.installed_plugins


class Program(bon.Module):
    def __init__(self) -> None:
        super().__init__()
        self.qa = bon.ChainOfThought("question -> answer")

    def forward(self, question: str) -> bon.Prediction:
        return self.qa(question=question)


class Touch:
    """Unpickling this creates ``path``: the stand-in for any code a pickle can run."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.path,))


def edit(path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    data = orjson.loads(path.read_bytes())
    change(data)
    path.write_bytes(orjson.dumps(data))


def saved_program(tmp_path: Path, lm: bon.LM | None = None, name: str = "p.json") -> Path:
    program = Program()
    program.qa.predict.demos = [bon.Example(question="1+1?", reasoning="add", answer="2")]
    if lm is not None:
        program.set_lm(lm)
    path = tmp_path / name
    program.save(path)
    return path


def lm_state(data: dict[str, Any]) -> dict[str, Any]:
    state: dict[str, Any] = data["qa.predict"]["lm"]
    return state


@pytest.fixture
def planted_server() -> Iterator[OpenAICompatServer]:
    """A second server: the host an edited file tries to send requests (and keys) to."""
    with OpenAICompatServer() as planted:
        yield planted


@pytest.fixture
def entry_point_plugins(installed_plugins: Path) -> Iterator[Path]:
    """The fixture distributions installed for real; the plugin manager rebuilt afterwards."""
    yield installed_plugins
    reset_plugins()


# ------------------------------------------------------------------------- pickles need allow_pickle


def test_a_state_pickle_is_refused_before_anything_is_unpickled(tmp_path: Path) -> None:
    canary = tmp_path / "code-ran"
    path = tmp_path / "state.pkl"
    path.write_bytes(pickle.dumps(Touch(canary)))
    for load in (lambda: Program().load(path), lambda: load_state_file(path)):
        with pytest.raises(SerializationError, match=r"state\.pkl.*allow_pickle=True") as info:
            load()
        assert "run code" in str(info.value)
        assert not canary.exists()
    # the payload is real: trusting the file runs it (and the result is not a state)
    with pytest.raises(SerializationError, match="does not hold a saved program state"):
        Program().load(path, allow_pickle=True)
    assert canary.exists()


@pytest.mark.parametrize("name", ["state.PKL", "state.pickle", "state.Pickle"])
def test_every_pickle_suffix_is_refused_whatever_its_case(tmp_path: Path, name: str) -> None:
    canary = tmp_path / "code-ran"
    path = tmp_path / name
    path.write_bytes(pickle.dumps(Touch(canary)))
    with pytest.raises(SerializationError, match="allow_pickle=True"):
        Program().load(path)
    assert not canary.exists()


def test_a_pickle_named_json_is_only_read_as_json(tmp_path: Path) -> None:
    canary = tmp_path / "code-ran"
    path = tmp_path / "state.json"
    path.write_bytes(pickle.dumps(Touch(canary)))
    with pytest.raises(SerializationError, match=r"state\.json: it is not valid JSON"):
        Program().load(path)
    assert not canary.exists()


def test_a_program_directory_is_refused_before_its_pickle_is_read(tmp_path: Path) -> None:
    directory = tmp_path / "whole"
    Program().save(directory, save_program=True)
    canary = tmp_path / "code-ran"
    (directory / "program.pkl").write_bytes(pickle.dumps(Touch(canary)))
    with pytest.raises(SerializationError, match=r"whole.*allow_pickle=True"):
        bon.load(directory)
    with pytest.raises(SerializationError, match="allow_pickle=True"):
        Program().load(directory)  # a directory given to Module.load: pointed to bon.load, not unpickled
    assert not canary.exists()
    bon.load(directory, allow_pickle=True)
    assert canary.exists()


def test_a_program_from_a_newer_format_is_refused_before_unpickling_even_when_trusted(tmp_path: Path) -> None:
    directory = tmp_path / "whole"
    Program().save(directory, save_program=True)
    canary = tmp_path / "code-ran"
    (directory / "program.pkl").write_bytes(pickle.dumps(Touch(canary)))
    edit(directory / "metadata.json", lambda meta: meta.update(format_version=FORMAT_VERSION + 1))
    with pytest.raises(SerializationError, match="newer"):
        bon.load(directory, allow_pickle=True)
    assert not canary.exists()


@pytest.fixture
def pickle_blocked(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """``BESTOFN_BLOCK_PLUGINS=pickle``: the built-in pickle serializer never loads."""
    monkeypatch.setenv("BESTOFN_BLOCK_PLUGINS", "pickle")
    reset_plugins()
    yield
    reset_plugins()


def test_blocking_the_pickle_plugin_turns_every_pickle_off_even_when_trusted(
    tmp_path: Path, pickle_blocked: None
) -> None:
    canary = tmp_path / "code-ran"
    directory = tmp_path / "whole"
    directory.mkdir()
    (directory / "program.pkl").write_bytes(pickle.dumps(Touch(canary)))
    (tmp_path / "state.pkl").write_bytes(pickle.dumps(Touch(canary)))
    attempts: list[Callable[[], Any]] = [
        lambda: bon.load(directory, allow_pickle=True),
        lambda: Program().load(tmp_path / "state.pkl", allow_pickle=True),
        lambda: Program().save(tmp_path / "new.pkl"),
        lambda: Program().save(tmp_path / "new_whole", save_program=True),
    ]
    for attempt in attempts:
        with pytest.raises(
            SerializationError, match=r'No serializer handles "\.pkl".*BESTOFN_BLOCK_PLUGINS: pickle'
        ):
            attempt()
    assert (
        not canary.exists() and not (tmp_path / "new.pkl").exists() and not (tmp_path / "new_whole").exists()
    )
    Program().save(tmp_path / "still.json")  # JSON is unaffected
    Program().load(tmp_path / "still.json")


# ------------------------------------------------------------------------- json never names code


@pytest.fixture
def canary_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An importable module ``bestofn_canary_mod`` whose import creates a file."""
    canary = tmp_path / "imported"
    (tmp_path / "bestofn_canary_mod.py").write_text(
        f"from pathlib import Path\nPath({str(canary)!r}).touch()\ndef x(*a, **k):\n    return 1.0\n",
        encoding="utf-8",
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield canary
    sys.modules.pop("bestofn_canary_mod", None)


@pytest.mark.parametrize(
    ("where", "reference"),
    [
        (("best_of_n", "reward_fn"), "os:system"),
        (("best_of_n", "reward_fn"), "bestofn_canary_mod:x"),
        (("best_of_n", "reward_fn"), "bestofn_canary_mod.x"),
        (("best_of_n", "policy"), "os:system"),
        (("best_of_n", "policy"), "bestofn_canary_mod:x"),
        (("module.predict", "lm", "backend"), "bestofn_canary_mod:x"),
        (("module.predict", "lm", "backend"), "os:system"),
    ],
)
def test_a_json_file_cannot_name_code_to_import_or_call(
    where: tuple[str, ...],
    reference: str,
    tmp_path: Path,
    canary_module: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    called: list[Any] = []
    monkeypatch.setattr(os, "system", lambda *args: called.append(args) or 0)
    best = bon.BestOfN(bon.ChainOfThought("question -> answer"), N=2, reward_fn=bon.reward("text:nonempty"))
    best.set_lm(bon.LM("openai/test-model", api_base="http://127.0.0.1:9/v1"))
    path = tmp_path / "best.json"
    best.save(path)

    def plant(data: dict[str, Any]) -> None:
        target = data
        for key in where[:-1]:
            target = target[key]
        target[where[-1]] = reference

    edit(path, plant)
    fresh = bon.BestOfN(bon.ChainOfThought("question -> answer"), N=1, reward_fn=lambda a, p: 0.0)
    # a backend is part of the LM, which a file chooses only when trusted: looked up only then
    trusted = bon.context(allow_lm_from_file=True) if where[-1] == "backend" else contextlib.nullcontext()
    with trusted, pytest.raises(UnknownNameError, match=r"best\.json") as info:
        fresh.load(path)
    assert f'"{reference}"' in str(info.value) and "Available" in str(info.value)
    assert not called and not canary_module.exists() and "bestofn_canary_mod" not in sys.modules


def test_demos_are_data_whatever_keys_they_hold(tmp_path: Path, canary_module: Path) -> None:
    path = saved_program(tmp_path)
    planted = {"__class__": "bestofn_canary_mod.x", "__reduce__": ["os", "system"], "py/object": "os.system"}
    edit(path, lambda data: data["qa.predict"]["demos"].append(planted))
    program = Program().load(path)
    assert program.qa.predict.demos[-1].toDict() == planted
    assert not canary_module.exists() and "bestofn_canary_mod" not in sys.modules


# ------------------------------------------------------------------------- json never redirects requests


def test_a_planted_api_base_is_ignored_and_requests_reach_the_configured_server(
    server: OpenAICompatServer,
    planted_server: OpenAICompatServer,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    path = saved_program(tmp_path, bon.LM("openai/test-model", api_base=server.url, temperature=0.3))
    planted_key = "sk-planted-by-the-file-0123456789"

    def plant(data: dict[str, Any]) -> None:
        lm_state(data).update(
            api_base=planted_server.url,
            base_url=planted_server.url,
            api_key=planted_key,
            extra_headers={"Authorization": f"Bearer {planted_key}", "X-Planted": "yes"},
            custom_llm_provider="anthropic",
            aws_bedrock_runtime_endpoint=planted_server.url,
            https_proxy=planted_server.url,
            temperature=0.9,
        )

    edit(path, plant)
    program = Program()
    program.set_lm(bon.LM("openai/test-model", api_base=server.url, api_key="sk-mine-0123456789"))
    with caplog.at_level(logging.WARNING):
        program.load(path)
    lm = program.qa.predict.lm
    assert lm.kwargs == {"api_base": server.url, "api_key": "sk-mine-0123456789", "temperature": 0.9}
    assert program(question="Where does this go?").answer
    assert len(server.requests) == 1 and planted_server.requests == []
    headers = server.requests[0].headers
    assert headers["authorization"] == "Bearer sk-mine-0123456789" and "x-planted" not in headers
    # one warning per ignored setting, naming it and the opt-in; the planted key itself is not logged
    for name in (
        "api_base",
        "base_url",
        "custom_llm_provider",
        "aws_bedrock_runtime_endpoint",
        "https_proxy",
    ):
        assert any(
            f"Ignored {name}=" in record.getMessage() and OPT_IN in record.getMessage()
            for record in caplog.records
        ), name
    for name in ("api_key", "extra_headers"):
        assert any(
            f"Ignored '{name}'" in r.getMessage() and "never loaded from a file" in r.getMessage()
            for r in caplog.records
        )
    assert planted_key not in caplog.text


def test_the_opt_in_lets_a_trusted_file_choose_the_host_but_never_the_credentials(
    server: OpenAICompatServer, planted_server: OpenAICompatServer, tmp_path: Path
) -> None:
    path = saved_program(tmp_path, bon.LM("openai/test-model", api_base=server.url))
    edit(
        path, lambda data: lm_state(data).update(api_base=planted_server.url, api_key="sk-from-the-file-0123")
    )
    program = Program()
    program.set_lm(bon.LM("openai/test-model", api_base=server.url, api_key="sk-mine-0123456789"))
    with bon.context(allow_api_base_from_file=True):
        program.load(path)
    assert program(question="trusted").answer
    assert server.requests == [] and len(planted_server.requests) == 1
    assert planted_server.requests[0].headers["authorization"] == "Bearer sk-mine-0123456789"
    # the opt-in is per context: outside it, the same file is ignored again
    program.set_lm(bon.LM("openai/test-model", api_base=server.url, api_key="sk-mine-0123456789"))
    program.load(path)
    assert program.qa.predict.lm.kwargs["api_base"] == server.url


def test_a_program_without_an_lm_of_its_own_keeps_sending_where_the_user_configured(
    server: OpenAICompatServer,
    planted_server: OpenAICompatServer,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The user's own file, saved against their local server. The environment points the provider's
    # default endpoint (and key) elsewhere: the planted server stands in for the public provider.
    path = saved_program(tmp_path, bon.LM("openai/test-model", api_base=server.url, temperature=0.3))
    monkeypatch.setenv("OPENAI_BASE_URL", planted_server.url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env-key-for-the-provider-0123")
    bon.configure(lm=bon.LM("openai/test-model", api_base=server.url, api_key="sk-mine-0123456789"))
    with caplog.at_level(logging.WARNING):
        program = Program().load(path)
    assert program(question="Where does this go?").answer
    assert [len(server.requests), len(planted_server.requests)] == [1, 0]
    assert server.requests[0].headers["authorization"] == "Bearer sk-mine-0123456789"
    assert program.qa.predict.lm is None  # it keeps following the configured LM
    message = caplog.text
    assert "qa.predict" in message and "'openai/test-model'" in message and "temperature=0.3" in message
    assert "settings.lm" in message and OPT_IN in message and "set_lm" in message


def test_a_crafted_file_cannot_pick_another_provider_for_a_program_without_an_lm(
    server: OpenAICompatServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = saved_program(tmp_path, bon.LM("openai/test-model"))
    edit(path, lambda data: lm_state(data).update(model="anthropic/claude-x", backend="openai_http:openai"))
    bon.configure(lm=bon.LM("openai/test-model", api_base=server.url, api_key="sk-mine-0123456789"))
    with caplog.at_level(logging.WARNING):
        program = Program().load(path)
    assert program.qa.predict.lm is None, program.qa.predict.lm
    assert "'anthropic/claude-x'" in caplog.text and OPT_IN in caplog.text
    assert program(question="still mine").answer and len(server.requests) == 1


def test_the_saved_lm_is_restored_for_a_program_without_an_lm_only_with_the_opt_in(
    server: OpenAICompatServer, planted_server: OpenAICompatServer, tmp_path: Path
) -> None:
    path = saved_program(
        tmp_path, bon.LM("openai/test-model", api_base=planted_server.url, temperature=0.3, max_tokens=50)
    )
    bon.configure(lm=bon.LM("openai/test-model", api_base=server.url, api_key="sk-mine-0123456789"))
    with bon.context(allow_lm_from_file=True):
        program = Program().load(path)
    lm = program.qa.predict.lm
    assert (lm.model, lm.kwargs) == (
        "openai/test-model",
        {"api_base": planted_server.url, "temperature": 0.3, "max_tokens": 50},
    )
    # the first name of the opt-in still works
    with bon.context(allow_api_base_from_file=True):
        assert Program().load(path).qa.predict.lm.kwargs["api_base"] == planted_server.url


def test_a_hand_written_lm_entry_with_only_a_model_is_checked_and_applied_with_the_opt_in(
    tmp_path: Path,
) -> None:
    path = saved_program(tmp_path, bon.LM("openai/test-model"))
    edit(path, lambda data: data["qa.predict"].update(lm={"model": "openai/written", "temperature": 0.2}))
    assert Program().load(path).qa.predict.lm is None
    with bon.context(allow_lm_from_file=True):
        lm = Program().load(path).qa.predict.lm
    assert (lm.model, lm.kwargs, lm.cache) == ("openai/written", {"temperature": 0.2}, True)


def test_a_saved_model_that_differs_from_the_lm_is_applied_only_with_the_opt_in(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = saved_program(tmp_path, bon.LM("openai/other-model", temperature=0.7))
    mine = bon.LM("openai/test-model", api_key="sk-for-openai-only-0123")
    program = Program()
    program.set_lm(mine)
    with caplog.at_level(logging.WARNING):
        program.load(path)
    lm = program.qa.predict.lm
    # the model is not applied (named in a warning); sampling settings are
    assert (lm.model, lm.kwargs) == (
        "openai/test-model",
        {"api_key": mine.kwargs["api_key"], "temperature": 0.7},
    )
    assert "Ignored model='openai/other-model'" in caplog.text and OPT_IN in caplog.text
    program.set_lm(mine)
    with bon.context(allow_lm_from_file=True):
        program.load(path)
    assert program.qa.predict.lm.model == "openai/other-model"
    assert program.qa.predict.lm.kwargs["api_key"] == mine.kwargs["api_key"]


def test_a_model_list_in_a_loaded_file_does_not_redirect_requests(
    server: OpenAICompatServer,
    planted_server: OpenAICompatServer,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # litellm routing: a model_list entry for the model sends the request (and the key) to its api_base
    monkeypatch.setenv("OPENAI_BASE_URL", server.url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env-key-0123456789")
    path = saved_program(tmp_path, bon.LM("openai/test-model"))
    planted = [
        {
            "model_name": "openai/test-model",
            "litellm_params": {"model": "openai/test-model", "api_base": planted_server.url},
        }
    ]
    edit(path, lambda data: lm_state(data).update(model_list=planted))
    program = Program()
    program.set_lm(bon.LM("openai/test-model", backend="litellm:litellm", cache=False))
    with caplog.at_level(logging.WARNING):
        program.load(path)
    assert program(question="Where does this go?").answer
    assert [len(server.requests), len(planted_server.requests)] == [1, 0]
    assert "model_list" not in program.qa.predict.lm.kwargs
    assert "Ignored model_list=" in caplog.text and OPT_IN in caplog.text


def test_a_file_cannot_switch_an_lm_with_credentials_to_another_provider_or_backend(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = saved_program(tmp_path, bon.LM("openai/test-model"))
    mine = bon.LM("openai/test-model", api_key="sk-for-openai-only-0123")
    for planted, named in [
        ({"model": "anthropic/claude-x"}, "model='anthropic/claude-x'"),
        ({"model": "claude-x"}, "model='claude-x'"),
        ({"backend": "openai_http:openai_http"}, "backend='openai_http:openai_http'"),
    ]:
        edit(path, lambda data, planted=planted: lm_state(data).update(planted))
        program = Program()
        program.set_lm(mine)
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            program.load(path)
        lm = program.qa.predict.lm
        assert (lm.model, lm.backend_ref, lm.kwargs["api_key"]) == (
            "openai/test-model",
            None,
            mine.kwargs["api_key"],
        )
        assert f"Ignored {named}" in caplog.text and OPT_IN in caplog.text
        edit(path, lambda data: lm_state(data).update(model="openai/test-model", backend=None))


@pytest.mark.parametrize("name", sorted(ROUTING_SETTINGS))
def test_every_routing_setting_in_a_loaded_file_is_ignored_without_the_opt_in(
    name: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = saved_program(tmp_path, bon.LM("openai/test-model"))
    edit(path, lambda data: lm_state(data).update({name: "planted-value"}))
    program = Program()
    program.set_lm(bon.LM("openai/test-model"))
    with caplog.at_level(logging.WARNING):
        program.load(path)
    assert name not in program.qa.predict.lm.kwargs
    assert f"Ignored {name}=" in caplog.text or f"Ignored {name!r}" in caplog.text


# ------------------------------------------------------------------------- plugins that are not there


@pytest.mark.parametrize(
    ("where", "kind"),
    [
        (("best_of_n", "reward_fn"), "reward"),
        (("best_of_n", "policy"), "selection policy"),
        (("module.predict", "lm", "backend"), "LM backend"),
    ],
)
def test_a_reference_to_a_plugin_that_is_not_installed_names_it_and_the_fix(
    where: tuple[str, ...], kind: str, tmp_path: Path
) -> None:
    best = bon.BestOfN(bon.ChainOfThought("question -> answer"), N=2, reward_fn=bon.reward("text:nonempty"))
    best.set_lm(bon.LM("openai/test-model"))
    path = tmp_path / "best.json"
    best.save(path)

    def plant(data: dict[str, Any]) -> None:
        target = data
        for key in where[:-1]:
            target = target[key]
        target[where[-1]] = "missing_plugin:thing"

    edit(path, plant)
    fresh = bon.BestOfN(bon.ChainOfThought("question -> answer"), N=1, reward_fn=lambda a, p: 0.0)
    trusted = bon.context(allow_lm_from_file=True) if kind == "LM backend" else contextlib.nullcontext()
    with trusted, pytest.raises(UnknownNameError) as info:
        fresh.load(path)
    message = str(info.value)
    assert str(path) in message and f'Unknown {kind} "missing_plugin:thing"' in message
    assert 'No plugin named "missing_plugin" is installed' in message
    assert "pip install bestofn-missing-plugin" in message and "bestofn plugins" in message


def test_a_file_of_a_format_no_installed_plugin_reads_names_the_supported_ones(tmp_path: Path) -> None:
    path = tmp_path / "p.testfmt"
    path.write_text("{}", encoding="utf-8")
    with pytest.raises(
        SerializationError, match=r'No serializer handles "\.testfmt" files.*p\.testfmt.*\.json'
    ):
        Program().load(path)


def test_references_to_real_entry_point_plugins_blocked_or_not_loaded(
    entry_point_plugins: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    best = bon.BestOfN(
        bon.Predict("question -> answer"),
        N=2,
        reward_fn=bon.reward("testplug:tp_max_words", n=3),
        policy="testplug:tp_first",
    )
    path = tmp_path / "best.json"
    best.save(path)

    def fresh() -> bon.BestOfN:
        return bon.BestOfN(bon.Predict("question -> answer"), N=1, reward_fn=lambda a, p: 0.0)

    loaded = fresh().load(path)  # installed and loaded: the references resolve
    assert loaded.reward_fn.ref == "testplug:tp_max_words" and loaded.reward_fn.params == {"n": 3}
    assert type(loaded.policy).__name__ == "FirstPolicy"

    monkeypatch.setenv("BESTOFN_BLOCK_PLUGINS", "testplug")
    reset_plugins()
    with pytest.raises(UnknownNameError, match=r'best\.json.*"testplug" is blocked by BESTOFN_BLOCK_PLUGINS'):
        fresh().load(path)

    monkeypatch.delenv("BESTOFN_BLOCK_PLUGINS")
    monkeypatch.setenv("BESTOFN_LOAD_PLUGINS", "brokenplug")
    reset_plugins()
    with pytest.raises(
        UnknownNameError, match=r'"testplug" is installed but not loaded.*BESTOFN_LOAD_PLUGINS'
    ):
        fresh().load(path)


# ------------------------------------------------------------------------- bad files: one clear error


def test_a_file_truncated_anywhere_is_one_clear_error(tmp_path: Path) -> None:
    path = saved_program(tmp_path, bon.LM("openai/test-model", temperature=0.2))
    whole = path.read_bytes().rstrip()
    offsets = sorted({0, 1, 2, len(whole) // 4, len(whole) // 2, 3 * len(whole) // 4, len(whole) - 1})
    for offset in offsets:
        path.write_bytes(whole[:offset])
        with pytest.raises(SerializationError, match=r"p\.json: it is not valid JSON.*truncated or corrupt"):
            Program().load(path)


def test_a_truncated_trusted_pickle_is_one_clear_error(tmp_path: Path) -> None:
    path = saved_program(tmp_path, name="p.pkl")
    whole = path.read_bytes()
    for offset in (0, 1, len(whole) // 2, len(whole) - 1):
        path.write_bytes(whole[:offset])
        with pytest.raises(SerializationError, match=r"p\.pkl with pickle.*truncated or corrupt"):
            Program().load(path, allow_pickle=True)


@pytest.mark.parametrize("content", [b"\xff\xfe\x00garbage", b"[1, 2, 3]", b'"a string"', b"null"])
def test_a_file_that_is_not_a_saved_state_is_one_clear_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "p.json"
    path.write_bytes(content)
    with pytest.raises(SerializationError, match=r"p\.json"):
        Program().load(path)


@pytest.mark.parametrize(
    ("where", "value", "named"),
    [
        (("qa.predict",), 5, "qa.predict must be a mapping"),
        (("qa.predict", "demos"), 5, "qa.predict.demos must be a list"),
        (("qa.predict", "demos"), {"a": 1}, "qa.predict.demos must be a list"),
        (("qa.predict", "signature"), "question -> answer", "qa.predict.signature must be a mapping"),
        (("qa.predict", "lm"), "openai/test-model", "('lm') must be a mapping"),
        (("qa.predict", "signature", "instructions"), 5, "'instructions' (str)"),
        (("qa.predict", "lm", "num_retries"), "many", "num_retries: Input should be a valid integer"),
        (("qa.predict", "lm", "temperature"), "hot", "temperature: Input should be a valid number"),
        (("qa.predict", "lm", "cache"), "yes", "cache: Input should be a valid boolean"),
        (("qa.predict", "lm", "timeout"), -1, "timeout: Input should be greater than 0"),
        (("qa.predict", "lm", "model"), 5, "model"),
        (("metadata",), [1], "invalid metadata entry (expected a mapping, got list)"),
        (("metadata", "format_version"), "1", "invalid format_version '1'"),
        (("metadata", "dependency_versions"), "x", "dependency_versions must be a mapping"),
    ],
)
def test_a_field_of_the_wrong_type_is_named_with_the_file(
    where: tuple[str, ...], value: Any, named: str, tmp_path: Path
) -> None:
    path = saved_program(tmp_path, bon.LM("openai/test-model", temperature=0.2))

    def plant(data: dict[str, Any]) -> None:
        target = data
        for key in where[:-1]:
            target = target[key]
        target[where[-1]] = value

    edit(path, plant)
    with pytest.raises(BestOfNCoreError) as info:
        Program().load(path)
    assert isinstance(info.value, ValueError)  # SerializationError, ConfigurationError, SignatureError
    assert str(path) in str(info.value) and named in str(info.value)


@pytest.mark.parametrize(
    ("field", "value", "named"),
    [("N", "three", "N: Input should be a valid integer"), ("threshold", "high", "threshold"), ("N", 0, "N")],
)
def test_a_bad_bestofn_setting_is_named_with_the_file(
    field: str, value: Any, named: str, tmp_path: Path
) -> None:
    best = bon.BestOfN(bon.Predict("question -> answer"), N=3, reward_fn=lambda a, p: 0.0)
    path = tmp_path / "best.json"
    best.save(path)
    edit(path, lambda data: data["best_of_n"].update({field: value}))
    with pytest.raises(ConfigurationError) as info:
        bon.BestOfN(bon.Predict("question -> answer"), N=1, reward_fn=lambda a, p: 0.0).load(path)
    assert str(path) in str(info.value) and named in str(info.value)


def test_state_for_parameters_the_program_does_not_have_is_refused(tmp_path: Path) -> None:
    path = saved_program(tmp_path)
    edit(path, lambda data: data.update({"judge.predict": data["qa.predict"]}))
    with pytest.raises(SerializationError) as info:
        Program().load(path)
    message = str(info.value)
    assert str(path) in message and "'judge.predict'" in message and "'qa.predict'" in message
    assert "saved from another program" in message


def test_a_file_from_a_newer_version_names_both_versions_and_the_upgrade(tmp_path: Path) -> None:
    path = saved_program(tmp_path)

    def newer(data: dict[str, Any]) -> None:
        data["metadata"]["format_version"] = FORMAT_VERSION + 1
        data["metadata"]["dependency_versions"]["bestofn-core"] = "99.0.0"

    edit(path, newer)
    with pytest.raises(SerializationError) as info:
        Program().load(path)
    message = str(info.value)
    assert str(path) in message
    assert f"format version {FORMAT_VERSION + 1} by bestofn-core 99.0.0" in message
    assert f"this bestofn-core ({bon.__version__}) supports (format version {FORMAT_VERSION})" in message
    assert "pip install --upgrade bestofn-core" in message


def nested(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = [value]
    return value


def test_a_demo_nested_beyond_the_depth_limit_is_refused_at_load(tmp_path: Path) -> None:
    path = saved_program(tmp_path)
    data = orjson.loads(path.read_bytes())
    data["qa.predict"]["demos"].append({"question": "q", "answer": nested(500)})
    path.write_text(json.dumps(data), encoding="utf-8")  # orjson writes at most 255 levels; json more
    with pytest.raises(SerializationError) as info:
        Program().load(path)
    message = str(info.value)
    assert str(path) in message and f"{MAX_DEPTH} levels" in message and "qa.predict" in message


def test_a_demo_nested_within_the_limit_loads_and_saves_again(tmp_path: Path) -> None:
    path = saved_program(tmp_path)
    deep = nested(MAX_DEPTH - 10)
    edit(path, lambda data: data["qa.predict"]["demos"].append({"question": "q", "answer": deep}))
    program = Program().load(path)
    program.save(tmp_path / "again.json")
    assert Program().load(tmp_path / "again.json").qa.predict.demos[-1].answer == deep


@pytest.mark.parametrize("suffix", [".json", ".pkl"])
def test_saving_a_demo_nested_beyond_the_limit_is_one_clear_error(tmp_path: Path, suffix: str) -> None:
    program = Program()
    program.qa.predict.demos = [bon.Example(question="q", answer=nested(500))]
    with pytest.raises(SerializationError) as info:
        program.save(tmp_path / f"p{suffix}")
    assert f"{MAX_DEPTH} levels" in str(info.value) and "qa.predict" in str(info.value)
    assert not (tmp_path / f"p{suffix}").exists()


def test_a_failed_load_of_a_bad_file_can_be_retried_with_a_good_one(tmp_path: Path) -> None:
    good = saved_program(tmp_path, name="good.json")
    bad = tmp_path / "bad.json"
    bad.write_bytes(good.read_bytes())
    edit(bad, lambda data: data["qa.predict"].update(demos=5))
    program = Program()
    with pytest.raises(SerializationError):
        program.load(bad)
    assert program.load(good).qa.predict.demos[0].answer == "2"
