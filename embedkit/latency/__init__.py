"""Measuring speed: the profile grid, real-text workloads, sampling, worker processes, placement, bench."""
