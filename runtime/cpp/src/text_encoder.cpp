#include "text_encoder.hpp"

#include <algorithm>

#include "chunked_decoder.hpp"
#include "class_names.hpp"

namespace escnet::detail {
namespace {
constexpr int kLegacyTextBatch = 256;  // runtime/contract.py LEGACY_TEXT_BATCH
}  // namespace

std::vector<std::array<uint8_t, 3>> palette(std::size_t n) {
  std::vector<std::array<uint8_t, 3>> colours(n);
  for (std::size_t i = 0; i < n; ++i) {
    std::size_t c = i + 1;
    std::array<int, 3> code{0, 0, 0};
    for (int bit = 0; bit < 8; ++bit) {
      for (int ch = 0; ch < 3; ++ch) code[ch] |= static_cast<int>((c >> ch) & 1) << (7 - bit);
      c >>= 3;
    }
    colours[i] = {static_cast<uint8_t>(code[0]), static_cast<uint8_t>(code[1]), static_cast<uint8_t>(code[2])};
  }
  return colours;
}

Vocabulary encode_classes(const Engine& engine, const ClipTokenizer& tokenizer, const Manifest& manifest,
                          const std::vector<std::string>& names, int64_t dim) {
  check_class_names(names, "class names");
  Vocabulary v;
  v.names = names;
  v.colours = palette(names.size());
  v.templates = static_cast<int64_t>(manifest.templates.size());
  v.dim = dim;
  std::vector<std::string> texts;  // (T * P) class-major, as vocabulary.py expand
  for (const auto& name : names) {
    for (const auto& t : manifest.templates) {
      std::string text = t;
      text.replace(text.find("{}"), 2, name);
      texts.push_back(std::move(text));
    }
  }
  const int batch = manifest.text_batch > 0 ? manifest.text_batch : kLegacyTextBatch;
  const int64_t context = tokenizer.context_length();
  v.embeddings.reserve(texts.size() * static_cast<std::size_t>(dim));
  for (std::size_t start = 0; start < texts.size(); start += static_cast<std::size_t>(batch)) {
    const std::size_t end = std::min(texts.size(), start + static_cast<std::size_t>(batch));
    std::vector<int64_t> ids;
    for (std::size_t i = start; i < end; ++i) {
      const auto row = tokenizer.tokenize(texts[i]);
      ids.insert(ids.end(), row.begin(), row.end());
    }
    const Outputs out = engine.run_ids(names::kTextEncoder, "token_ids", ids, static_cast<int64_t>(end - start), context);
    const Tensor& emb = out.at("text_embeddings");  // (n, D)
    if (emb.shape.size() != 2 || emb.shape[1] != dim || emb.shape[0] != static_cast<int64_t>(end - start)) {
      throw Error("graphs.text_encoder.outputs (text_embeddings): the graph gave another shape than (texts, " + std::to_string(dim) + ")");
    }
    v.embeddings.insert(v.embeddings.end(), emb.data.begin(), emb.data.end());
  }
  return v;
}

}  // namespace escnet::detail
