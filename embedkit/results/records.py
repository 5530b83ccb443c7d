"""Building a record: the envelope every kind shares (schema version, id, time, machine, provenance)
around a kind's body, validated before anyone sees it."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from typing import Any

from embedkit.errors import InvalidRecordError
from embedkit.results.provenance import collect
from embedkit.results.schema import SCHEMA_VERSION, validate_record
from embedkit.system import utc_now


def make_record_id(kind: str, machine_id: str, created_at: str) -> str:
    """kind-machine-UTC time-random: unique across machines and sortable by time per machine."""
    machine = re.sub(r"[^A-Za-z0-9._]+", "_", machine_id)
    moment = re.sub(r"[^0-9T]", "", created_at.split(".")[0]) + "Z"
    return f"{kind}-{machine}-{moment}-{uuid.uuid4().hex[:8]}"


def new_record(kind: str, body: Mapping[str, Any], *, provenance: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A complete, validated record of `kind` from its kind-specific `body`.

    `provenance` defaults to `provenance.collect()` in this process: call this in the process
    (and environment) that measured, so the record names the ONNX Runtime build that ran.
    """
    facts = dict(provenance) if provenance is not None else collect()
    created_at = utc_now()
    envelope = {
        "schema_version": SCHEMA_VERSION,
        "kind": kind,
        "record_id": make_record_id(kind, str(facts["machine_id"]), created_at),
        "created_at": created_at,
        "machine_id": facts["machine_id"],
        "provenance": facts,
    }
    clashing = sorted(set(envelope) & set(body))
    if clashing:
        raise InvalidRecordError(f"body must not set envelope fields {clashing}")
    return validate_record({**envelope, **body})
