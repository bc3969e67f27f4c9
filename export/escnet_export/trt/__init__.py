"""TensorRT: engine builds through polygraphy, optimisation profiles, layer precisions, the parser's operator list."""
