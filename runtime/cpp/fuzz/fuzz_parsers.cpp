// libFuzzer targets for the parsers that take outside bytes: the manifest (ESCNET_FUZZ_MANIFEST),
// the vocabulary file (ESCNET_FUZZ_VOCABULARY) and PNG input (ESCNET_FUZZ_PNG). A refusal
// (escnet::Error) is the expected outcome of a bad input; anything else escaping, a crash, or a
// sanitizer report is a bug.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "escnet/segmenter.hpp"
#include "manifest.hpp"
#include "png_io.hpp"
#include "vocabulary.hpp"

namespace {

// The identity a vocabulary seed carries (tests/cpp/fuzz/vocabulary/), so inputs get past it.
escnet::detail::Manifest fuzz_manifest() {
  escnet::detail::Manifest m;
  m.tokenizer_sha256 = std::string(64, 'a');
  m.context_length = 77;
  m.templates = {"A photo of a {} in the scene."};
  return m;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  const std::vector<char> bytes(reinterpret_cast<const char*>(data), reinterpret_cast<const char*>(data) + size);
  try {
#if defined(ESCNET_FUZZ_MANIFEST)
    escnet::detail::parse_manifest(bytes, "manifest.json");
#elif defined(ESCNET_FUZZ_VOCABULARY)
    static const escnet::detail::Manifest manifest = fuzz_manifest();
    escnet::detail::parse_vocabulary(bytes, manifest, std::string(64, 'e'), 1, 8);
#elif defined(ESCNET_FUZZ_PNG)
    escnet_tools::read_png_rgb(data, size, "input.png");
#else
#error "define one of ESCNET_FUZZ_MANIFEST, ESCNET_FUZZ_VOCABULARY, ESCNET_FUZZ_PNG"
#endif
  } catch (const escnet::Error&) {
  }
  return 0;
}
