"""The pure core: typed data in, typed data out; no I/O. Mapping, diff, planner, batching, capabilities, policy."""
