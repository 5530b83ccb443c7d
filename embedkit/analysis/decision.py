"""The decision card: GO / TRY ALTERNATIVE / FALLBACK per machine, model, variant and provider.

A P95 latency budget in tiers (upper bounds; defaults in embedkit.defaults):

    P95 < excellent_ms   excellent   → GO
    P95 < target_ms      target met  → GO
    P95 < acceptable_ms  acceptable  → TRY ALTERNATIVE (debug, or try another model/variant/provider),
                                       unless quality is excellent: accept and document the limitation → GO
    P95 ≥ acceptable_ms  over budget → FALLBACK
    quality below the floor          → TRY ALTERNATIVE (try another model)

The latency is the P95 of one profile grid point (by default a single short text); the quality is
the mean MTEB main score of a score record for the same model and variant. Thresholds and the
reference point are a `DecisionPolicy`.

An architecture twin (random weights) has no quality of its own: its fp32 row takes its model's
published quality (a `published` record, embedkit.quality.published), said so in the reason and in
`quality_source`; its other variants have none (a published score belongs to the original model's
weights, not to an export of them) and are judged on latency alone. `ladder_card` reads the card
rung by rung in the seed plan's order (`defaults.LADDER`).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

import pandas as pd

from embedkit import defaults
from embedkit.analysis.profiles import profile_rows
from embedkit.errors import UsageError
from embedkit.pipeline.providers import short_name
from embedkit.results.scores import REFERENCE_VARIANT, mean_score, score_rows, scored_tasks


class Verdict(str, Enum):
    GO = "GO"
    TRY_ALTERNATIVE = "TRY ALTERNATIVE"
    FALLBACK = "FALLBACK"
    # The group has profile records, but none at the policy's reference grid point.
    NO_DATA = "NO DATA"


@dataclass(frozen=True)
class DecisionPolicy:
    """Latency budget (ms, upper bounds of each tier), quality bars, and the reference grid point."""

    excellent_ms: float = defaults.EXCELLENT_MS
    target_ms: float = defaults.TARGET_MS
    acceptable_ms: float = defaults.ACCEPTABLE_MS
    # Mean MTEB main score (0-1) a model must reach; None: quality is not judged.
    quality_floor: float | None = None
    # Mean score at which an "acceptable" latency is accepted anyway; None: never.
    quality_excellent: float | None = None
    # Tasks averaged into the quality; None: every task of the chosen score record.
    quality_tasks: tuple[str, ...] | None = None
    batch_size: int = defaults.DECISION_BATCH_SIZE
    seq_bucket: str = defaults.DECISION_SEQ_BUCKET
    stage: str = "total"

    def __post_init__(self) -> None:
        if not 0 < self.excellent_ms <= self.target_ms <= self.acceptable_ms:
            raise UsageError(
                "latency thresholds must satisfy 0 < excellent <= target <= acceptable, got "
                f"{self.excellent_ms}, {self.target_ms}, {self.acceptable_ms}"
            )
        floor, excellent = self.quality_floor, self.quality_excellent
        if floor is not None and excellent is not None and excellent < floor:
            raise UsageError(f"quality_excellent {excellent} is below quality_floor {floor}")

    def tier(self, p95_ms: float) -> str:
        if p95_ms < self.excellent_ms:
            return "excellent"
        if p95_ms < self.target_ms:
            return "target"
        if p95_ms < self.acceptable_ms:
            return "acceptable"
        return "over budget"

    def tier_bound(self, tier: str) -> float:
        return {"excellent": self.excellent_ms, "target": self.target_ms, "acceptable": self.acceptable_ms}[tier]


GROUP = ["machine_id", "model", "variant", "provider"]
CARD_COLUMNS = [
    *GROUP,
    "verdict",
    "reason",
    "tier",
    "p95_ms",
    "p95_ci_low",
    "p95_ci_high",
    "confident",
    "noisy",
    "quality",
    "quality_provider",
    "weights",
    "quality_source",  # "measured" (a score record) or "published" (MTEB results, for a twin's fp32 row)
    "quality_revision",  # for published quality: the results' model revision folder(s)
    "forced",
    "batch_size",
    "seq_bucket",
    "intra_op_threads",
    "profile_record_id",
    "score_record_id",
]


@dataclass(frozen=True)
class _Quality:
    value: float
    forced: bool
    record_id: str
    tasks: tuple[str, ...]
    provider: str | None  # where it was scored: not always the profile's provider (see `_quality`); None: published
    source: str = "measured"
    revision: str | None = None  # published quality: the model revision folder(s) its files are in


def _quality(scores: pd.DataFrame, key: dict[str, Any], policy: DecisionPolicy) -> _Quality | None:
    """Mean main score from the best-matching score record for this model and variant.

    Same machine and provider first, then same provider, then any (quality barely depends on
    where it was scored: the parity gate holds variants to the reference); newest first.
    """
    candidates = scores[(scores["model"] == key["model"]) & (scores["variant"] == key["variant"])]
    if candidates.empty:
        return None
    rows = [row for _, row in candidates.iterrows()]
    if policy.quality_tasks is not None:
        rows = [row for row in rows if set(policy.quality_tasks) <= set(scored_tasks(row))]
    if not rows:
        return None
    rows.sort(
        key=lambda row: (
            row["machine_id"] == key["machine_id"] and row["provider"] == key["provider"],
            row["provider"] == key["provider"],
            row["created_at"],
        ),
        reverse=True,
    )
    best = rows[0]
    tasks = tuple(policy.quality_tasks) if policy.quality_tasks is not None else tuple(sorted(scored_tasks(best)))
    value = mean_score(best, tasks)
    return _Quality(
        value=value,
        forced=bool(best["forced"]),
        record_id=str(best["record_id"]),
        tasks=tasks,
        provider=str(best["provider"]),
    )


def _published_quality(published: pd.DataFrame, key: dict[str, Any], policy: DecisionPolicy) -> _Quality | None:
    """A twin's quality: its model's newest published record over the policy's tasks, for the fp32 row only."""
    if key["variant"] != REFERENCE_VARIANT or published.empty:
        return None
    rows = [row for _, row in published[published["model"] == key["model"]].iterrows()]
    if policy.quality_tasks is not None:
        rows = [row for row in rows if set(policy.quality_tasks) <= set(scored_tasks(row))]
    if not rows:
        return None
    best = max(rows, key=lambda row: row["created_at"])
    tasks = tuple(policy.quality_tasks) if policy.quality_tasks is not None else tuple(sorted(scored_tasks(best)))
    revisions = sorted({str(best[f"sources.{task}.revision"])[:8] for task in tasks})
    return _Quality(value=mean_score(best, tasks), forced=False, record_id=str(best["record_id"]), tasks=tasks,
                    provider=None, source="published", revision="/".join(revisions))  # fmt: skip


def published_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows of `frame` that are published-quality records."""
    return frame[frame["kind"] == "published"] if "kind" in frame else frame.iloc[0:0]


def _reference_profile(group: pd.DataFrame, policy: DecisionPolicy) -> pd.Series | None:
    """The group's fastest configuration (lowest P95) at the reference batch size and sequence bucket."""
    at_point = group[(group["grid.batch_size"] == policy.batch_size) & (group["grid.seq_bucket"] == policy.seq_bucket)]
    if at_point.empty:
        return None
    # A stable sort keeps the first of equal P95s, as idxmin would.
    return at_point.sort_values(f"stages.{policy.stage}.p95", kind="stable").iloc[0]


def _latency_phrase(p95: float, ci: tuple[float, float], tier: str, policy: DecisionPolicy) -> str:
    bounds = f"[95% CI {ci[0]:.2f}-{ci[1]:.2f}]"
    if tier == "over budget":
        return f"P95 {p95:.2f} ms {bounds} >= {policy.acceptable_ms:g} ms (over budget)"
    return f"P95 {p95:.2f} ms {bounds} < {policy.tier_bound(tier):g} ms ({tier})"


def _decide(
    key: dict[str, Any], profile: pd.Series | None, quality: _Quality | None, policy: DecisionPolicy
) -> dict[str, Any]:
    row: dict[str, Any] = {**key, "batch_size": policy.batch_size, "seq_bucket": policy.seq_bucket}
    if profile is None:
        return {
            **row,
            "verdict": Verdict.NO_DATA.value,
            "reason": f"no profile at batch {policy.batch_size}, seq {policy.seq_bucket!r}",
        }
    stage = f"stages.{policy.stage}"
    p95 = float(profile[f"{stage}.p95"])
    ci = (float(profile[f"{stage}.p95_ci"][0]), float(profile[f"{stage}.p95_ci"][1]))
    tier = policy.tier(p95)
    confident = policy.tier(ci[0]) == tier == policy.tier(ci[1])
    noisy = bool(profile[f"{stage}.noisy"])
    threads = profile.get("grid.intra_op_threads")
    row.update(
        tier=tier,
        p95_ms=p95,
        p95_ci_low=ci[0],
        p95_ci_high=ci[1],
        confident=confident,
        noisy=noisy,
        intra_op_threads=None if pd.isna(threads) else int(threads),
        profile_record_id=profile["record_id"],
    )
    reasons = [_latency_phrase(p95, ci, tier, policy)]
    if not confident:
        reasons.append("the CI spans more than one latency tier")
    if noisy:
        reasons.append("noisy measurement")

    below_floor = False
    quality_excellent = False
    if quality is not None:
        row.update(
            quality=quality.value,
            quality_provider=quality.provider,
            quality_source=quality.source,
            quality_revision=quality.revision,
            forced=quality.forced,
            score_record_id=quality.record_id,
        )
        forced_note = " (forced past a failed parity gate)" if quality.forced else ""
        scored_elsewhere = quality.provider is not None and quality.provider != key["provider"]
        where_note = f" (scored on {short_name(quality.provider)})" if quality.provider and scored_elsewhere else ""
        if quality.source == "published":
            where_note = f" ({published_note(quality.revision)})"
        phrase = f"quality {quality.value:.4f} over {len(quality.tasks)} task(s){where_note}{forced_note}"
        if policy.quality_floor is not None:
            below_floor = quality.value < policy.quality_floor
            phrase += f" {'<' if below_floor else '>='} floor {policy.quality_floor:g}"
        if policy.quality_excellent is not None and quality.value >= policy.quality_excellent:
            quality_excellent = True
            phrase += f", excellent (>= {policy.quality_excellent:g})"
        reasons.append(phrase)
    elif key.get("weights") == "random":
        reasons.append("random-weight twin: no quality (a published score belongs to the original fp32 model)")
    elif policy.quality_floor is not None:
        reasons.append("quality not measured: judged on latency alone")

    if tier == "over budget":
        verdict = Verdict.FALLBACK
    elif below_floor:
        verdict = Verdict.TRY_ALTERNATIVE
    elif tier in ("excellent", "target"):
        verdict = Verdict.GO
    elif quality_excellent:
        verdict = Verdict.GO
        reasons.append("acceptable latency accepted for excellent quality: document the limitation")
    else:
        verdict = Verdict.TRY_ALTERNATIVE
    return {**row, "verdict": verdict.value, "reason": "; ".join(reasons)}


def decision_card(frame: pd.DataFrame, policy: DecisionPolicy | None = None) -> pd.DataFrame:
    """One row per (machine, model, variant, provider) with profile records in `frame`.

    `frame` is `tables.load_frame(...)` / `tables.records_frame(...)` output; score records in
    it supply the quality. Rows never mix machines: each verdict rests on one machine's latency.
    """
    policy = policy or DecisionPolicy()
    if frame.empty or "kind" not in frame:
        return pd.DataFrame(columns=CARD_COLUMNS)
    profiles = profile_rows(frame)
    scores = score_rows(frame)
    published = published_rows(frame)
    rows = []
    # A twin and a checkpoint of one model are different rows: only the checkpoint's quality is measured.
    for values, group in profiles.groupby([*GROUP, "weights"], sort=True):
        key = dict(zip([*GROUP, "weights"], values, strict=True))
        if key["weights"] == "random":
            quality = _published_quality(published, key, policy)
        else:
            quality = _quality(scores, key, policy) if not scores.empty else None
        rows.append(_decide(key, _reference_profile(group, policy), quality, policy))
    return pd.DataFrame(rows, columns=CARD_COLUMNS)


def published_note(revision: str | None) -> str:
    """How a twin's published quality is said wherever it is shown."""
    return f"quality: published, mteb results {revision}; latency: random-weight twin measured here"


LADDER_COLUMNS = ["rung", "models", "verdict", "best", "p95_ms", "reason"]


def ladder_card(card: pd.DataFrame, ladder: tuple[tuple[str, ...], ...] = defaults.LADDER) -> pd.DataFrame:
    """The card read as the seed plan's ladder: one row per rung in the plan's order, with its best row
    (a GO row first, then the lowest P95) as the rung's verdict and reason. The plan takes the first rung
    that is GO; a rung with no profiled model says NO DATA."""
    rows = []
    for number, models in enumerate(ladder, start=1):
        here = card[card["model"].isin(models) & card["p95_ms"].notna()]
        if here.empty:
            rows.append({"rung": number, "models": " / ".join(models), "verdict": Verdict.NO_DATA.value})
            continue
        best = here.assign(go=here["verdict"] != Verdict.GO.value).sort_values(["go", "p95_ms"], kind="stable").iloc[0]
        rows.append({"rung": number, "models": " / ".join(models), "verdict": best["verdict"],
                     "best": f"{best['model']}:{best['variant']} · {short_name(best['provider'])}",
                     "p95_ms": best["p95_ms"], "reason": best["reason"]})  # fmt: skip
    return pd.DataFrame(rows, columns=LADDER_COLUMNS)
