"""Secrets never leak: a planted marker key is searched for in everything the library shows or writes.

Every test plants unique marker values as credentials (``api_key``, an ``Authorization`` header and other
headers, other secret-looking LM settings, ``OPENAI_API_KEY`` in the environment), drives real calls
through litellm to the local OpenAI-compatible server (successes, retried 500s, 401s whose error body
echoes the key back, as some proxies do), and then searches every place a user or a log collector can
see: saved files in every format, ``dump_state``, pickles, history and ``inspect_history``, all logging
at DEBUG (litellm's own loggers and its ``set_verbose`` prints included), callback payloads, reprs,
exception messages and tracebacks, ``BestOfNError`` attempts, the response cache on disk, and the
``bestofn plugins`` / ``bestofn run --json`` output of real subprocesses.
"""

from __future__ import annotations

import copy
import gc
import logging
import os
import pickle
import subprocess
import sys
import traceback
import types
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cloudpickle
import orjson
import pytest

import bestofn_core as bon
from bestofn_core.errors import BestOfNError, LMAuthenticationError, LMServerError
from bestofn_core.lm.credentials import (
    REDACTED,
    ROUTING_NAME_ENDINGS,
    ROUTING_SETTINGS,
    is_connection_setting,
    is_secret,
    redact,
    scrub_exception,
    secret_values,
    split_kwargs,
)
from bestofn_core.lm.history import GLOBAL_HISTORY
from bestofn_core.plugins import get_registry
from bestofn_core.testing.openai_server import OpenAICompatServer

#: Shared by every planted value, so one search finds any of them (unique per run: no false positives).
MARKER = f"planted-{uuid.uuid4().hex[:12]}"
API_KEY = f"sk-{MARKER}-apikey"
BEARER = f"{MARKER}-bearer"
HEADER = f"{MARKER}-header"
AWS_SECRET = f"{MARKER}-aws-secret"
SESSION_TOKEN = f"{MARKER}-session-token"
ENV_KEY = f"sk-{MARKER}-env"
LITELLM_LOGGERS = ("LiteLLM", "LiteLLM Router", "LiteLLM Proxy", "litellm")


def echo_body(*secrets: str) -> str:
    """An OpenAI-style error body that echoes the request's credentials back, as some proxies do."""
    return orjson.dumps(
        {"error": {"message": f"Incorrect API key provided: {' '.join(secrets)}", "type": "invalid"}}
    ).decode()


class Seen:
    """Everything collected for the search: name -> text."""

    def __init__(self) -> None:
        self.texts: dict[str, str] = {}

    def add(self, name: str, value: Any) -> None:
        if isinstance(value, bytes):
            text = value.decode("utf-8", "backslashreplace")
        elif isinstance(value, str):
            text = value
        else:
            text = orjson.dumps(value, default=repr, option=orjson.OPT_NON_STR_KEYS).decode()
        self.texts[name] = self.texts.get(name, "") + text

    def add_exception(self, name: str, exc: BaseException) -> None:
        self.add(f"{name}: str", str(exc))
        self.add(f"{name}: repr", repr(exc))
        self.add(f"{name}: args", repr(exc.args))
        self.add(f"{name}: traceback", "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))

    def add_tree(self, name: str, root: Path) -> None:
        for path in sorted(root.rglob("*")):
            if path.is_file():
                self.add(f"{name}: {path.relative_to(root)}", path.read_bytes())

    def assert_clean(self) -> None:
        leaks = [name for name, text in self.texts.items() if MARKER in text]
        assert not leaks, f"the planted secret appears in: {leaks}"
        assert self.texts  # the search looked at something


class Recorder(bon.BaseCallback):
    """Records every callback payload as text (the LM ``instance`` by repr: it holds keys by design)."""

    def __init__(self) -> None:
        self.events: list[str] = []


def _recording(handler: str) -> Any:
    def record(self: Recorder, *args: Any) -> None:
        self.events.append(f"{handler}{args!r}")

    return record


for _handler in [name for name in dir(bon.BaseCallback) if name.startswith("on_")]:
    setattr(Recorder, _handler, _recording(_handler))


class Program(bon.Module):
    def __init__(self) -> None:
        super().__init__()
        self.qa = bon.ChainOfThought("question -> answer")
        # DSPy-style predictor config; a key passed this way is a credential too
        self.check = bon.Predict("answer -> verdict", api_key=API_KEY)

    def forward(self, question: str) -> bon.Prediction:
        return self.qa(question=question)


@pytest.fixture
def everything_logged(caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every logger at DEBUG, litellm's included, and litellm's verbose prints on (captured by capfd)."""
    import litellm

    caplog.set_level(logging.DEBUG)
    for name in LITELLM_LOGGERS:
        caplog.set_level(logging.DEBUG, logger=name)
    monkeypatch.setattr(litellm, "set_verbose", True)
    monkeypatch.setattr(litellm, "suppress_debug_info", False)
    yield


def planted_lm(server: OpenAICompatServer, **kwargs: Any) -> bon.LM:
    """An LM carrying every kind of planted credential (with its cache off: each call reaches the server)."""
    return bon.LM(
        "openai/test-model",
        api_base=server.url,
        api_key=API_KEY,
        extra_headers={"Authorization": f"Bearer {BEARER}", "X-Api-Key": HEADER},
        aws_secret_access_key=AWS_SECRET,
        aws_session_token=SESSION_TOKEN,
        temperature=0.5,
        retry_base_delay=0.01,
        **kwargs,
    )


def received_text(server: OpenAICompatServer) -> str:
    return repr([(request.headers, request.body) for request in server.requests])


# ------------------------------------------------------------------------------------- the whole tour


def test_no_planted_secret_reaches_files_history_logs_callbacks_or_errors(
    server: OpenAICompatServer,
    tmp_path: Path,
    everything_logged: None,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    seen = Seen()
    recorder = Recorder()
    bon.configure(callbacks=[recorder])
    lm = planted_lm(server)
    program = Program()
    program.set_lm(lm)

    # successes: a module call, a direct call, a per-call key
    assert program(question="What is 2+2?").answer
    assert lm(prompt="hello", cache=False)
    assert lm(prompt="per call", api_key=API_KEY, cache=False)
    assert program.check(answer="4").verdict
    # the credentials really went out: the search below is meaningful
    assert BEARER in received_text(server) and HEADER in received_text(server)

    # a retried server error (the retry is logged) whose body echoes the key, then success
    server.fail_next(500, times=2, body=echo_body(API_KEY, BEARER))
    assert lm(prompt="retried", cache=False)
    # a server error that exhausts the retries
    server.fail_next(500, times=2, body=echo_body(API_KEY, HEADER, AWS_SECRET))
    with pytest.raises(LMServerError) as server_error:
        lm.copy(num_retries=1)(prompt="exhausted", cache=False)
    seen.add_exception("500 error", server_error.value)
    # a 401 echoing every credential, through a module call
    server.fail_next(401, body=echo_body(API_KEY, f"Bearer {BEARER}", HEADER, SESSION_TOKEN))
    with pytest.raises(LMAuthenticationError) as auth_error:
        program(question="unauthorized")
    assert "Incorrect API key provided" in str(auth_error.value)  # the message kept, the key removed
    assert REDACTED in str(auth_error.value)
    seen.add_exception("401 error", auth_error.value)

    # BestOfN whose attempts fail with the echoing error: the group, each error, the attempts
    server.fail_next(401, times=3, body=echo_body(API_KEY, BEARER))
    best = bon.BestOfN(program, N=3, reward_fn=lambda inputs, pred: 1.0, threshold=1.0)
    with pytest.raises(BestOfNError) as group:
        best(question="best of three")
    seen.add_exception("BestOfNError", group.value)
    for index, error in enumerate(group.value.exceptions):
        seen.add_exception(f"BestOfNError.exceptions[{index}]", error)
    seen.add("BestOfNError.attempts", [repr(c) for c in group.value.attempts])
    seen.add("BestOfNError.attempts to_dict", [c.to_dict() for c in group.value.attempts])

    # everything saved: state files in every installed format, a whole program, dump_state, pickles
    suffixes = [".json", ".pkl"]
    if ".msgpack" in {s for r in get_registry().registrations("serializer") for s in r.options["suffixes"]}:
        suffixes.append(".msgpack")
    for suffix in suffixes:
        program.save(tmp_path / f"state{suffix}")
        seen.add(f"saved {suffix}", (tmp_path / f"state{suffix}").read_bytes())
    program.save(tmp_path / "whole", save_program=True)
    seen.add_tree("save_program", tmp_path / "whole")
    seen.add("dump_state", program.dump_state())
    seen.add("dump_state(json_mode=False)", repr(program.dump_state(json_mode=False)))
    seen.add("LM.dump_state", lm.dump_state())
    seen.add("pickle.dumps(lm)", pickle.dumps(lm))
    seen.add("cloudpickle.dumps(program)", cloudpickle.dumps(program))
    seen.add("pickle of a deepcopy", cloudpickle.dumps(copy.deepcopy(program)))

    # history, inspect_history, reprs, settings
    seen.add("lm.history", lm.history)
    seen.add("program.history", program.history)
    seen.add("GLOBAL_HISTORY", GLOBAL_HISTORY)
    seen.add("lm.inspect_history", lm.inspect_history(n=20))
    seen.add("program.inspect_history", program.inspect_history(n=20))
    seen.add("bon.inspect_history", bon.inspect_history(n=50))
    seen.add("reprs", [repr(lm), str(lm), repr(program), repr(bon.settings), repr(best)])
    seen.add("callbacks", recorder.events)
    assert any(event.startswith("on_lm_start") for event in recorder.events)

    # every log record (formatted, with tracebacks) and everything printed
    handler = logging.StreamHandler()
    seen.add("log records", "\n".join(handler.format(record) for record in caplog.records))
    assert any(record.name.startswith("LiteLLM") for record in caplog.records)  # litellm logged at DEBUG
    assert any("retry" in record.getMessage() for record in caplog.records)  # our retry log ran
    out, err = capfd.readouterr()
    seen.add("stdout", out)
    seen.add("stderr", err)

    # the response cache on disk (conftest points it at tmp_path/cache)
    seen.add_tree("disk cache", tmp_path / "cache")
    seen.assert_clean()


def test_a_key_from_the_environment_never_leaks_either(
    server: OpenAICompatServer,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    everything_logged: None,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", ENV_KEY)
    seen = Seen()
    lm = bon.LM("openai/test-model", api_base=server.url, retry_base_delay=0.01, num_retries=1)
    assert lm(prompt="hi", cache=False)
    assert server.requests[-1].headers["authorization"] == f"Bearer {ENV_KEY}"  # litellm used the env key
    server.fail_next(500, times=2, body=echo_body(ENV_KEY))
    with pytest.raises(LMServerError) as server_error:
        lm(prompt="retried twice", cache=False)
    seen.add_exception("500 error", server_error.value)
    server.fail_next(401, body=echo_body(f"Bearer {ENV_KEY}"))
    with pytest.raises(LMAuthenticationError) as auth_error:
        lm(prompt="unauthorized", cache=False)
    seen.add_exception("401 error", auth_error.value)
    predict = bon.Predict("question -> answer")
    predict.lm = lm
    predict.save(tmp_path / "p.json")
    seen.add("saved", (tmp_path / "p.json").read_bytes())
    seen.add("pickle", pickle.dumps(lm))
    seen.add("history", lm.history)
    seen.add("log records", "\n".join(logging.StreamHandler().format(r) for r in caplog.records))
    out, err = capfd.readouterr()
    seen.add("stdout+stderr", out + err)
    seen.assert_clean()


def test_secrets_are_dropped_from_pickles_but_kept_on_the_live_lm(server: OpenAICompatServer) -> None:
    lm = planted_lm(server)
    restored = pickle.loads(pickle.dumps(lm))
    assert not any(is_secret(name) for name in restored.kwargs)
    assert restored.kwargs["api_base"] == server.url and restored.kwargs["temperature"] == 0.5
    # deepcopy and copy() keep the keys: they stay in this process
    assert copy.deepcopy(lm).kwargs["api_key"] == API_KEY
    assert lm.copy(temperature=0.1).kwargs["api_key"] == API_KEY


# ------------------------------------------------------------------------------------- classification


@pytest.mark.parametrize(
    "name",
    [
        "api_key",
        "extra_headers",
        "headers",
        "default_headers",
        "aws_secret_access_key",
        "aws_session_token",
        "azure_ad_token",
        "vertex_credentials",
        "password",
        "client_secret",
        "Authorization",
    ],
)
def test_secret_names(name: str) -> None:
    assert is_secret(name)
    params, credentials = split_kwargs({name: "x", "temperature": 0.1})
    assert name in credentials and params == {"temperature": 0.1}


@pytest.mark.parametrize(
    "name", ["max_tokens", "max_completion_tokens", "max_output_tokens", "budget_tokens", "temperature", "n"]
)
def test_token_counts_and_sampling_parameters_are_not_secrets(name: str) -> None:
    # a count of tokens is a request parameter: it must key the cache and be saved, unlike a token
    assert not is_secret(name)
    params, credentials = split_kwargs({name: 1})
    assert params == {name: 1} and credentials == {}


@pytest.mark.parametrize(
    "name",
    [
        "api_base",
        "base_url",
        "api_version",
        "custom_llm_provider",
        "aws_bedrock_runtime_endpoint",
        "aws_region_name",
        "vertex_location",
        "vertex_project",
        "https_proxy",
    ],
)
def test_connection_setting_names(name: str) -> None:
    assert is_connection_setting(name)


#: Settings of litellm's connection, dispatch, routing and deployment options that do not choose where a
#: request goes (timeouts, retries, rate limits, costs, tags): a loaded file may set them.
LITELLM_NOT_ROUTING = {
    "request_timeout", "force_timeout", "stream_timeout", "timeout_by_service_tier",
    "stream_timeout_by_service_tier", "max_retries", "num_retries", "retry_policy", "retry_strategy",
    "cooldown_time", "fireworks_forward_user_id", "bedrock_tags", "anthropic_issuer_ttl_seconds",
    "anthropic_disable_workload_identity_federation", "use_chat_completions_api", "allowed_openai_params",
    "search_tool_name", "auto_router_max_input_chars", "auto_router_routing_compression",
    "auto_router_model_compression", "model_info", "rpm", "tpm", "itpm", "otpm", "rpd", "tpd",
    "daily_reset_time", "kubernetes_pod_discovery", "max_parallel_requests", "weight", "order", "tag_regex",
    "max_file_size_mb",
}  # fmt: skip


def litellm_request_settings() -> list[str]:
    """The request settings litellm declares in its connection, dispatch, routing and deployment options."""
    import dataclasses
    import inspect

    import litellm
    from litellm.types import litellm_params

    classes = [field.type for field in dataclasses.fields(litellm_params.ConnectionSettings)]
    classes += [litellm_params.DispatchOptions, litellm_params.RoutingOptions, litellm_params.MockOptions]
    classes += [litellm_params.SpecializedRouterOptions, litellm_params.DeploymentOptions]
    classes = [cls if isinstance(cls, type) else getattr(litellm_params, cls) for cls in classes]
    names = [field.name for cls in classes for field in dataclasses.fields(cls)]
    signature = inspect.signature(litellm.completion).parameters
    return [
        *names,
        *(name for name in ("base_url", "api_version", "model_list", "deployment_id") if name in signature),
    ]


def test_every_setting_litellm_routes_requests_with_is_a_routing_setting_or_a_secret() -> None:
    # litellm's own declaration of its request settings: an upgrade that adds one fails here, to be
    # classified (ROUTING_SETTINGS / ROUTING_NAME_ENDINGS, or LITELLM_NOT_ROUTING above)
    names = litellm_request_settings()
    assert {"api_base", "model_list", "custom_llm_provider", "fallbacks", "client", "ssl_verify"} <= set(
        names
    )
    unclassified = [
        name
        for name in names
        if not is_secret(name) and not is_connection_setting(name) and name not in LITELLM_NOT_ROUTING
    ]
    assert unclassified == []
    assert not [name for name in LITELLM_NOT_ROUTING if is_connection_setting(name)]


def test_routing_settings_are_kept_out_of_the_request_parameters() -> None:
    params, credentials = split_kwargs(dict.fromkeys(sorted(ROUTING_SETTINGS), "x") | {"temperature": 0.1})
    assert params == {"temperature": 0.1} and set(credentials) == set(ROUTING_SETTINGS)
    for ending in ROUTING_NAME_ENDINGS:
        assert is_connection_setting(f"someprovider_{ending}") and is_connection_setting(ending)


@pytest.mark.parametrize("name", ["retry_base_delay", "temperature", "top_p", "timeout", "user", "seed"])
def test_ordinary_settings_are_not_connection_settings(name: str) -> None:
    assert not is_connection_setting(name)


def test_secret_values_cover_header_words_and_secret_environment_variables() -> None:
    found = secret_values(
        {"api_key": API_KEY, "extra_headers": {"Authorization": f"Bearer {BEARER}"}, "api_base": "http://h"},
        environ={"OPENAI_API_KEY": ENV_KEY, "HOME": "/home/someone", "GITHUB_TOKEN": "short"},
    )
    assert {API_KEY, f"Bearer {BEARER}", BEARER, ENV_KEY} <= found
    assert "http://h" not in found and "/home/someone" not in found
    assert "short" not in found and "Bearer" not in found  # too short to redact safely
    assert redact(f"key {API_KEY} and Bearer {BEARER}", found) == f"key {REDACTED} and {REDACTED}"


def test_scrub_exception_cuts_a_cause_that_mentions_the_secret() -> None:
    try:
        try:
            raise RuntimeError(f"client error: {API_KEY}")
        except RuntimeError as inner:
            raise ValueError(f"wrapped: {API_KEY}") from inner
    except ValueError as exc:
        assert scrub_exception(exc, {API_KEY}) is exc  # nothing but its message held the secret
        text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    assert MARKER not in text and f"wrapped: {REDACTED}" in text
    untouched = ValueError("nothing secret")
    assert scrub_exception(untouched, {API_KEY}) is untouched and str(untouched) == "nothing secret"


# ------------------------------------------------------------------------------------- nested settings


def model_list(url: str, **litellm_params: Any) -> list[dict[str, Any]]:
    """A litellm ``model_list`` routing ``openai/test-model`` to ``url``."""
    params = {"model": "openai/test-model", "api_base": url, **litellm_params}
    return [{"model_name": "openai/test-model", "litellm_params": params}]


def test_a_key_nested_in_a_setting_never_reaches_saved_state_history_or_repr(
    server: OpenAICompatServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # litellm writes the request's api_key into the model_list entry it routes through, in place; a
    # user can also put one there, or in extra_body
    routes = model_list(server.url)
    lm = bon.LM(
        "openai/test-model",
        api_key=API_KEY,
        model_list=routes,
        extra_body={"api_key": HEADER, "note": "kept"},
        backend="litellm:litellm",
        cache=False,
    )
    users_own = bon.LM(
        "openai/test-model", model_list=model_list(server.url, api_key=BEARER), backend="litellm:litellm"
    )
    program = Program()
    program.set_lm(lm)
    assert lm(prompt="routed through model_list")
    assert server.requests[-1].headers["authorization"] == f"Bearer {API_KEY}"  # the key was used
    # the LM's own settings are unchanged: the backend got a copy
    assert lm.kwargs["model_list"] == model_list(server.url)
    seen = Seen()
    for which, model in (("lm", lm), ("user's model_list", users_own)):
        seen.add(f"{which}: dump_state", model.dump_state())
        seen.add(f"{which}: repr", repr(model))
        seen.add(f"{which}: pickle", pickle.dumps(model))
    seen.add("history", lm.history)
    seen.add("inspect_history", lm.inspect_history(n=5))
    program.save(tmp_path / "p.json")
    seen.add("saved", (tmp_path / "p.json").read_bytes())
    seen.add("program dump_state", program.dump_state())
    seen.add("log records", caplog.text)
    seen.assert_clean()
    assert lm.dump_state()["extra_body"] == {"note": "kept"}
    assert lm.dump_state()["model_list"] == model_list(server.url)


# ------------------------------------------------------------------------------------- keys inside URLs


def test_a_key_inside_api_base_is_masked_in_files_repr_history_logs_and_errors(
    server: OpenAICompatServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    password, query_key = f"{MARKER}-urlpassword", f"{MARKER}-querykey"
    with_password = server.url.replace("http://", f"http://user:{password}@")
    with_query = f"{server.url}?api-key={query_key}"
    seen = Seen()
    for url in (with_password, with_query):
        lm = bon.LM("openai/test-model", api_base=url, num_retries=0, cache=False, backend="litellm:litellm")
        program = Program()
        program.set_lm(lm)
        program.save(tmp_path / "p.json")
        seen.add(f"{url}: saved", (tmp_path / "p.json").read_bytes())
        seen.add(f"{url}: dump_state", lm.dump_state())
        seen.add(f"{url}: repr", repr(lm))
        seen.add(f"{url}: pickle", pickle.dumps(lm))
        # a server that echoes the URL it was called with, as some proxies' error pages do
        server.fail_next(404, body=echo_body(url))
        with pytest.raises(bon.errors.LMError) as error:
            lm(prompt="hi")
        seen.add_exception(f"{url}: error", error.value)
        assert secrets_reachable_from(error.value) == []  # the client's request object holds the URL
        seen.add(f"{url}: history", lm.history)
    assert "user:[REDACTED]@127.0.0.1" in repr(bon.LM("openai/test-model", api_base=with_password))
    assert "api-key=[REDACTED]" in repr(bon.LM("openai/test-model", api_base=with_query))
    seen.add("log records", "\n".join(logging.StreamHandler().format(r) for r in caplog.records))
    seen.assert_clean()


def test_a_key_inside_api_base_is_masked_in_the_http_clients_log_records(server: OpenAICompatServer) -> None:
    # httpx logs every request's URL at INFO. A fresh process with logging on, as an application has it,
    # through the openai_http backend: litellm (which filters httpx's records itself) is never imported.
    password = f"{MARKER}-urlpassword"
    url = server.url.replace("http://", f"http://user:{password}@")
    script = (
        "import logging, sys\n"
        "logging.basicConfig(level=logging.DEBUG, format='%(name)s %(message)s')\n"
        "import bestofn_core as bon\n"
        f"lm = bon.LM('openai/test-model', api_base={url!r}, cache=False, backend='openai_http:openai')\n"
        "print(lm(prompt='hi'))\n"
        "assert 'litellm' not in sys.modules\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env=_cli_env(),
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert server.requests[-1].headers["authorization"].startswith("Basic ")  # the URL's key was used
    assert "httpx HTTP Request: POST http://user:[REDACTED]@127.0.0.1" in result.stderr
    assert MARKER not in result.stdout + result.stderr


# ------------------------------------------------------------------------------------- errors


def secrets_reachable_from(root: object) -> list[str]:
    """Every path from ``root`` to a string or bytes holding the marker, through whatever the garbage
    collector sees an object refer to: attributes, ``__dict__``, ``args``, ``__cause__``, ``__context__``,
    container items, a provider's request object and its headers.

    Code, classes, modules and tracebacks' frames are not data; the user's own LM and program objects
    (a candidate's trace names the predictors that ran) hold the keys the user gave them, by design.
    """
    skipped = (
        type,
        types.ModuleType,
        types.FunctionType,
        types.CodeType,
        types.FrameType,
        types.TracebackType,
    )
    parents: dict[int, tuple[int, str]] = {id(root): (0, type(root).__name__)}
    queue, found = [root], []
    while queue:
        obj = queue.pop()
        if isinstance(obj, str | bytes | bytearray):
            text = obj.decode("latin-1") if isinstance(obj, bytes | bytearray) else obj
            if MARKER in text:
                path, key = [], id(obj)
                while key:
                    key, name = parents[key]
                    path.append(name)
                found.append(" <- ".join(path))
            continue
        if isinstance(obj, (*skipped, bon.BaseLM, bon.Module)):
            continue
        for referent in gc.get_referents(obj):
            if id(referent) not in parents:
                parents[id(referent)] = (id(obj), type(referent).__name__)
                queue.append(referent)
    return found


def test_no_object_reachable_from_a_failed_call_holds_the_key(
    server: OpenAICompatServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the walk finds a key where a provider's request object keeps it
    assert secrets_reachable_from(ValueError({"headers": [(b"authorization", f"Bearer {API_KEY}".encode())]}))
    # litellm's exception chain holds the provider's request object with its Authorization header
    lm = bon.LM("openai/test-model", api_base=server.url, api_key=API_KEY, num_retries=0, cache=False)
    server.fail_next(401)
    with pytest.raises(LMAuthenticationError) as auth:
        lm.copy(backend="litellm:litellm")(prompt="unauthorized")
    assert secrets_reachable_from(auth.value) == []
    server.fail_next(500)
    with pytest.raises(LMServerError) as failed:
        lm.copy(backend="openai_http:openai")(prompt="through the plugin")
    assert secrets_reachable_from(failed.value) == []
    # the environment's key, which the backend reads itself
    monkeypatch.setenv("OPENAI_API_KEY", ENV_KEY)
    server.fail_next(401)
    with pytest.raises(LMAuthenticationError) as env:
        bon.LM("openai/test-model", api_base=server.url, num_retries=0, backend="litellm:litellm")(prompt="x")
    assert secrets_reachable_from(env.value) == []


def test_no_object_reachable_from_a_bestofn_error_holds_the_key(server: OpenAICompatServer) -> None:
    program = Program()
    program.set_lm(planted_lm(server, num_retries=0, cache=False, backend="litellm:litellm"))
    server.fail_next(401, times=3)
    best = bon.BestOfN(program, N=3, reward_fn=lambda inputs, pred: 1.0, threshold=1.0)
    with pytest.raises(BestOfNError) as group:
        best(question="best of three")
    assert group.value.attempts[0].error is not None  # the path of the report: attempts[0].error...
    assert secrets_reachable_from(group.value) == []


# ------------------------------------------------------------------------------------- the command line


def _cli_env(**extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("BESTOFN_")}
    env.update(
        OPENAI_API_KEY=ENV_KEY,
        ANTHROPIC_API_KEY=f"{MARKER}-anthropic",
        LITELLM_LOCAL_MODEL_COST_MAP="True",
        **extra,
    )
    return env


@pytest.mark.parametrize("argv", [["plugins"], ["plugins", "--all"], ["plugins", "--all", "--json"]])
def test_bestofn_plugins_output_holds_no_secret(argv: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bestofn_core.cli", *argv],
        capture_output=True,
        text=True,
        env=_cli_env(BESTOFN_TRACE_PLUGINS="1"),
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "litellm" in result.stdout or "--all" not in argv
    assert MARKER not in result.stdout and MARKER not in result.stderr


def test_bestofn_plugins_shows_where_every_plugin_was_loaded_from() -> None:
    # for a security review: each plugin's file, built-ins included, so an unexpected one stands out
    result = subprocess.run(
        [sys.executable, "-m", "bestofn_core.cli", "plugins", "--all", "--json"],
        capture_output=True,
        text=True,
        env=_cli_env(),
        timeout=120,
        check=True,
    )
    plugins = orjson.loads(result.stdout)["plugins"]
    assert any(info["builtin"] for info in plugins) and any(not info["builtin"] for info in plugins)
    for info in plugins:
        assert info["location"] and Path(info["location"]).is_file(), info
        assert info["module"] and info["version"], info
        assert info["builtin"] or info["distribution"], info


def test_bestofn_run_json_output_and_results_file_hold_no_secret(
    server: OpenAICompatServer, tmp_path: Path
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        f'[lm]\napi_key = "{API_KEY}"\nretry_base_delay = 0.01\nnum_retries = 1\n'
        f'extra_headers = {{ Authorization = "Bearer {BEARER}", X-Api-Key = "{HEADER}" }}\n',
        encoding="utf-8",
    )
    env = _cli_env(BESTOFN_CONFIG=str(config), BESTOFN_CACHE_DIR=str(tmp_path / "cache"))
    base = [sys.executable, "-m", "bestofn_core.cli", "run", "question -> answer"]
    common = ["--lm", "openai/test-model", "--api-base", server.url, "-n", "2", "--reward", "text:nonempty"]

    ok = subprocess.run(
        [*base, "question=hi", *common, "--json", "--no-progress"],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
        check=False,
    )
    assert ok.returncode == 0, ok.stderr
    assert orjson.loads(ok.stdout)["outputs"]["answer"]
    assert BEARER in received_text(server) and HEADER in received_text(server)  # the config's keys were used

    # a JSONL batch whose attempts all fail with a 401 echoing the keys: error texts, candidates, the
    # results file, and --debug logging with tracebacks
    questions = tmp_path / "questions.jsonl"
    questions.write_text('{"question": "one"}\n{"question": "two"}\n', encoding="utf-8")
    results = tmp_path / "results.jsonl"
    server.fail_next(401, times=4, body=echo_body(API_KEY, f"Bearer {BEARER}", HEADER))
    failing_flags = ["--json", "--no-progress", "--no-cache", "--debug"]
    failed = subprocess.run(
        [*base, *common, "--input", str(questions), "--output", str(results), *failing_flags],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
        check=False,
    )
    shown = failed.stdout + failed.stderr + results.read_text(encoding="utf-8")
    assert "Incorrect API key provided" in shown and REDACTED in shown
    for text in (ok.stdout, ok.stderr, shown):
        assert MARKER not in text, text
