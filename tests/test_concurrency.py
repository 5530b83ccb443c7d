"""One Embedder shared by many threads: the same vectors as serial calls, no exception, no deadlock."""

from __future__ import annotations

import queue
import random
import threading
import time
from collections.abc import Callable
from typing import TypeVar

import numpy as np
import pytest
from conftest import TINY_WORDS

import embedkit
from embedkit.pipeline.embedder import STAGES, Embedder, StageTimer
from embedkit.pipeline.session import SessionClosedError

N_THREADS = 16
N_CALLS = 1000
# MiniLM's calls take ~40x the tiny model's: fewer of them still keep 16 threads in flight together.
N_MINILM_CALLS = 250
# A bound, not a measurement: far above what the calls take, so only a deadlock reaches it.
DEADLOCK_TIMEOUT_S = 300.0

Result = TypeVar("Result")
Call = tuple[list[str], int]  # texts, batch_size


def run_in_threads(
    work: Callable[[int], Result], n_jobs: int, n_threads: int = N_THREADS, timeout: float = DEADLOCK_TIMEOUT_S
) -> list[Result]:
    """work(i) for every i < n_jobs, shared out among daemon threads that start together.

    Daemon threads and a joined deadline make a deadlock fail the test instead of hanging pytest; the
    first exception any thread raised is raised here.
    """
    jobs: queue.SimpleQueue[int] = queue.SimpleQueue()
    for job in range(n_jobs):
        jobs.put(job)
    results: list[Result | None] = [None] * n_jobs
    errors: list[BaseException] = []
    start_together = threading.Barrier(n_threads)

    def worker() -> None:
        start_together.wait()
        try:
            while True:
                try:
                    job = jobs.get_nowait()
                except queue.Empty:
                    return
                results[job] = work(job)
        except BaseException as exc:  # handed to the test thread, which re-raises it
            errors.append(exc)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(n_threads)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    if errors:
        raise errors[0]
    hung = sum(thread.is_alive() for thread in threads)
    assert not hung, f"{hung} of {n_threads} threads still running after {timeout:.0f} s: deadlock"
    return results  # type: ignore[return-value]


def varied_calls(n_calls: int, words: list[str], max_texts: int, max_words: int, seed: int = 0) -> list[Call]:
    """Calls of 0..max_texts texts of 0..max_words words, at batch sizes that split some of them."""
    rng = random.Random(seed)
    calls = []
    for _ in range(n_calls):
        texts = [" ".join(rng.choices(words, k=rng.randint(0, max_words))) for _ in range(rng.randint(0, max_texts))]
        calls.append((texts, rng.choice([1, 3, 8, 32])))
    return calls


def assert_threads_match_serial(embedder: Embedder, calls: list[Call]) -> None:
    serial = [embedder.embed(texts, batch_size) for texts, batch_size in calls]
    concurrent = run_in_threads(lambda i: embedder.embed(*calls[i]), len(calls))
    mismatched = [i for i, (a, b) in enumerate(zip(serial, concurrent, strict=True)) if not np.array_equal(a, b)]
    assert not mismatched, (
        f"{len(mismatched)} of {len(calls)} concurrent calls differ from serial, e.g. {mismatched[:5]}"
    )


def test_16_threads_sharing_an_embedder_match_serial_calls_bitwise(tiny_embedder):
    assert_threads_match_serial(tiny_embedder, varied_calls(N_CALLS, TINY_WORDS, max_texts=16, max_words=40))


def test_a_shared_stage_timer_records_every_batch_of_every_thread(tiny_embedder):
    calls = varied_calls(200, TINY_WORDS, max_texts=16, max_words=40, seed=1)
    timer = StageTimer()
    run_in_threads(lambda i: tiny_embedder.embed(*calls[i], timer=timer), len(calls))
    n_batches = sum(-(-len(texts) // batch_size) for texts, batch_size in calls)
    assert {stage: len(timer.samples[stage]) for stage in STAGES} == {stage: n_batches for stage in STAGES}


def test_close_while_threads_embed_lets_calls_in_flight_finish(tiny_checkpoint, isolated_models):
    embedder = embedkit.load(str(tiny_checkpoint))
    expected = embedder.embed(["the cat"])
    started = threading.Barrier(N_THREADS + 1)

    def embed_until_closed(_job: int) -> int:
        started.wait()
        calls = 0
        while True:
            try:
                vectors = embedder.embed(["the cat"])
            except SessionClosedError:
                return calls
            np.testing.assert_array_equal(vectors, expected)
            calls += 1

    def close_once_all_embed() -> None:
        started.wait()
        embedder.close()

    closer = threading.Thread(target=close_once_all_embed, daemon=True)
    closer.start()
    run_in_threads(embed_until_closed, N_THREADS)
    closer.join()
    assert embedder.session.closed
    with pytest.raises(SessionClosedError, match="closed"):
        embedder.embed(["the cat"])


@pytest.mark.slow
def test_16_threads_sharing_minilm_fp32_match_serial_calls_bitwise(minilm):
    words = [
        "what",
        "is",
        "machine",
        "learning",
        "cooking",
        "italian",
        "pasta",
        "a",
        "man",
        "playing",
        "guitar",
        "in",
        "the",
        "snow",
        "😀",
        "ünïcødé",
    ]
    assert_threads_match_serial(minilm, varied_calls(N_MINILM_CALLS, words, max_texts=6, max_words=30, seed=2))
