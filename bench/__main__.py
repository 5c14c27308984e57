"""Benchmarks: `make bench` (python -m bench). Each prints ratios measured side by side."""

from bench import (
    agi_commands,
    asterisk_cost,
    dashboard,
    dialer,
    engine_steps,
    fastagi_load,
    ingest,
    plan_loading,
    pop_latency,
    speech,
)

agi_commands.run()
engine_steps.run()
plan_loading.run()
fastagi_load.run()
asterisk_cost.run()
speech.run()
pop_latency.run()
ingest.run()
dashboard.run()
dialer.run()
