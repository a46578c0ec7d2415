//! The continuous service (`semantos agent`): sampling on a schedule, an advice store with stable
//! IDs, a calm controller (hysteresis, minimum dwell, a daily change budget), workload change
//! detection, and the lifecycle on exit. It drives the same stages as the one-shot commands
//! (telemetry → diagnosis → plan → guardrails → `tune`/apply); it adds no second pipeline.
