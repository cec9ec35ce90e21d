"""Values that cannot reach a server sensibly are refused where they enter, naming the parameter.

A sampling parameter that is not a finite number (``temperature=inf``, ``top_p=nan``: JSON has no such
numbers, so they went out as ``null``) and an ``api_base`` that is not a server's URL (``"http://"``: the
HTTP client failed deep inside with ``KeyError: b''``, retried as a server error) are configuration
errors: ``LM``, ``LM.copy``, ``Predict``, ``BestOfN`` and ``bestofn run`` refuse them at once.
Requests go to the session's test server through litellm.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import pytest

import bestofn_core as bon
from bestofn_core.cli import main
from bestofn_core.errors import ConfigurationError, LMRequestError
from bestofn_core.testing.openai_server import OpenAICompatServer

QA = "question -> answer"
NOT_FINITE = [math.inf, -math.inf, math.nan]


# ------------------------------------------------------------------------------ numbers that are not finite


@pytest.mark.parametrize("value", NOT_FINITE, ids=["inf", "-inf", "nan"])
@pytest.mark.parametrize(
    "name",
    [
        "temperature",
        "top_p",
        "frequency_penalty",
        "presence_penalty",
        "min_p",
        "timeout",
        "retry_base_delay",
        "retry_max_delay",
    ],
)
def test_lm_refuses_a_number_that_is_not_finite_naming_it(name: str, value: float) -> None:
    with pytest.raises(ConfigurationError, match=rf"LM\(\.\.\.\):\n  {name}: .*finite"):
        bon.LM("openai/test", **{name: value})


def test_a_number_nested_in_a_parameter_is_named_by_its_path() -> None:
    with pytest.raises(ConfigurationError, match=r"logit_bias\.50256: .*finite number \(got inf\)"):
        bon.LM("openai/test", logit_bias={"50256": math.inf})
    with pytest.raises(ConfigurationError, match=r"extra_body\.weights\[1\]: .*finite number \(got nan\)"):
        bon.LM("openai/test", extra_body={"weights": [0.5, math.nan]})


def test_a_copy_and_a_call_refuse_them_too_and_nothing_is_sent(
    make_lm: Any, server: OpenAICompatServer
) -> None:
    lm = make_lm()
    with pytest.raises(ConfigurationError, match=r"LM\.copy\(\.\.\.\):\n  temperature: .*finite"):
        lm.copy(temperature=math.inf)
    with pytest.raises(ConfigurationError, match=r"top_p: .*finite number \(got nan\)"):
        lm("hi", top_p=math.nan)
    lm.kwargs["presence_penalty"] = -math.inf  # set behind the constructor's back: refused before sending
    with pytest.raises(ConfigurationError, match="presence_penalty"):
        lm("hi")
    assert server.requests == []


@pytest.mark.parametrize("name", ["temperature", "top_p", "presence_penalty"])
def test_predict_refuses_them_in_its_config_and_in_a_calls_config(
    lm: bon.LM, server: OpenAICompatServer, name: str
) -> None:
    with pytest.raises(ConfigurationError, match=rf"Predict\(\.\.\.\):\n  {name}: .*finite"):
        bon.Predict(QA, **{name: math.nan})
    with pytest.raises(ConfigurationError, match=rf"{name}: .*finite"):
        bon.Predict(QA)(question="q", config={name: math.inf})
    assert server.requests == []


@pytest.mark.parametrize("value", NOT_FINITE, ids=["inf", "-inf", "nan"])
def test_bestofn_refuses_a_temperature_that_is_not_finite(value: float) -> None:
    with pytest.raises(ConfigurationError, match=r"BestOfN\(\.\.\.\):\n  temperature: .*finite"):
        bon.BestOfN(bon.Predict(QA), N=2, reward_fn=lambda inputs, prediction: 1.0, temperature=value)


def test_finite_values_are_sent_as_given(make_lm: Any, server: OpenAICompatServer) -> None:
    lm = make_lm(temperature=0.0, top_p=1.0, logit_bias={"50256": -100.0}, presence_penalty=1e-3)
    lm("hi")
    body = server.requests[0].body
    assert (body["temperature"], body["top_p"], body["presence_penalty"]) == (0.0, 1.0, 1e-3)
    assert body["logit_bias"] == {"50256": -100.0}


# ------------------------------------------------------------------------------------ api_base


BAD_URLS = [
    "http://",
    "https://",
    "http://:80/v1",
    "http:///v1",
    "ftp://host/v1",
    "localhost:8000/v1",
    "http://host:port/v1",
    "",
    "http://user:sk-secret-in-url@/v1",
]


@pytest.mark.parametrize("setting", ["api_base", "base_url"])
@pytest.mark.parametrize("url", BAD_URLS)
def test_an_api_base_that_is_not_a_server_url_is_refused_at_construction(setting: str, url: str) -> None:
    with pytest.raises(ConfigurationError, match=rf"LM\(\.\.\.\):\n  {setting}: .*http:// or https:// URL"):
        bon.LM("openai/test", **{setting: url})


def test_the_refusal_does_not_show_a_key_written_in_the_url() -> None:
    with pytest.raises(ConfigurationError) as info:
        bon.LM("openai/test", api_base="http://user:sk-secret-in-url@/v1?api-key=sk-other-secret")
    assert "sk-secret-in-url" not in str(info.value) and "sk-other-secret" not in str(info.value)


def test_a_copy_refuses_a_bad_api_base(make_lm: Any) -> None:
    with pytest.raises(ConfigurationError, match=r"LM\.copy\(\.\.\.\):\n  api_base"):
        make_lm().copy(api_base="https://")


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:8000/v1", "https://api.openai.com/v1", "http://[::1]:8000/v1", "HTTP://Host/v1/"],
)
def test_server_urls_are_accepted(url: str) -> None:
    assert bon.LM("openai/test", api_base=url).kwargs["api_base"] == url


def test_a_bad_server_url_from_the_environment_fails_without_retries(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # litellm reads OPENAI_API_BASE when no api_base is given: the kernel never sees that value
    monkeypatch.setenv("OPENAI_API_BASE", "http://")
    lm = bon.LM("openai/test", api_key="sk-test", backend="litellm:litellm", retry_base_delay=0.01)
    with caplog.at_level(logging.INFO, logger="bestofn_core"), pytest.raises(LMRequestError) as info:
        lm("hi")
    assert "api_base" in str(info.value) and "OPENAI_API_BASE" in str(info.value)
    assert "retry" not in caplog.text


# ------------------------------------------------------------------------------------------ bestofn run


@pytest.mark.usefixtures("cli_environment")
@pytest.mark.parametrize(
    ("args", "config", "named"),
    [
        (["--temperature", "inf"], None, "temperature"),
        (["--temperature", "nan"], None, "temperature"),
        (["--api-base", "http://"], None, "api_base"),
        (["--api-base", "http://:80/v1"], None, "api_base"),
        ([], 'api_base = "https://"', "api_base"),
        ([], "temperature = inf", "temperature"),
        ([], "top_p = nan", "top_p"),
    ],
)
def test_bestofn_run_exits_2_with_one_line_naming_the_parameter(
    capsys: pytest.CaptureFixture[str],
    server: OpenAICompatServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    config: str | None,
    named: str,
) -> None:
    if config is not None:
        path = tmp_path / "config.toml"
        path.write_text(f'[lm]\nmodel = "openai/test"\n{config}\n')
        monkeypatch.setenv("BESTOFN_CONFIG", str(path))
    chooses_the_server = "--api-base" in args or "api_base" in (config or "")
    connection = ["--lm", "openai/test"] + ([] if chooses_the_server else ["--api-base", server.url])
    status = main(["run", QA, "question=q", "--reward", "text:one_word", *connection, "--no-progress", *args])
    err = capsys.readouterr().err
    assert status == 2, err
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("bestofn run: error: ") and named in err
    assert server.requests == []
