"""A profile record in a line's worth: what `embedkit profile` prints and notebook 02 tabulates."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from embedkit.pipeline.providers import short_name


def record_summary(record: Mapping[str, Any]) -> dict[str, Any]:
    """p50/p95 per stage (ms), sample count, noisy stages, throughput, peak RSS and node share per provider."""
    stages = record["stages"]
    return {
        "label": record["grid"]["label"],
        **{f"{stage}_p50": stages[stage]["p50"] for stage in stages},
        **{f"{stage}_p95": stages[stage]["p95"] for stage in stages},
        "n": stages["total"]["n"],
        "noisy": [stage for stage in stages if stages[stage]["noisy"]],
        "texts_per_s": record["throughput"]["texts_per_s"],
        "peak_rss_mb": record["peak_rss_mb"],
        "node_share": {
            short_name(provider): share["node_share"] for provider, share in record["placement"]["providers"].items()
        },
    }
