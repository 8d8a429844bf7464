"""The stage graph: derived from artifact names, every problem reported at once."""

from __future__ import annotations

import pytest

from bolly_ray.core.dag import build_pipeline
from bolly_ray.errors import UsageError
from tests.fakes import fake, fan_out_fan_in


def specs(*stages: type) -> list:
    return [s.spec for s in stages]


def test_order_follows_artifacts_not_declaration_order() -> None:
    pipeline = build_pipeline(specs(*reversed(fan_out_fan_in())), {"media"})
    assert pipeline.order == ("a", "b", "c", "d", "e")
    assert pipeline.producers["y"] == "b"
    assert pipeline.upstream("d") == ["b", "c"]
    assert pipeline.descendants("b") == {"d", "e"}


def test_cycles_duplicates_and_optional_dependencies_are_all_reported() -> None:
    broken = specs(
        fake("a", ["media", "q"], ["x"]),
        fake("b", ["x"], ["q"]),
        fake("c", ["media"], ["x"]),
        fake("opt", ["media"], ["o"], critical=False),
        fake("needs_opt", ["o"], ["n"]),
    )
    with pytest.raises(UsageError) as err:
        build_pipeline(broken, {"media"})
    message = str(err.value)
    assert "artifact 'x' is produced by both a and c" in message
    assert "needs_opt: requires 'o' from optional stage opt; declare it in optional_inputs" \
        in message
    assert "cycle between stages: " in message
    assert "a -> b" in message or "b -> a" in message


def test_missing_inputs_are_reported_for_every_selected_stage() -> None:
    pipeline = build_pipeline(specs(fake("a", ["media"], ["x"]), fake("b", ["x", "ghost"], ["y"]),
                                    fake("c", ["phantom"], ["z"])), {"media"})
    assert pipeline.select(only=["a"]) == ["a"]
    with pytest.raises(UsageError) as err:
        pipeline.select()
    assert "b: input 'ghost' is produced by no stage and not provided by the job" in str(err.value)
    assert "c: input 'phantom' is produced by no stage" in str(err.value)


def test_unknown_optional_inputs_are_fine() -> None:
    pipeline = build_pipeline(specs(fake("a", ["media"], ["x"], optional_inputs=["nobody"])),
                              {"media"})
    assert pipeline.select() == ["a"]


def test_selection_with_from_and_only() -> None:
    pipeline = build_pipeline(specs(*fan_out_fan_in()), {"media"})
    assert pipeline.select(start="b") == ["b", "d", "e"]
    assert pipeline.select(only=["e", "a"]) == ["a", "e"]
    assert pipeline.select(only=["a", "d"], start="b") == ["d"]


def test_partly_provided_outputs_are_rejected() -> None:
    with pytest.raises(UsageError, match=r"a: the job provides \['x'\] but not \['x2'\]"):
        build_pipeline(specs(fake("a", ["media"], ["x", "x2"])), {"media", "x"})


def test_a_provided_artifact_replaces_its_producer_and_skips_what_only_fed_it() -> None:
    from bolly_ray.engine.registry import default_registry

    built_in = default_registry().specs
    assert build_pipeline(built_in, {"media"}).order == (
        "demux", "tmdb", "glossary", "vad", "asr", "diarize", "align", "speakers", "filter",
        "ner", "lyrics", "translate", "subtitles", "mux")
    with_transcript = build_pipeline(built_in, {"media", "transcript"})
    assert with_transcript.replaced == {"lyrics"}
    assert with_transcript.unneeded == {"demux", "vad", "asr", "diarize", "align", "speakers",
                                        "filter", "ner"}  # tmdb and glossary serve translate
    assert with_transcript.select() == ["tmdb", "glossary", "translate", "subtitles", "mux"]
    assert with_transcript.select(only=["demux", "mux"]) == ["demux", "mux"]  # asked by name
    # a diarization brought along replaces only the diarizer: the audio is still needed
    with_turns = build_pipeline(built_in, {"media", "diarization"})
    assert "diarize" not in with_turns.select() and "demux" in with_turns.select()


def test_diarization_runs_beside_asr_not_after_it() -> None:
    from bolly_ray.engine.registry import default_registry

    pipeline = build_pipeline(default_registry().specs, {"media"})
    assert pipeline.upstream("diarize") == ["demux", "vad"]  # it reads only where speech is
    assert "diarize" not in pipeline.upstream("asr") + pipeline.upstream("align")
    assert pipeline.upstream("speakers") == ["align", "diarize", "glossary"]  # cast names
