"""Running many measurements: sweeps of notebooks, their resource limits, notebook parameter checks."""
