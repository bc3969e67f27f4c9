"""Post-training static INT8 artifacts (``escnet-export quantize``) and the accuracy gates that decide what ships."""
