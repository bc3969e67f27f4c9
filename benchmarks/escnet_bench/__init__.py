"""escnet_bench: speed, memory, parity and scaling benchmarks (``escnet-bench``)."""
