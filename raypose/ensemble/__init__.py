"""A trained ensemble loaded for use: its members' aggregates, their disagreement as calibrated radii."""
