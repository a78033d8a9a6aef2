# src/handoff: durable hint store, range-handoff planner, rate limiter.
