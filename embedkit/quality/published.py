"""Published MTEB quality: a model's main scores from the MTEB results repository, read by mteb itself.

For a model whose quality is not measured here (e.g. an architecture twin with random weights), the
honest source of quality is what its authors published to the MTEB results repository. mteb's own
`ResultCache(cache_path=DIR).load_results(...)` reads it, offline from a local copy in the cache's
layout (`DIR/remote/results/<org>__<name>/<revision>/<Task>.json`; `embedkit.paths.published_dir()`),
or from mteb's default cache, which it downloads from the results repository when it is missing.

The score of a task is the main_score of its test split, as the leaderboard shows it
(`TaskResult.get_score()` averages every split in the file, e.g. a train split beside the test one).
A model's results may sit in several revision folders (a commit sha, `external`): they are merged per
task, the spec's pinned revision first, then commit-sha folders, then the others by name; the source
names the file, revision and split of every score. `published_record` turns the result into a record
of kind `published`, which is how published quality reaches tables and plots.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from embedkit import defaults
from embedkit.errors import PublishedResultsError, UsageError
from embedkit.models.specs import HubSource, get_spec
from embedkit.paths import published_dir
from embedkit.results.files import write_record
from embedkit.results.records import new_record

RESULTS_REPOSITORY = "embeddings-benchmark/results"
_COMMIT_SHA = re.compile(r"[0-9a-f]{40}")


@dataclass(frozen=True)
class PublishedScore:
    """One task's published main score and exactly where it was read."""

    main_score: float
    file: str  # relative to the cache directory
    revision: str  # the model revision folder the file is in
    split: str
    subsets: list[str]  # the split's hf_subsets averaged into main_score (usually just "default")
    mteb_version: str | None  # the mteb that wrote the file
    dataset_revision: str | None


@dataclass(frozen=True)
class PublishedScores:
    """A model's published main scores per task, with the results directory and repository commit read."""

    model: str  # embedkit's spec name
    repo_id: str  # the hub repository the results are filed under
    revision: str | None  # the spec's pinned hub revision, if any
    results_dir: str
    results_commit: str | None  # HEAD of the results repository copy, when it is a git checkout
    scores: dict[str, PublishedScore]

    def main_scores(self) -> dict[str, float]:
        return {task: score.main_score for task, score in self.scores.items()}

    def source(self) -> dict[str, Any]:
        return {
            "repository": RESULTS_REPOSITORY,
            "results_dir": self.results_dir,
            "results_commit": self.results_commit,
            "repo_id": self.repo_id,
            "tasks": {task: {k: v for k, v in asdict(score).items() if k != "main_score"}
                      for task, score in self.scores.items()},
        }  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "scores": self.main_scores(), "source": self.source()}


def hub_repo(model: str) -> tuple[str, str, str | None]:
    """(spec name, hub repo id, pinned revision or None) of a known spec or an `org/name` hub id."""
    spec = get_spec(model)
    if not isinstance(spec.source, HubSource):
        raise UsageError(
            f"{spec.name} does not come from the HF hub, so its MTEB results have no repository name here: "
            "pass its hub id (org/name) instead"
        )
    revision = spec.source.revision
    return spec.name, spec.source.repo_id, None if revision == "main" else revision


def _revision_order(revision: str, pinned: str | None) -> tuple[int, str]:
    return (0 if revision == pinned else 1 if _COMMIT_SHA.fullmatch(revision) else 2, revision)


def _split_score(task_result: Any, split: str) -> tuple[float, list[str]] | None:
    entries = task_result.scores.get(split)
    if not entries:
        return None
    subsets = [str(entry.get("hf_subset", "default")) for entry in entries]
    return sum(float(entry["main_score"]) for entry in entries) / len(entries), subsets


def _results_commit(cache: Any) -> str | None:
    if not (cache.remote_repo_path / ".git").exists():
        return None
    done = subprocess.run(["git", "-C", str(cache.remote_repo_path), "rev-parse", "HEAD"],
                          capture_output=True, text=True, check=False)  # fmt: skip
    return (done.stdout.strip() or None) if done.returncode == 0 else None


def _result_cache(results_dir: Path | str | None) -> Any:
    """mteb's ResultCache on `results_dir` (default $EMBEDKIT_PUBLISHED), read as it is; without either, mteb's
    default cache, downloaded from the results repository when it holds no copy yet."""
    import mteb

    directory = Path(results_dir) if results_dir is not None else published_dir()
    if directory is None:
        cache = mteb.ResultCache()
        if not cache.has_remote:
            cache.download_from_remote()
        return cache
    if not (directory / "remote" / "results").is_dir():
        raise PublishedResultsError(
            f"{directory} holds no MTEB results copy: expected {directory / 'remote' / 'results'}/<org>__<name>/"
            "<revision>/<Task>.json (mteb's ResultCache layout)"
        )
    return mteb.ResultCache(cache_path=directory)


def published_scores(
    model: str,
    tasks: Sequence[str] | None = None,
    results_dir: Path | str | None = None,
    *,
    split: str = defaults.PUBLISHED_SPLIT,
) -> PublishedScores:
    """The published main score of `model` on each of `tasks` (default: every task it has results for).

    PublishedResultsError when the results hold nothing for the model, or no `split` for a task asked for.
    """
    name, repo_id, pinned = hub_repo(model)
    cache = _result_cache(results_dir)
    loaded = cache.load_results(models=[repo_id], tasks=list(tasks) if tasks else None)
    chosen: dict[str, PublishedScore] = {}
    model_results = sorted(loaded.model_results, key=lambda result: _revision_order(str(result.model_revision), pinned))
    for model_result in model_results:
        revision = str(model_result.model_revision)
        for task_result in model_result.task_results:
            found = _split_score(task_result, split)
            if task_result.task_name in chosen or found is None:
                continue
            path = cache.remote_results_path / repo_id.replace("/", "__") / revision / f"{task_result.task_name}.json"
            chosen[task_result.task_name] = PublishedScore(
                main_score=found[0], file=str(path.relative_to(cache.cache_path)), revision=revision, split=split,
                subsets=found[1], mteb_version=task_result.mteb_version,
                dataset_revision=task_result.dataset_revision,
            )  # fmt: skip
    missing = sorted(set(tasks or ()) - set(chosen))
    if not chosen or missing:
        raise PublishedResultsError(
            f"no published {split}-split results for {repo_id} in {cache.cache_path}"
            + (f" for {', '.join(missing)}" if missing else "")
            + (f"; it has {', '.join(sorted(chosen))}" if chosen else "")
        )
    ordered = {task: chosen[task] for task in (tasks or sorted(chosen))}
    return PublishedScores(name, repo_id, pinned, str(cache.cache_path), _results_commit(cache), ordered)


def published_record(published: PublishedScores, *, provenance: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A record of kind `published`: the model, its hub repository, the score per task and where each came from."""
    body = {
        "model": {"spec": {"name": published.model},
                  "hub": {"repo_id": published.repo_id, "revision": published.revision}},
        "scores": published.main_scores(),
        "sources": published.source()["tasks"],
        "results": {"repository": RESULTS_REPOSITORY, "results_dir": published.results_dir,
                    "commit": published.results_commit},
    }  # fmt: skip
    return new_record("published", body, provenance=provenance)


def write_published_record(published: PublishedScores, out_dir: Path | str | None = None) -> Path:
    """Write `published_record(published)` into `out_dir` (default results/records); returns its path."""
    return write_record(published_record(published), out_dir)
