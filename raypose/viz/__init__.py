"""Figures and animations drawn from runs and predictions."""
