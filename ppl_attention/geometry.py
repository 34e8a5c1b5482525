"""Compatibility alias: the glimpse geometry now lives in :mod:`ppl_attention.sensor` (a multi-scale sensor)."""
from .sensor import NO_GLIMPSE, GlimpseGrid, Sensor, SensorMismatch, check_sensor  # noqa: F401

__all__ = ["Sensor", "GlimpseGrid", "NO_GLIMPSE", "SensorMismatch", "check_sensor"]
