"""Test infrastructure: a real tritonserver on 127.0.0.1, its bounded load run, child programs."""
