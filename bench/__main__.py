"""Benchmarks: `make bench` (python -m bench). Each prints ratios measured side by side."""

from bench import agi_commands, engine_steps, plan_loading

agi_commands.run()
engine_steps.run()
plan_loading.run()
