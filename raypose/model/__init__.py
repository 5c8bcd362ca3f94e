"""The temporal CNN, running it over windows, its device, and the geometry its outputs are fitted with."""
