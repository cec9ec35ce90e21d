"""bestofn_core.testing: DummyLM (scripts, n, async, usage, errors) and the pytest plugin's fixtures.

The fixtures are tested the way a plugin author's suite uses them: pytest's ``pytester`` writes a small
test module and runs pytest on it, in this process (fast) or in a fresh one (the entry point for real).
"""

from __future__ import annotations

import asyncio
import json
import pickle
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import bestofn_tests_plugin_fixtures as plugin_fixtures  # loaded by tests/conftest.py
import cloudpickle
import importlib_metadata
import pytest

import bestofn_core as bon
import bestofn_core.testing.openai_server  # imported here, so pytester's in-process runs share the module
from bestofn_core.errors import LMRateLimitError
from bestofn_core.lm import cache as cache_module
from bestofn_core.plugins import get_plugin_manager, reset_plugins
from bestofn_core.protocols import LMRequest
from bestofn_core.testing.dummy_lm import DummyLM

pytest_plugins = ["pytester"]

TESTS = Path(__file__).resolve().parent


# Only the installed fixture distributions: this module's tests choose their own plugin state.
plugin_site = plugin_fixtures.plugin_site


def write_tests(pytester: pytest.Pytester, source: str) -> None:
    """A test module for pytester's inner pytest run, with the ini settings this repository uses."""
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(source)


# hypothesis's pytest plugin costs 2 s per in-process run and plays no part in these runs
INNER_ARGS = ("-p", "no:cacheprovider", "-p", "no:hypothesispytest")


# ------------------------------------------------------------------------------------- DummyLM scripts


def test_a_list_script_is_served_in_order_one_answer_per_choice() -> None:
    lm = DummyLM(["one", "two", "three"])
    assert lm("q") == ["one"]
    assert lm("q", n=2) == ["two", "three"]
    assert [request.params.get("n") for request in lm.requests] == [None, 2]
    with pytest.raises(LookupError, match=r"ran out of scripted answers: the list has 3.* answer #4"):
        lm("q")


def test_a_dict_script_answers_by_a_substring_of_any_message_first_key_first() -> None:
    lm = DummyLM({"capital of France": "Paris", "capital": "a capital city"})
    assert lm("What is the capital of France?") == ["Paris"]
    assert lm("The capital of Peru?") == ["a capital city"]
    system_only = [
        {"role": "system", "content": "You know the capital of France."},
        {"role": "user", "content": "Well?"},
    ]
    assert lm(messages=system_only) == ["Paris"]
    assert lm("capital of France", n=3) == ["Paris"] * 3  # answers any number of requests and choices
    with_default = DummyLM({"France": "Paris", "": "I do not know"})
    assert with_default("Capital of Peru?") == ["I do not know"]


def test_a_dict_script_without_a_matching_key_names_the_keys_and_quotes_the_prompt() -> None:
    lm = DummyLM({"capital of France": "Paris"})
    with pytest.raises(LookupError) as error:
        lm("How tall is Everest?")
    message = str(error.value)
    assert "none of the keys ['capital of France'] occurs in it" in message
    assert "How tall is Everest?" in message


def test_a_function_script_sees_the_request_with_its_rollout_id_and_the_choice_index() -> None:
    seen: list[LMRequest] = []

    def script(request: LMRequest, choice: int) -> str:
        seen.append(request)
        return f"rollout {request.rollout_id} choice {choice}"

    lm = DummyLM(script)
    assert lm("q", rollout_id=3, n=2) == ["rollout 3 choice 0", "rollout 3 choice 1"]
    assert seen[0].rollout_id == 3 and "rollout_id" not in seen[0].params  # a cache key, never sent
    assert seen[0].messages == [{"role": "user", "content": "q"}]


def test_dict_answers_are_written_in_the_format_the_adapter_asks_for() -> None:
    lm = DummyLM(lambda request, choice: {"answer": "Paris", "confidence": 0.9})
    qa = bon.Predict("question -> answer, confidence: float")
    with bon.context(lm=lm):
        chat = qa(question="Capital of France?")
    assert "[[ ## answer ## ]]\nParis" in lm.history[-1]["outputs"][0]
    with bon.context(lm=lm, adapter=bon.JSONAdapter()):
        structured = qa(question="Capital of France?")
    assert json.loads(lm.history[-1]["outputs"][0]) == {"answer": "Paris", "confidence": 0.9}
    assert (chat.answer, chat.confidence) == (structured.answer, structured.confidence) == ("Paris", 0.9)


# ------------------------------------------------------------------------------------- n and max_choices


def test_with_n_one_request_returns_n_choices() -> None:
    lm = DummyLM(lambda request, choice: {"answer": f"a{choice}"})
    with bon.context(lm=lm):
        pred = bon.Predict("question -> answer", n=3)(question="q")
    assert pred.completions.answer == ["a0", "a1", "a2"]
    assert len(lm.requests) == 1 and lm.requests[0].params["n"] == 3


def test_without_n_support_the_kernel_sends_n_one_choice_requests() -> None:
    lm = DummyLM(lambda request, choice: {"answer": f"a{choice}"}, supports_n=False)
    assert lm.supports_n is False
    with bon.context(lm=lm):
        pred = bon.Predict("question -> answer", n=3)(question="q")
    # every request asked for one choice, so each answered as choice 0
    assert pred.completions.answer == ["a0", "a0", "a0"]
    assert [request.params["n"] for request in lm.requests] == [1, 1, 1]


def test_max_choices_caps_the_choices_of_one_request() -> None:
    lm = DummyLM(lambda request, choice: f"c{choice}", max_choices=2)
    assert lm("q", n=5) == ["c0", "c1"]
    with pytest.raises(ValueError, match=r"max_choices=\.\.\.\) must be None or an int >= 1, not 0"):
        DummyLM(["a"], max_choices=0)


# ------------------------------------------------------------------------------------- async and threads


async def test_async_calls_overlap_and_take_each_list_answer_exactly_once() -> None:
    answers = [f"a{i}" for i in range(20)]
    lm = DummyLM(answers, delay=0.1)
    started = time.perf_counter()
    results = await asyncio.gather(*(lm.acall("q") for _ in range(20)))
    elapsed = time.perf_counter() - started
    assert sorted(outputs[0] for outputs in results) == sorted(answers)
    assert elapsed < 1.5  # 20 x 0.1 s: one after another would take 2 s


async def test_a_delay_function_gets_the_request() -> None:
    delays: list[int | None] = []

    def delay(request: LMRequest) -> float:
        delays.append(request.rollout_id)
        return 0.0

    lm = DummyLM(["a", "b"], delay=delay)
    assert await lm.acall("q", rollout_id=7) == ["a"]
    assert delays == [7]


def test_a_list_script_is_shared_safely_by_threads_and_copies() -> None:
    answers = [f"a{i}" for i in range(40)]
    lm = DummyLM(answers)
    copies = [lm.copy(temperature=0.5), lm.copy(), lm]
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda i: copies[i % 3]("q")[0], range(40)))
    assert sorted(results) == sorted(answers)  # no answer served twice, none skipped
    assert len(lm.requests) == 40  # the request log is shared with the copies
    assert copies[0].kwargs["temperature"] == 0.5 and "temperature" not in lm.kwargs


def test_a_pickled_dummy_lm_continues_its_list_where_it_was() -> None:
    lm = DummyLM(["a", "b", "c"])
    assert lm("q") == ["a"]
    clone = pickle.loads(pickle.dumps(lm))
    assert clone("q") == ["b"]
    assert lm("q") == ["b"]  # the original's position is its own after pickling
    by_function = cloudpickle.loads(cloudpickle.dumps(DummyLM(lambda request, choice: "f")))
    assert by_function("q") == ["f"]


# ------------------------------------------------------------------------------------- usage and caching


def test_usage_counts_words_of_the_prompt_and_of_every_choice() -> None:
    lm = DummyLM(["four words of answer", "two words"])
    assert lm("one two three", n=2) == ["four words of answer", "two words"]
    assert lm.history[-1]["usage"] == {"prompt_tokens": 3, "completion_tokens": 6, "total_tokens": 9}


def test_usage_reaches_track_usage_under_the_dummy_model_name() -> None:
    lm = DummyLM([{"answer": "Paris"}], model="dummy/geo")
    with bon.context(lm=lm, track_usage=True):
        pred = bon.Predict("question -> answer")(question="Capital of France?")
    usage = pred.get_lm_usage()
    assert usage is not None and set(usage) == {"dummy/geo"}
    assert usage["dummy/geo"]["completion_tokens"] > 0 and usage["dummy/geo"]["prompt_tokens"] > 0


def test_the_cache_is_off_by_default_and_works_when_asked_for() -> None:
    uncached = DummyLM(lambda request, choice: "x")
    uncached("same prompt")
    uncached("same prompt")
    assert len(uncached.requests) == 2
    cached = DummyLM(lambda request, choice: "x", cache=True)
    cached("same prompt")
    cached("same prompt")
    assert len(cached.requests) == 1
    assert cached.history[-1]["cache_hit"] is True


# ------------------------------------------------------------------------------------- errors


def test_an_exception_answer_is_raised_and_transient_ones_are_retried() -> None:
    lm = DummyLM([LMRateLimitError("slow down"), "ok"], retry_base_delay=0.0)
    assert lm("q") == ["ok"]
    assert len(lm.requests) == 2  # the kernel retried the rate-limited request
    failing = DummyLM({"q": RuntimeError("the model is down")})
    with pytest.raises(RuntimeError, match="the model is down"):
        failing("q")
    assert len(failing.requests) == 1  # not a transient error: no retry


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        ("Paris", r"got the string 'Paris' as its script; pass a list of answers: DummyLM\(\['Paris'\]\)"),
        (42, r"must be a list of answers, a dict .* or a function .*; got int"),
        ({1: "x"}, r"keys of a DummyLM dict script are prompt substrings \(str\); got \[1\]"),
    ],
)
def test_a_script_of_the_wrong_type_is_refused_at_construction(script: Any, expected: str) -> None:
    with pytest.raises(TypeError, match=expected):
        DummyLM(script)


def test_an_answer_of_the_wrong_type_names_where_it_came_from() -> None:
    def script(request: LMRequest, choice: int) -> Any:
        return 42

    with pytest.raises(TypeError, match=r"function .*script' gave 42 \(int\); an answer must be a string"):
        DummyLM(script)("q")
    with pytest.raises(TypeError, match=r"list answer #2 gave None"):
        DummyLM(["a", None])("q", n=2)


# ------------------------------------------------------------------------------------- the pytest plugin


def test_the_plugin_is_declared_under_pytest11() -> None:
    (entry_point,) = importlib_metadata.entry_points(group="pytest11", name="bestofn")
    assert entry_point.value == "bestofn_core.testing.pytest_plugin"
    assert entry_point.dist is not None and entry_point.dist.name == "bestofn-core"


def test_importing_the_plugin_imports_nothing_heavy() -> None:
    code = (
        "import sys, bestofn_core.testing.pytest_plugin\n"
        "heavy = ('litellm', 'aiohttp', 'bestofn_core.plugins', 'bestofn_core.testing.openai_server',"
        " 'bestofn_core.testing.dummy_lm', 'bestofn_core.default_plugins')\n"
        "print(sorted(m for m in sys.modules if m.startswith(heavy)))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_no_fixture_is_autouse(pytester: pytest.Pytester) -> None:
    write_tests(pytester, "def test_nothing():\n    pass\n")
    used = pytester.runpytest(*INNER_ARGS, "--fixtures-per-test")
    listing = used.stdout.str().split("fixtures used by test_nothing", 1)
    assert len(listing) == 2 and "bestofn" not in listing[1]
    offered = pytester.runpytest(*INNER_ARGS, "--fixtures")
    for name in ("bestofn_plugin", "bestofn_no_autoload", "bestofn_server", "bestofn_dummy_lm"):
        assert f"{name} -- " in offered.stdout.str()  # offered, with its docstring
    offered.stdout.fnmatch_lines(["bestofn_isolated -- *", "    Default settings and an empty response*"])


def test_the_plugin_loads_through_its_entry_point_in_a_fresh_process(pytester: pytest.Pytester) -> None:
    write_tests(
        pytester,
        """
        def test_uses_a_fixture(bestofn_dummy_lm):
            assert bestofn_dummy_lm(["hi"])("q") == ["hi"]
        """,
    )
    result = pytester.runpytest_subprocess(*INNER_ARGS)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["plugins: *bestofn-core-*"])
    disabled = pytester.runpytest_subprocess(*INNER_ARGS, "-p", "no:bestofn")
    disabled.assert_outcomes(errors=1)
    disabled.stdout.fnmatch_lines(["*fixture 'bestofn_dummy_lm' not found*"])


def test_bestofn_plugin_registers_for_one_test_and_the_registry_follows(pytester: pytest.Pytester) -> None:
    write_tests(
        pytester,
        """
        import bestofn_core as bon
        from bestofn_core.plugins import get_registry


        class Helpers:
            @bon.hookimpl
            def register_rewards(self, register):
                register(lambda inputs, prediction: 1.0, name="always")


        def test_registered(bestofn_plugin):
            assert "helpers:always" not in get_registry().names("reward")  # builds and caches it
            assert bestofn_plugin(Helpers(), name="helpers") == "helpers"
            assert get_registry().get("reward", "helpers:always")({}, None) == 1.0


        def test_gone_in_the_next_test():
            assert "helpers:always" not in get_registry().names("reward")
        """,
    )
    pytester.runpytest(*INNER_ARGS).assert_outcomes(passed=2)
    assert get_plugin_manager().get_plugin("helpers") is None


def test_bestofn_plugin_fails_fast_on_a_broken_or_empty_plugin(pytester: pytest.Pytester) -> None:
    write_tests(
        pytester,
        """
        import pytest

        import bestofn_core as bon
        from bestofn_core.errors import PluginError
        from bestofn_core.plugins import get_registry


        class Broken:
            @bon.hookimpl
            def register_rewards(self, register):
                raise RuntimeError("cannot reach the scoring service")


        class Unmarked:
            def register_rewards(self, register):  # no @hookimpl: pluggy ignores it
                register(len)


        def test_broken(bestofn_plugin):
            with pytest.raises(PluginError, match="(?s)failed when its hooks.*cannot reach.*check=False"):
                bestofn_plugin(Broken(), name="broken")


        def test_broken_on_purpose(bestofn_plugin):
            bestofn_plugin(Broken(), name="broken", check=False)
            (info,) = [info for info in get_registry().plugins if info.name == "broken"]
            assert "cannot reach the scoring service" in info.error


        def test_empty(bestofn_plugin):
            with pytest.raises(PluginError, match="registered nothing.*@bestofn_core.hookimpl"):
                bestofn_plugin(Unmarked(), name="unmarked")


        def test_all_gone():
            assert {"broken", "unmarked"}.isdisjoint(info.name for info in get_registry().plugins)
        """,
    )
    pytester.runpytest(*INNER_ARGS).assert_outcomes(passed=4)


def test_bestofn_plugin_explains_a_name_that_is_already_taken(pytester: pytest.Pytester) -> None:
    write_tests(
        pytester,
        """
        import pytest

        import bestofn_core as bon


        class Plugin:
            @bon.hookimpl
            def register_rewards(self, register):
                register(lambda inputs, prediction: 1.0, name="always")


        def test_twice(bestofn_plugin):
            bestofn_plugin(Plugin(), name="twice")
            with pytest.raises(ValueError, match="(?s)already registered.*bestofn_no_autoload"):
                bestofn_plugin(Plugin(), name="twice")
            with pytest.raises(TypeError, match="needs a plugin name"):
                bestofn_plugin(Plugin(), name="")
        """,
    )
    pytester.runpytest(*INNER_ARGS).assert_outcomes(passed=1)


def test_bestofn_no_autoload_hides_installed_plugins_for_one_test(
    pytester: pytest.Pytester, plugin_site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # testplug is a real installed distribution (tests/fixtures/plugin_dists), the only one allowed here
    monkeypatch.syspath_prepend(str(plugin_site))
    monkeypatch.setenv("BESTOFN_LOAD_PLUGINS", "testplug")
    reset_plugins()
    write_tests(
        pytester,
        """
        import os

        from bestofn_core.plugins import get_registry


        def loaded():
            return {info.name for info in get_registry().plugins if not info.builtin}


        def test_loaded_before():
            assert loaded() == {"testplug"}


        def test_hidden(bestofn_no_autoload):
            assert os.environ["BESTOFN_LOAD_PLUGINS"] == ""
            assert loaded() == set()
            assert "json:json" in get_registry().names("serializer")  # built-ins still load


        def test_back_afterwards():
            assert os.environ["BESTOFN_LOAD_PLUGINS"] == "testplug"
            assert loaded() == {"testplug"}
        """,
    )
    try:
        pytester.runpytest(*INNER_ARGS).assert_outcomes(passed=3)
    finally:
        reset_plugins()


def test_bestofn_server_is_started_for_the_test_and_stopped_after(pytester: pytest.Pytester) -> None:
    write_tests(
        pytester,
        """
        import json
        import urllib.request

        state = {}


        def test_serves(bestofn_server):
            state["server"] = bestofn_server
            bestofn_server.set_responder(lambda request, choice: "scripted")
            body = {"model": "test", "messages": [{"role": "user", "content": "hi"}]}
            request = urllib.request.Request(
                bestofn_server.url + "/chat/completions",
                data=json.dumps(body).encode(),
                headers={"Content-Type": "application/json"},
            )
            with urllib.request.urlopen(request, timeout=30) as response:
                answer = json.load(response)
            assert answer["choices"][0]["message"]["content"] == "scripted"
            assert len(bestofn_server.requests) == 1


        def test_stopped_after():
            assert not state["server"].running
        """,
    )
    pytester.runpytest(*INNER_ARGS).assert_outcomes(passed=2)


def test_bestofn_dummy_lm_is_the_dummy_lm_class(pytester: pytest.Pytester) -> None:
    write_tests(
        pytester,
        """
        import bestofn_core as bon
        from bestofn_core.testing.dummy_lm import DummyLM


        def test_factory(bestofn_dummy_lm):
            assert bestofn_dummy_lm is DummyLM
            lm = bestofn_dummy_lm([{"answer": "Paris"}])
            with bon.context(lm=lm):
                assert bon.Predict("question -> answer")(question="Capital of France?").answer == "Paris"
        """,
    )
    pytester.runpytest(*INNER_ARGS).assert_outcomes(passed=1)


def test_bestofn_isolated_gives_fresh_settings_and_cache_then_restores_them(
    pytester: pytest.Pytester,
) -> None:
    outer_cache = cache_module.get_cache()
    write_tests(
        pytester,
        """
        import bestofn_core as bon
        from bestofn_core.lm.cache import get_cache
        from bestofn_core.testing.dummy_lm import DummyLM

        state = {}


        def test_configured_outside():
            bon.configure(num_threads=3)
            state["cache"] = get_cache()


        def test_isolated(bestofn_isolated):
            assert bon.settings.num_threads == 8  # the default, not 3
            assert get_cache() is not state["cache"]
            assert get_cache().directory == bestofn_isolated and list(bestofn_isolated.iterdir()) == []
            bon.configure(num_threads=5, lm=DummyLM(["a"], cache=True))
            assert bon.settings.lm("q") == ["a"]
            assert list(bestofn_isolated.iterdir())  # the response landed in the temporary cache


        def test_restored():
            assert bon.settings.num_threads == 3 and bon.settings.lm is None
            assert get_cache() is state["cache"]
        """,
    )
    try:
        pytester.runpytest(*INNER_ARGS).assert_outcomes(passed=3)
    finally:
        bon.settings.reset()
    assert cache_module.get_cache() is outer_cache
