"""Running many measurements: sweep files (config), their runs (plan), executing a notebook (execution),
the sweep itself (sweep), its resource limits (limits), and the notebooks' parameter checks (notebook)."""
