"""Pretend hardware and a pretend cloud, so everything runs without either."""
