"""Measurement probes: one question each (memory, start-up, precision, the C++ runtime), run in child processes."""
