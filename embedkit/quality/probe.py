"""The seed plan's quick probe: a similar and a different sentence pair, their cosines and the vectors'
norms, graded by the plan's quality tiers. A smoke test of a variant in seconds, not a score."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from embedkit.quality.encoder import EmbedderLike

SEED_SIMILAR_PAIR = ("machine learning algorithms", "artificial intelligence methods")
SEED_DIFFERENT_PAIR = ("machine learning algorithms", "cooking italian pasta")


@dataclass(frozen=True)
class ProbeTier:
    name: str
    similar_above: float
    different_below: float
    separation_above: float
    norm_tolerance: float  # |L2 norm - 1| allowed

    def met_by(self, similar: float, different: float, norm_error: float) -> bool:
        return (
            similar > self.similar_above
            and different < self.different_below
            and similar - different > self.separation_above
            and norm_error <= self.norm_tolerance
        )


# The seed plan's "Quality Metrics", best first.
PROBE_TIERS = (
    ProbeTier("excellent", similar_above=0.75, different_below=0.2, separation_above=0.55, norm_tolerance=1e-3),
    ProbeTier("good", similar_above=0.7, different_below=0.3, separation_above=0.4, norm_tolerance=1e-3),
    ProbeTier("minimum", similar_above=0.6, different_below=0.4, separation_above=0.2, norm_tolerance=1e-2),
)


def quick_probe(
    embedder: EmbedderLike,
    similar: tuple[str, str] = SEED_SIMILAR_PAIR,
    different: tuple[str, str] = SEED_DIFFERENT_PAIR,
    prompt_name: str | None = None,
) -> dict[str, Any]:
    """Fast smoke score: cosine of a similar and a different pair, their separation, L2 norms.

    Returns the metrics and the best tier of the seed plan's thresholds they all meet
    ("excellent", "good", "minimum", or "below minimum").
    """
    vectors = np.asarray(embedder.embed([*similar, *different], prompt_name=prompt_name), dtype=np.float64)
    norms = np.linalg.norm(vectors, axis=1)
    unit = vectors / norms[:, None]
    similar_cosine = float(unit[0] @ unit[1])
    different_cosine = float(unit[2] @ unit[3])
    separation = similar_cosine - different_cosine
    norm_error = float(np.max(np.abs(norms - 1.0)))
    tier = next(
        (t.name for t in PROBE_TIERS if t.met_by(similar_cosine, different_cosine, norm_error)), "below minimum"
    )
    return {
        "similar": similar_cosine,
        "different": different_cosine,
        "separation": separation,
        "norm_min": float(norms.min()),
        "norm_max": float(norms.max()),
        "tier": tier,
        "pairs": {"similar": list(similar), "different": list(different)},
    }
