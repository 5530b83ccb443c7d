"""Measuring quality with mteb: the local data mirror, tasks, the encoder, its cache, scoring, verify, probe."""
