"""Jobs: their records, the control loop, reconcile, replay, adoption, the schedule and system jobs."""
