"""Training an ensemble: the driver, the planner, the Ray Train adapter and the Ray-free worker and members."""
