"""Memory: embed calls and session create/close cycles do not grow RSS; close() releases the session."""

from __future__ import annotations

import gc
import random
import weakref

import pytest
from conftest import TINY_WORDS

import embedkit
from embedkit import defaults
from embedkit.cli import main
from embedkit.latency import bench
from embedkit.latency.bench import LEAK_SESSION_CYCLES, leak_check
from embedkit.pipeline.session import OrtSession, SessionClosedError

# Loose on purpose, above allocator noise: a session that is never released keeps its arena and thread
# pool, so 200 of them cross it, as do a few KB leaked per embed call.
RSS_GROWTH_BOUND_MB = 50.0


def _tiny_sentences(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choices(TINY_WORDS, k=rng.randint(0, 30))) for _ in range(n)]


def _inference_session_ref(session: OrtSession) -> weakref.ref:
    return weakref.ref(session._live())


def test_close_releases_the_inference_session_and_later_calls_say_so(tiny_checkpoint, isolated_models):
    embedder = embedkit.load(str(tiny_checkpoint))
    released = _inference_session_ref(embedder.session)
    embedder.embed(["the cat"])
    embedder.close()
    gc.collect()
    assert released() is None and embedder.session.closed
    with pytest.raises(SessionClosedError, match=r"model\.onnx is closed"):
        embedder.embed(["the cat"])
    embedder.close()  # a second close is harmless


def test_embedder_and_session_are_context_managers(tiny_checkpoint, isolated_models):
    with embedkit.load(str(tiny_checkpoint)) as embedder:
        released = _inference_session_ref(embedder.session)
        assert embedder.embed(["the cat"]).shape == (1, embedder.dim)
    gc.collect()
    assert released() is None
    with OrtSession(embedder.variant.path) as session:
        assert not session.closed
    assert session.closed


@pytest.mark.slow
def test_the_bench_leak_check_finds_no_growth_on_the_tiny_model(tiny_embedder):
    record = leak_check(tiny_embedder, _tiny_sentences(500), defaults.BENCH_LEAK_CALLS, seed=0)
    assert record["embed_calls"]["repeats"] == defaults.BENCH_LEAK_CALLS
    assert record["session_cycles"]["repeats"] == LEAK_SESSION_CYCLES
    for figure in ("embed_calls", "session_cycles"):
        assert record[figure]["growth_mb"] < RSS_GROWTH_BOUND_MB, record


def test_bench_leak_calls_flag_reaches_the_bench(monkeypatch):
    received = {}

    def fake_bench(model: str, **options: object) -> dict[str, object]:
        received.update(options)
        return {"model": model}

    monkeypatch.setattr(bench, "run_bench", fake_bench)
    assert main(["--json", "bench", "--leak-calls", "123"]) == 0
    assert received["leak_calls"] == 123
