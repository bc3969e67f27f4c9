// Writing a vocabulary file (the format runtime/escnet_runtime/vocab_file.py documents), so class
// embeddings computed in C++ serve as an on-disk cache that both runtimes read.
#pragma once

#include <filesystem>
#include <string>

#include "manifest.hpp"
#include "vocabulary.hpp"

namespace escnet::detail {

// Atomically (a new file beside `file`, renamed over it), with the umask's mode. `encoder_sha256`
// and `precision` are the text encoder's identity ("fp32" or "bf16").
void write_vocabulary(const std::filesystem::path& file, const Vocabulary& v, const Manifest& manifest,
                      const std::string& encoder_sha256, const std::string& precision);

}  // namespace escnet::detail
