"""escnet_runtime: the torch-free deployment runtime (contract, tokenizer, backends, pipeline)."""
