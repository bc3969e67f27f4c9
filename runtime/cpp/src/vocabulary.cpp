// The vocabulary file, read with every length checked before it is used (no offset can wrap),
// every value checked before a class gets a label: see vocabulary.hpp.
#include "vocabulary.hpp"

#include <cmath>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "escnet/segmenter.hpp"
#include "json_fields.hpp"
#include "sha256.hpp"
#include "class_names.hpp"

namespace escnet::detail {
using nlohmann::json;

namespace {

const char* const kVocabFormat = "escnet-vocabulary";  // runtime/contract.py VOCAB_FORMAT
const char* const kTensor = "class_embeddings";        // runtime/contract.py CLASS_EMBEDDINGS
constexpr uint64_t kMaxHeader = 100u << 20;            // safetensors' own limit
constexpr uint64_t kMaxFile = uint64_t(4) << 30;
constexpr int64_t kMaxTemplates = 1 << 20, kMaxDim = 1 << 20;

std::string short_sha(const std::string& s) { return s.substr(0, 12) + "..."; }

// The safetensors header: 8 bytes little-endian length n, then n bytes of JSON.
json header_of(const std::vector<char>& bytes, uint64_t& n) {
  if (bytes.size() < 8) throw FieldError("header: not an escnet vocabulary file (too short)");
  n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<uint8_t>(bytes[i]);
  if (n > kMaxHeader || n > bytes.size() - 8) throw FieldError("header: not an escnet vocabulary file (a header length of " + std::to_string(n) + " bytes does not fit the file)");
  try {
    return json::parse(bytes.begin() + 8, bytes.begin() + 8 + static_cast<std::ptrdiff_t>(n));
  } catch (const json::exception&) {
    throw FieldError("header: not an escnet vocabulary file (unreadable header)");
  }
}

std::string meta_string(const json& meta, const std::string& key) {
  const json* v = optional_member(meta, key, key);
  if (!v) throw FieldError(key + ": missing from the metadata");
  return v->get<std::string>();  // metadata_of checked every value is a string
}

json meta_json(const json& meta, const std::string& key) {
  try {
    return json::parse(meta_string(meta, key));
  } catch (const json::exception&) {
    throw FieldError(key + ": not JSON");
  }
}

void check_identity(const json& meta, const Manifest& manifest, const std::string& encoder_sha) {
  const std::string encoder = sha256_field(member(meta, "text_encoder_sha256", "text_encoder_sha256"), "text_encoder_sha256");
  const std::string tok = sha256_field(member(meta, "tokenizer_sha256", "tokenizer_sha256"), "tokenizer_sha256");
  const int64_t context = whole_text(meta_string(meta, "context_length"), "context_length", 2, 1 << 16);
  if (encoder != encoder_sha) {
    throw FieldError("text_encoder_sha256: written by another text encoder (" + short_sha(encoder) + ", these artifacts' is " +
                     short_sha(encoder_sha) + "); write it again with escnet-export vocab");
  }
  if (tok != manifest.tokenizer_sha256) {
    throw FieldError("tokenizer_sha256: written with another tokenizer vocabulary (" + short_sha(tok) + ", these artifacts' is " +
                     short_sha(manifest.tokenizer_sha256) + "); write it again with escnet-export vocab");
  }
  if (context != manifest.context_length) {
    throw FieldError("context_length: " + std::to_string(context) + " tokens, these artifacts' is " + std::to_string(manifest.context_length));
  }
}

// T distinct (case- and space-insensitive), non-blank names, covered by class_names_sha256 when given.
void read_names(const json& meta, Vocabulary& v, std::size_t t) {
  const json names = meta_json(meta, "class_names");
  if (!names.is_array() || names.size() != t) throw FieldError("class_names: expected a JSON list of " + std::to_string(t) + " names (one per embedding)");
  for (std::size_t i = 0; i < names.size(); ++i) v.names.push_back(text(names[i], "class_names[" + std::to_string(i) + "]"));
  check_class_names(v.names, "class_names");
  if (const json* digest = optional_member(meta, "class_names_sha256", "class_names_sha256")) {
    const std::string& raw = meta.at("class_names").get_ref<const std::string&>();
    if (!digest->is_string() || sha256_hex(raw.data(), raw.size()) != digest->get<std::string>()) {
      throw FieldError("class_names: do not match class_names_sha256 (a damaged vocabulary file)");
    }
  }
  const json colours = meta_json(meta, "colours");
  if (!colours.is_array() || colours.size() != t) throw FieldError("colours: expected " + std::to_string(t) + " colours [r, g, b] of whole numbers 0..255");
  for (std::size_t i = 0; i < colours.size(); ++i) {
    const std::string at = "colours[" + std::to_string(i) + "]";
    const json& rgb = array(colours[i], at, 3, 3);
    v.colours.push_back({});
    for (int c = 0; c < 3; ++c) v.colours.back()[c] = static_cast<uint8_t>(whole(rgb[c], at + "[" + std::to_string(c) + "]", 0, 255));
  }
}

// The tensor's bytes, located with overflow-safe checks: shape bounded, offsets ordered and inside the data.
const char* embeddings_of(const json& header, const std::vector<char>& bytes, uint64_t n, Vocabulary& v, uint64_t& count) {
  const json& spec = member(header, kTensor, kTensor);
  if (!spec.is_object() || spec.value("dtype", json()) != "F32") throw FieldError("class_embeddings: expected a float32 (F32) tensor (T, P, D)");
  const json& shape = member(spec, "shape", "class_embeddings.shape");
  if (!shape.is_array() || shape.size() != 3) throw FieldError("class_embeddings: expected a shape (T, P, D) of 3 sizes, got " + quote(shape));
  const int64_t t = whole(shape[0], "class_embeddings.shape[0]", 1, kMaxClasses);
  const int64_t p = whole(shape[1], "class_embeddings.shape[1]", 1, kMaxTemplates);
  const int64_t d = whole(shape[2], "class_embeddings.shape[2]", 1, kMaxDim);
  const json& offsets = member(spec, "data_offsets", "data_offsets");
  if (!offsets.is_array() || offsets.size() != 2 || !offsets[0].is_number_unsigned() || !offsets[1].is_number_unsigned()) {
    throw FieldError("data_offsets: expected [begin, end], got " + quote(offsets));
  }
  const uint64_t begin = offsets[0].get<uint64_t>(), end = offsets[1].get<uint64_t>();
  const uint64_t room = bytes.size() - 8 - n;  // n <= size - 8 was checked
  count = static_cast<uint64_t>(t) * static_cast<uint64_t>(p) * static_cast<uint64_t>(d);  // < 2^56: no wrap
  if (begin > end || end > room || end - begin != 4 * count) {
    throw FieldError("data_offsets: " + quote(offsets) + " is not " + std::to_string(4 * count) + " bytes within the " +
                     std::to_string(room) + " after the header");
  }
  v.templates = p;
  v.dim = d;
  return bytes.data() + 8 + n + begin;
}

// Every (class, template) row finite and of unit length (within 1e-2), as the text encoder writes it.
void check_values(const Vocabulary& v) {
  for (std::size_t row = 0; row < v.embeddings.size() / static_cast<std::size_t>(v.dim); ++row) {
    double norm = 0;
    bool finite = true;
    for (int64_t k = 0; k < v.dim; ++k) {
      const float x = v.embeddings[row * v.dim + k];
      finite = finite && std::isfinite(x);
      norm += double(x) * x;
    }
    norm = std::sqrt(norm);
    if (!finite || !(std::abs(norm - 1.0) <= 1e-2)) {
      const std::string problem = !finite ? "non-finite values" : norm == 0 ? "an all-zero vector" : "norm " + std::to_string(norm) + ", expected 1";
      throw FieldError("class_embeddings: class " + std::to_string(row / v.templates) + ", template " + std::to_string(row % v.templates) +
                       ": " + problem + " (not a text embedding)");
    }
  }
}

json metadata_of(const json& header) {
  const json& meta = member(header, "__metadata__", "__metadata__");
  bool strings = meta.is_object();
  if (strings) {
    for (const auto& item : meta.items()) strings = strings && item.value().is_string();
  }
  if (!strings) throw FieldError("__metadata__: expected an object of strings");
  const std::string format = meta.value("format", "");
  if (format != kVocabFormat) throw FieldError(std::string("format: expected '") + kVocabFormat + "' (not an escnet vocabulary file), got " + quote(json(format)));
  const int64_t version = whole_text(meta.value("format_version", ""), "format_version", 0, 999999);
  if (version > kVocabFormatVersion) {
    throw FieldError("format_version: " + std::to_string(version) + " is newer than this runtime supports (" + std::to_string(kVocabFormatVersion) + ")");
  }
  return meta;
}

}  // namespace

Vocabulary parse_vocabulary(const std::vector<char>& bytes, const Manifest& manifest, const std::string& encoder_sha,
                            int64_t templates, int64_t dim) {
  uint64_t n = 0;
  const json header = header_of(bytes, n);
  if (!header.is_object()) throw FieldError("header: expected a JSON object");
  const json meta = metadata_of(header);
  Vocabulary v;
  uint64_t count = 0;
  const char* data = embeddings_of(header, bytes, n, v, count);
  read_names(meta, v, static_cast<std::size_t>(count / (v.templates * v.dim)));
  const json listed = meta_json(meta, "templates");
  if (!listed.is_array() || listed.size() != static_cast<std::size_t>(v.templates)) {
    throw FieldError("templates: expected a JSON list of " + std::to_string(v.templates) + " templates (one per embedding)");
  }
  const std::string want = text(member(meta, "embeddings_sha256", "embeddings_sha256"), "embeddings_sha256");
  if (sha256_hex(data, 4 * count) != want) throw FieldError("embeddings_sha256: the embeddings do not match it (a damaged vocabulary file)");
  v.embeddings.resize(count);
  std::memcpy(v.embeddings.data(), data, 4 * count);  // little-endian float32, as x86 and ARM hosts store it
  check_values(v);
  check_identity(meta, manifest, encoder_sha);
  if (listed != json(manifest.templates)) throw FieldError("templates: written for other templates than these artifacts'");
  if (v.templates != templates || v.dim != dim) {
    throw FieldError("class_embeddings: embeddings of (P, D) = (" + std::to_string(v.templates) + ", " + std::to_string(v.dim) +
                     "), the decoder takes (" + std::to_string(templates) + ", " + std::to_string(dim) + ")");
  }
  return v;
}

Vocabulary read_vocabulary(const std::filesystem::path& file, const Manifest& manifest, const std::string& text_encoder_file,
                           int64_t templates, int64_t dim) {
  const std::string where = file.string();
  std::error_code ec;
  if (!std::filesystem::exists(file, ec)) throw Error(where + ": no such vocabulary file");
  const auto bytes = read_file(file, "the vocabulary file", kMaxFile);
  try {
    return parse_vocabulary(bytes, manifest, manifest.files.at(text_encoder_file), templates, dim);
  } catch (const FieldError& e) {
    throw Error(where + ": " + e.what());
  } catch (const json::exception& e) {
    throw Error(where + ": incomplete vocabulary metadata (" + std::string(e.what()).substr(0, 200) + ")");
  }
}

bool is_vocabulary_file(const std::filesystem::path& file) {
  try {  // the length and the header only, not the embeddings
    std::ifstream in(file, std::ios::binary);
    std::vector<char> bytes(8);
    if (!in.read(bytes.data(), 8)) return false;
    uint64_t n = 0;
    for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<uint8_t>(bytes[i]);
    if (n > kMaxHeader) return false;
    bytes.resize(8 + n);
    if (!in.read(bytes.data() + 8, static_cast<std::streamsize>(n))) return false;
    const json header = header_of(bytes, n);
    return header.is_object() && header.contains("__metadata__") && header["__metadata__"].is_object() &&
           header["__metadata__"].value("format", "") == kVocabFormat;
  } catch (const std::exception&) {
    return false;
  }
}

}  // namespace escnet::detail
