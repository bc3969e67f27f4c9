// The vocabulary file (runtime/vocab_file.py documents the format): a safetensors file with one
// float32 tensor class_embeddings (T, P, D) and the text encoder's identity in its metadata.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "manifest.hpp"

namespace escnet::detail {

struct Vocabulary {
  std::vector<std::string> names;              // T, in label order
  std::vector<std::array<uint8_t, 3>> colours;  // T
  int64_t templates = 0;                        // P
  int64_t dim = 0;                              // D
  std::vector<float> embeddings;                // (T, P, D) row-major
};

// Reads and checks a vocabulary file against an artifacts manifest: refused when newer, damaged,
// or written by another text encoder / tokenizer / template list, or of the wrong (P, D).
// The same checks on a vocabulary file's bytes (`encoder_sha256`: the artifacts' text encoder's);
// Error "<field>: <what>" without the file's name.
Vocabulary parse_vocabulary(const std::vector<char>& bytes, const Manifest& manifest, const std::string& encoder_sha256,
                            int64_t templates, int64_t dim);

Vocabulary read_vocabulary(const std::filesystem::path& file, const Manifest& manifest, const std::string& text_encoder_file,
                           int64_t templates, int64_t dim);

// True when `file` is a vocabulary file by its header (the format field), whatever its contents:
// a cache that may be replaced. False for any other file, which is never written over.
bool is_vocabulary_file(const std::filesystem::path& file);

}  // namespace escnet::detail
