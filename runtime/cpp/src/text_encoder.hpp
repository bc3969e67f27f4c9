// Class names -> a Vocabulary: runtime/escnet_runtime/text_encoder.py without its cache. Every
// class through every template (class-major), tokenized, run through the artifacts' text encoder
// graph in batches of the manifest's text_batch: embeddings (T, P, D), colours from the runtime's
// palette.
#pragma once

#include <string>
#include <vector>

#include "engine.hpp"
#include "tokenizer.hpp"
#include "vocabulary.hpp"

namespace escnet::detail {

Vocabulary encode_classes(const Engine& engine, const ClipTokenizer& tokenizer, const Manifest& manifest,
                          const std::vector<std::string>& names, int64_t dim);

// runtime/escnet_runtime/render.py palette: the PASCAL VOC bit-interleaving colours, black skipped.
std::vector<std::array<uint8_t, 3>> palette(std::size_t n);

}  // namespace escnet::detail
