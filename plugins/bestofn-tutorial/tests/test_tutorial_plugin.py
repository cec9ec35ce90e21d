"""The plugin as users meet it: installed, looked up by name, in BestOfN, against a real HTTP server."""

import bestofn_tutorial

import bestofn_core as bon
from bestofn_core.plugins import get_registry
from bestofn_core.testing.dummy_lm import Answer, DummyLM
from bestofn_core.testing.openai_server import OpenAICompatServer
from bestofn_core.testing.pytest_plugin import PluginRegistrar


def test_the_installed_entry_point_registers_everything() -> None:
    registry = get_registry()
    (info,) = [info for info in registry.plugins if info.name == "tutorial"]
    assert (info.distribution, info.version, info.error) == ("bestofn-tutorial", "0.1.0", None)
    assert info.registered["reward"] == ["tutorial:shorter_than", "tutorial:shortest"]
    assert info.registered["selection_policy"] == ["tutorial:first_ok"]
    assert registry.get("reward", "tutorial:shortest") is bestofn_tutorial.shortest


def test_in_process_without_the_entry_point(
    bestofn_no_autoload: None, bestofn_plugin: PluginRegistrar
) -> None:
    assert "tutorial:shortest" not in get_registry().names("reward")
    bestofn_plugin(bestofn_tutorial, name="tutorial")
    (info,) = [info for info in get_registry().plugins if info.name == "tutorial"]
    assert info.distribution is None  # registered by the test, not loaded from the installed package
    assert isinstance(get_registry().get("selection_policy", "first_ok"), bestofn_tutorial.FirstOK)


def test_best_of_n_keeps_the_shortest_answer(bestofn_dummy_lm: type[DummyLM]) -> None:
    answers = ["It is Paris", "Paris", "The city of Paris"]
    # a scripted LM: the attempt with rollout_id i answers answers[i]
    bon.configure(lm=bestofn_dummy_lm(lambda request, choice: {"answer": answers[request.rollout_id or 0]}))
    best = bon.BestOfN(bon.Predict("question -> answer"), N=3, reward_fn="tutorial:shortest")
    pred = best(question="What is the capital of France?")
    assert (pred.answer, pred.winner.rollout_id, pred.winner.reward) == ("Paris", 1, 0.5)


def test_first_ok_stops_at_the_first_attempt_that_succeeds(bestofn_dummy_lm: type[DummyLM]) -> None:
    # rollout 0 answers text without the output fields, which fails to parse: that attempt fails
    answers: list[Answer] = ["I am not sure.", {"answer": "Paris"}, {"answer": "Lyon"}]
    bon.configure(lm=bestofn_dummy_lm(lambda request, choice: answers[request.rollout_id or 0]))
    reward = bon.reward("tutorial:shorter_than", words=5)
    best = bon.BestOfN(bon.Predict("question -> answer"), N=3, reward_fn=reward, policy="tutorial:first_ok")
    pred = best(question="What is the capital of France?")
    assert pred.answer == "Paris"
    assert [candidate.ok for candidate in pred.candidates] == [False, True]  # rollout 2 was not needed


def test_over_http_through_litellm(bestofn_server: OpenAICompatServer) -> None:
    replies = iter(["The city of Paris", "Paris", "It is Paris"])
    bestofn_server.set_responder(lambda request, choice: {"answer": next(replies)})
    bon.configure(lm=bon.LM("openai/test", api_base=bestofn_server.url, api_key="k"))
    best = bon.BestOfN(bon.Predict("question -> answer"), N=3, reward_fn="tutorial:shortest")
    assert best(question="What is the capital of France?").answer == "Paris"
    assert len(bestofn_server.requests) == 3
