"""The consumer process: the delivery loop, the control loop and health routes in one process."""
