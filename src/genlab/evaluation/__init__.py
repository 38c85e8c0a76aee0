"""Evaluation: metrics, benchmarks and side-by-side comparison."""
