"""Benchmarks: `make bench` (python -m bench). Each prints ratios measured side by side."""
