"""save/load in all three modes, the pickle refusal, metadata checks, secrets and api_base safety."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import orjson
import pytest

import bestofn_core as bon
from bestofn_core.errors import SerializationError

SECRET = "sk-SECRET-MARKER-9f3a"


class Program(bon.Module):
    def __init__(self) -> None:
        super().__init__()
        self.qa = bon.ChainOfThought("question -> answer")
        self.extra = bon.Predict("answer -> verdict: bool")

    def forward(self, question: str) -> bon.Prediction:
        return self.qa(question=question)


def _program(server: Any) -> Program:
    program = Program()
    program.qa.predict.demos = [bon.Example(question="1+1?", reasoning="add", answer="2")]
    program.set_lm(bon.LM("openai/test-model", api_base=server.url, api_key=SECRET, temperature=0.4))
    return program


def test_json_round_trip_restores_demos_signature_and_lm_settings(server: Any, tmp_path: Path) -> None:
    path = tmp_path / "program.json"
    _program(server).save(path)
    data = orjson.loads(path.read_bytes())
    assert data["metadata"]["format_version"] == 1
    assert "bestofn-core" in data["metadata"]["dependency_versions"]
    fresh = Program()
    fresh.load(path)
    assert fresh.qa.predict.demos[0].answer == "2"
    assert fresh.qa.predict.lm is None  # a file does not choose the LM: the configured one is used
    with bon.context(allow_lm_from_file=True):  # a file the user trusts restores its LM
        fresh.load(path)
    assert fresh.qa.predict.lm.model == "openai/test-model"
    assert fresh.qa.predict.lm.kwargs["temperature"] == 0.4
    mine = Program()
    mine.set_lm(bon.LM("openai/test-model", api_base=server.url))
    mine.load(path)  # into an LM of the same model: the saved sampling settings apply
    assert mine.qa.predict.lm.kwargs == {"api_base": server.url, "temperature": 0.4}


def test_no_secret_is_written_to_any_saved_file(server: Any, tmp_path: Path) -> None:
    program = _program(server)
    program.save(tmp_path / "state.json")
    program.save(tmp_path / "state.pkl")
    program.save(tmp_path / "whole", save_program=True)
    for path in [tmp_path / "state.json", tmp_path / "state.pkl", *(tmp_path / "whole").iterdir()]:
        assert SECRET.encode() not in path.read_bytes(), path


def test_loaded_json_cannot_redirect_the_lm_to_another_host(server: Any, tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    _program(server).save(path)
    data = orjson.loads(path.read_bytes())
    data["qa.predict"]["lm"]["api_base"] = "http://evil.example/v1"
    path.write_bytes(orjson.dumps(data))
    fresh = Program()
    fresh.load(path)
    assert fresh.qa.predict.lm is None
    mine = Program()
    mine.set_lm(bon.LM("openai/test-model", api_base=server.url, api_key="k"))
    mine.load(path)
    assert mine.qa.predict.lm.kwargs["api_base"] == server.url
    with bon.context(allow_api_base_from_file=True):
        opted_in = Program()
        opted_in.load(path)
    assert opted_in.qa.predict.lm.kwargs["api_base"] == "http://evil.example/v1"


def test_pickle_state_needs_allow_pickle(server: Any, tmp_path: Path) -> None:
    path = tmp_path / "state.pkl"
    _program(server).save(path)
    with pytest.raises(SerializationError, match="allow_pickle=True"):
        Program().load(path)
    loaded = Program().load(path, allow_pickle=True)
    assert loaded.qa.predict.demos[0].answer == "2"


def test_whole_program_directory_round_trip(
    server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server.set_responder(lambda req, i: {"reasoning": "r", "answer": "Brussels"})
    directory = tmp_path / "saved_program"
    _program(server).save(directory, save_program=True)
    assert (directory / "program.pkl").exists()
    meta = orjson.loads((directory / "metadata.json").read_bytes())
    assert meta["dependency_versions"]["bestofn-core"] == bon.__version__
    with pytest.raises(SerializationError, match="allow_pickle=True"):
        bon.load(directory)
    loaded = bon.load(directory, allow_pickle=True)
    assert isinstance(loaded, Program)
    assert "api_key" not in loaded.qa.predict.lm.kwargs  # secrets come from the environment instead
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    assert loaded(question="Capital of Belgium?").answer == "Brussels"


def test_save_program_to_a_file_path_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SerializationError, match="directory"):
        Program().save(tmp_path / "x.json", save_program=True)


@pytest.mark.parametrize("name", ["v1.2", "run.2026-01-01", "model.v3.final"])
def test_save_program_accepts_a_directory_name_with_dots(server: Any, tmp_path: Path, name: str) -> None:
    directory = tmp_path / "runs" / name
    _program(server).save(directory, save_program=True)
    assert sorted(path.name for path in directory.iterdir()) == ["metadata.json", "program.pkl"]
    assert isinstance(bon.load(directory, allow_pickle=True), Program)


def test_unknown_suffix_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SerializationError, match=r"\.yamlx"):
        Program().save(tmp_path / "p.yamlx")


def test_corrupt_json_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    Program().save(path)
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(SerializationError, match=r"p\.json"):
        Program().load(path)


def test_a_file_from_a_newer_format_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    Program().save(path)
    data = orjson.loads(path.read_bytes())
    data["metadata"]["format_version"] = 99
    path.write_bytes(orjson.dumps(data))
    with pytest.raises(SerializationError, match="newer.*Upgrade"):
        Program().load(path)


def test_version_mismatch_logs_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "p.json"
    Program().save(path)
    data = orjson.loads(path.read_bytes())
    data["metadata"]["dependency_versions"]["pydantic"] = "1.0.0"
    path.write_bytes(orjson.dumps(data))
    with caplog.at_level(logging.WARNING):
        Program().load(path)
    assert "pydantic 1.0.0" in caplog.text


def test_state_from_another_program_names_the_missing_parameters(tmp_path: Path) -> None:
    path = tmp_path / "qa.json"
    bon.Predict("question -> answer").save(path)
    with pytest.raises(bon.errors.ConfigurationError, match="qa.predict"):
        Program().load(path)


def test_loading_a_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SerializationError, match="does not exist"):
        Program().load(tmp_path / "absent.json")


def test_modules_to_serialize_pickles_code_by_value(tmp_path: Path) -> None:
    import sys
    import textwrap

    package = tmp_path / "mycustom_mod_for_test.py"
    package.write_text(
        textwrap.dedent(
            """
            import bestofn_core as bon

            class Custom(bon.Module):
                def __init__(self):
                    super().__init__()
                    self.p = bon.Predict("a -> b")

                def forward(self, a):
                    return self.p(a=a)
            """
        )
    )
    sys.path.insert(0, str(tmp_path))
    try:
        import mycustom_mod_for_test

        program = mycustom_mod_for_test.Custom()
        program.save(tmp_path / "by_value", save_program=True, modules_to_serialize=[mycustom_mod_for_test])
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("mycustom_mod_for_test", None)
    loaded = bon.load(tmp_path / "by_value", allow_pickle=True)
    assert type(loaded).__name__ == "Custom" and loaded.p.signature.signature == "a -> b"
