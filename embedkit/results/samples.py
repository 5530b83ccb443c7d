"""The raw latency samples a profile record keeps beside its statistics, in a compact text encoding.

Raw samples: little-endian float32 milliseconds (7 significant digits: sub-microsecond at 10 ms),
zlib-compressed, base64 text. The encoding is named in each blob so that a later one can coexist.
"""

from __future__ import annotations

import base64
import zlib
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from embedkit import stats
from embedkit.errors import InvalidRecordError

SAMPLE_ENCODING = "f32le+zlib+base64"


def encode_samples(samples_ms: Iterable[float] | np.ndarray) -> dict[str, Any]:
    """Latency samples (ms) → {"encoding", "n", "data"} for a record's `samples` section."""
    array = np.asarray(samples_ms, dtype="<f4").ravel()
    data = base64.b64encode(zlib.compress(array.tobytes(), level=9)).decode("ascii")
    return {"encoding": SAMPLE_ENCODING, "n": int(array.size), "data": data}


def decode_samples(encoded: Mapping[str, Any]) -> np.ndarray:
    """The float32 milliseconds stored by `encode_samples`; InvalidRecordError when the blob is damaged."""
    if encoded.get("encoding") != SAMPLE_ENCODING:
        raise InvalidRecordError(f"unknown sample encoding {encoded.get('encoding')!r}; expected {SAMPLE_ENCODING!r}")
    try:
        raw = zlib.decompress(base64.b64decode(encoded["data"], validate=True))
    except (ValueError, zlib.error) as error:
        raise InvalidRecordError(f"sample data does not decode: {error}") from error
    if len(raw) % 4:
        raise InvalidRecordError(f"sample data holds {len(raw)} bytes, not a whole number of float32 values")
    samples = np.frombuffer(raw, dtype="<f4")
    if samples.size != encoded["n"]:
        raise InvalidRecordError(f"sample data holds {samples.size} values but n says {encoded['n']}")
    return samples


def latency_sections(stage_samples_ms: Mapping[str, np.ndarray], **summarize_options: Any) -> dict[str, Any]:
    """{"stages": statistics per stage, "samples": encoded raw samples per stage} for a profile record.

    The statistics are computed from the float32 values that get stored, so that anyone can
    recompute a record's statistics from its samples and get the same numbers.
    """
    stored = {stage: np.asarray(values, dtype="<f4") for stage, values in stage_samples_ms.items()}
    return {
        "stages": {stage: stats.summarize(values, **summarize_options).to_record() for stage, values in stored.items()},
        "samples": {stage: encode_samples(values) for stage, values in stored.items()},
    }
