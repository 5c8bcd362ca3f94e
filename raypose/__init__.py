"""raypose: ensembles of temporal CNNs for 3D human pose estimation, trained in parallel on Ray."""
__version__ = "0.1.0"
