"""Ray Tune searches over whole training runs: the space, trial configs and outputs, and the Ray side."""
