#include "vocabulary.hpp"

#include <cstring>
#include <nlohmann/json.hpp>

#include "escnet/segmenter.hpp"
#include "sha256.hpp"

namespace escnet::detail {
using nlohmann::json;

namespace {

const char* const kVocabFormat = "escnet-vocabulary";  // runtime/contract.py VOCAB_FORMAT
const char* const kTensor = "class_embeddings";        // runtime/contract.py CLASS_EMBEDDINGS
constexpr uint64_t kMaxHeader = 100u << 20;

std::string meta_string(const json& meta, const std::string& key, const std::string& where) {
  if (!meta.contains(key) || !meta.at(key).is_string()) throw Error(where + ": vocabulary metadata has no '" + key + "'");
  return meta.at(key).get<std::string>();
}

}  // namespace

Vocabulary read_vocabulary(const std::filesystem::path& file, const Manifest& manifest, const std::string& text_encoder_file,
                           int64_t templates, int64_t dim) {
  const std::string where = file.string();
  std::error_code ec;
  if (!std::filesystem::is_regular_file(file, ec)) throw Error(where + ": no such vocabulary file");
  const auto bytes = read_file(file, "the vocabulary file");
  uint64_t n = 0;
  if (bytes.size() < 8) throw Error(where + ": not an escnet vocabulary file (too short)");
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<uint8_t>(bytes[i]);
  if (n > kMaxHeader || 8 + n > bytes.size()) throw Error(where + ": not an escnet vocabulary file (bad header length)");
  json header, meta;
  try {
    header = json::parse(bytes.begin() + 8, bytes.begin() + 8 + static_cast<std::ptrdiff_t>(n));
    meta = header.at("__metadata__");
  } catch (const json::exception&) {
    throw Error(where + ": not an escnet vocabulary file (unreadable header)");
  }
  if (meta.value("format", "") != kVocabFormat) throw Error(where + ": not an escnet vocabulary file");
  if (std::stoi(meta_string(meta, "format_version", where)) > kVocabFormatVersion) {
    throw Error(where + ": vocabulary format version " + meta_string(meta, "format_version", where) +
                " is newer than this runtime supports (" + std::to_string(kVocabFormatVersion) + ")");
  }
  const std::string encoder = meta_string(meta, "text_encoder_sha256", where);
  if (encoder != manifest.files.at(text_encoder_file) ||
      meta_string(meta, "tokenizer_sha256", where) != manifest.tokenizer_sha256 ||
      std::stoi(meta_string(meta, "context_length", where)) != manifest.context_length) {
    throw Error(where + ": written by another text encoder (" + encoder.substr(0, 12) + "..., these artifacts' is " +
                manifest.files.at(text_encoder_file).substr(0, 12) + "...); write it again with escnet-export vocab");
  }
  Vocabulary v;
  try {
    if (json::parse(meta_string(meta, "templates", where)) != json(manifest.templates)) {
      throw Error(where + ": written for other templates than these artifacts'");
    }
    v.names = json::parse(meta_string(meta, "class_names", where)).get<std::vector<std::string>>();
    for (const auto& c : json::parse(meta_string(meta, "colours", where))) {
      v.colours.push_back({c.at(0).get<uint8_t>(), c.at(1).get<uint8_t>(), c.at(2).get<uint8_t>()});
    }
    const json& spec = header.at(kTensor);
    const auto shape = spec.at("shape").get<std::vector<int64_t>>();
    const auto offsets = spec.at("data_offsets").get<std::vector<uint64_t>>();
    if (spec.at("dtype") != "F32" || shape.size() != 3 || offsets.size() != 2) throw Error(where + ": class_embeddings is not float32 (T, P, D)");
    if (shape[0] != static_cast<int64_t>(v.names.size()) || shape[0] < 1 || v.colours.size() != v.names.size()) {
      throw Error(where + ": " + std::to_string(shape[0]) + " embeddings for " + std::to_string(v.names.size()) + " class names");
    }
    if (shape[1] != templates || shape[2] != dim) {
      throw Error(where + ": embeddings of (P, D) = (" + std::to_string(shape[1]) + ", " + std::to_string(shape[2]) +
                  "), the decoder takes (" + std::to_string(templates) + ", " + std::to_string(dim) + ")");
    }
    const uint64_t count = static_cast<uint64_t>(shape[0] * shape[1] * shape[2]);
    if (offsets[1] - offsets[0] != 4 * count || 8 + n + offsets[1] > bytes.size()) throw Error(where + ": truncated embeddings");
    const char* data = bytes.data() + 8 + n + offsets[0];
    if (sha256_hex(data, 4 * count) != meta_string(meta, "embeddings_sha256", where)) {
      throw Error(where + ": the embeddings do not match their sha256 (a damaged vocabulary file)");
    }
    v.embeddings.resize(count);
    std::memcpy(v.embeddings.data(), data, 4 * count);  // little-endian float32, as x86 and ARM hosts store it
    v.templates = shape[1];
    v.dim = shape[2];
  } catch (const json::exception& e) {
    throw Error(where + ": incomplete vocabulary metadata (" + std::string(e.what()) + ")");
  }
  return v;
}

}  // namespace escnet::detail
