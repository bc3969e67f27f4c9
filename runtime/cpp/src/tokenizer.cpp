#include "tokenizer.hpp"

#include <unicode/locid.h>
#include <unicode/regex.h>
#include <unicode/uchar.h>
#include <unicode/unistr.h>
#include <zlib.h>

#include <sstream>

#include "escnet/segmenter.hpp"

namespace escnet::detail {
namespace {

constexpr int kMerges = 49152 - 256 - 2;  // tokenizer.py NUM_MERGES
constexpr std::size_t kMaxVocab = 16u << 20;
const char* const kEndOfWord = "</w>";
const char* const kSpecials[2] = {"<start_of_text>", "<end_of_text>"};

std::string utf8(UChar32 c) {
  std::string out;
  icu::UnicodeString(c).toUTF8String(out);
  return out;
}

std::string inflate_gzip(const std::vector<char>& gz, const std::string& where) {
  z_stream z{};
  if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK) throw Error(where + ": unreadable BPE vocabulary (zlib)");
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(gz.data()));
  z.avail_in = static_cast<uInt>(gz.size());
  std::string out(1 << 20, '\0');
  int rc = Z_OK;
  while (rc == Z_OK) {
    if (out.size() - z.total_out < (1 << 16)) {
      if (out.size() >= kMaxVocab + (1 << 16)) {
        inflateEnd(&z);
        throw Error(where + ": the BPE vocabulary inflates to more than 16 MiB (CLIP's is 1.3 MiB); refused");
      }
      out.resize(out.size() * 2);
    }
    z.next_out = reinterpret_cast<Bytef*>(&out[z.total_out]);
    z.avail_out = static_cast<uInt>(out.size() - z.total_out);
    rc = inflate(&z, Z_NO_FLUSH);
  }
  const std::size_t n = z.total_out;
  inflateEnd(&z);
  if (rc != Z_STREAM_END) throw Error(where + ": unreadable BPE vocabulary (damaged gzip)");
  if (n > kMaxVocab) throw Error(where + ": the BPE vocabulary inflates to more than 16 MiB (CLIP's is 1.3 MiB); refused");
  out.resize(n);
  return out;
}

bool python_space(UChar32 c) { return u_isUWhiteSpace(c) || (c >= 0x1c && c <= 0x1f); }

// html.unescape for the entities class names hold in practice (numeric, and the five of XML).
std::string unescape(const std::string& s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '&') {
      out += s[i];
      continue;
    }
    const std::size_t semi = s.find(';', i);
    const std::string name = semi == std::string::npos ? "" : s.substr(i + 1, semi - i - 1);
    static const std::pair<const char*, const char*> named[] = {{"amp", "&"}, {"lt", "<"}, {"gt", ">"}, {"quot", "\""}, {"apos", "'"}};
    std::string value;
    for (const auto& [k, v] : named) {
      if (name == k) value = v;
    }
    if (value.empty() && name.size() >= 2 && name.size() <= 8 && name[0] == '#') {
      const bool hex = name[1] == 'x' || name[1] == 'X';
      const std::string digits = name.substr(hex ? 2 : 1);
      const bool ok = !digits.empty() && digits.find_first_not_of(hex ? "0123456789abcdefABCDEF" : "0123456789") == std::string::npos;
      const long code = ok ? std::stol(digits, nullptr, hex ? 16 : 10) : -1;
      if (code > 0 && code <= 0x10FFFF && !(code >= 0xD800 && code <= 0xDFFF)) value = utf8(static_cast<UChar32>(code));
    }
    if (value.empty()) {
      out += '&';
      continue;
    }
    out += value;
    i = semi;
  }
  return out;
}

}  // namespace

struct ClipTokenizer::Split {
  std::unique_ptr<icu::RegexPattern> pattern;
};

std::string clean_text(const std::string& text) {
  const std::string unescaped = unescape(unescape(text));
  icu::UnicodeString s = icu::UnicodeString::fromUTF8(unescaped);
  icu::UnicodeString joined;
  bool pending = false;
  for (int32_t i = 0; i < s.length(); i = s.moveIndex32(i, 1)) {
    const UChar32 c = s.char32At(i);
    if (python_space(c)) {
      pending = !joined.isEmpty();
      continue;
    }
    if (pending) joined.append(static_cast<UChar>(' '));
    pending = false;
    joined.append(c);
  }
  joined.toLower(icu::Locale::getRoot());
  std::string out;
  joined.toUTF8String(out);
  return out;
}

ClipTokenizer::ClipTokenizer(const std::vector<char>& gz, int context_length, const std::string& where)
    : context_(context_length), split_(std::make_unique<Split>()) {
  if (context_ < 2) throw Error("context_length is " + std::to_string(context_) + "; expected at least 2");
  std::istringstream lines(inflate_gzip(gz, where));
  std::string line;
  std::getline(lines, line);  // a version header
  std::vector<std::pair<std::string, std::string>> merges;
  while (static_cast<int>(merges.size()) < kMerges && std::getline(lines, line)) {
    std::istringstream parts(line);
    std::string a, b, extra;
    if (!(parts >> a >> b) || (parts >> extra)) throw Error(where + ": expected " + std::to_string(kMerges) + " BPE merges of two symbols each");
    merges.emplace_back(a, b);
  }
  if (static_cast<int>(merges.size()) != kMerges) throw Error(where + ": expected " + std::to_string(kMerges) + " BPE merges of two symbols each");
  std::vector<int> order;  // tokenizer.py byte_alphabet: printable bytes first, then the rest, each in byte order
  int extra = 0;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    bytes_[b] = utf8(printable ? b : 256 + extra++);
  }
  for (int pass = 0; pass < 2; ++pass) {
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      if (printable == (pass == 0)) order.push_back(b);
    }
  }
  int64_t id = 0;
  for (int b : order) encoder_.emplace(bytes_[b], id++);
  for (int b : order) encoder_.emplace(bytes_[b] + kEndOfWord, id++);
  for (std::size_t r = 0; r < merges.size(); ++r) {
    encoder_.emplace(merges[r].first + merges[r].second, id++);
    ranks_.emplace(merges[r].first + " " + merges[r].second, static_cast<int>(r));
  }
  sot_ = id++;
  eot_ = id++;
  encoder_[kSpecials[0]] = sot_;
  encoder_[kSpecials[1]] = eot_;
  UErrorCode status = U_ZERO_ERROR;
  const icu::UnicodeString pattern = icu::UnicodeString::fromUTF8(
      "<start_of_text>|<end_of_text>|'s|'t|'re|'ve|'m|'ll|'d|[\\p{L}]+|[\\p{N}]|[^\\s\\p{L}\\p{N}]+");
  split_->pattern.reset(icu::RegexPattern::compile(pattern, UREGEX_CASE_INSENSITIVE, status));
  if (U_FAILURE(status)) throw Error(std::string("ICU could not compile CLIP's word pattern (") + u_errorName(status) + ")");
}

ClipTokenizer::~ClipTokenizer() = default;

std::vector<int64_t> ClipTokenizer::merge(const std::string& word) const {
  if (word == kSpecials[0] || word == kSpecials[1]) return {encoder_.at(word)};
  std::vector<std::string> parts;
  const icu::UnicodeString u = icu::UnicodeString::fromUTF8(word);
  for (int32_t i = 0; i < u.length(); i = u.moveIndex32(i, 1)) parts.push_back(utf8(u.char32At(i)));
  parts.back() += kEndOfWord;
  while (parts.size() > 1) {
    int best = -1;
    std::size_t at = 0;
    for (std::size_t i = 0; i + 1 < parts.size(); ++i) {
      auto it = ranks_.find(parts[i] + " " + parts[i + 1]);
      if (it != ranks_.end() && (best < 0 || it->second < best)) best = it->second, at = i;
    }
    if (best < 0) break;
    const std::string a = parts[at], b = parts[at + 1];
    std::vector<std::string> merged;
    for (std::size_t i = 0; i < parts.size(); ++i) {
      if (i + 1 < parts.size() && parts[i] == a && parts[i + 1] == b) {
        merged.push_back(a + b);
        ++i;
      } else {
        merged.push_back(parts[i]);
      }
    }
    parts = std::move(merged);
  }
  std::vector<int64_t> ids;
  for (const auto& p : parts) ids.push_back(encoder_.at(p));
  return ids;
}

std::vector<int64_t> ClipTokenizer::encode(const std::string& text) const {
  const icu::UnicodeString cleaned = icu::UnicodeString::fromUTF8(clean_text(text));
  UErrorCode status = U_ZERO_ERROR;
  std::unique_ptr<icu::RegexMatcher> m(split_->pattern->matcher(cleaned, status));
  if (U_FAILURE(status)) throw Error(std::string("ICU could not match CLIP's word pattern (") + u_errorName(status) + ")");
  std::vector<int64_t> ids;
  while (m->find(status) && U_SUCCESS(status)) {
    std::string word;
    m->group(status).toUTF8String(word);
    std::string mapped;
    for (unsigned char byte : word) mapped += bytes_[byte];
    const auto part = merge(mapped);
    ids.insert(ids.end(), part.begin(), part.end());
  }
  return ids;
}

std::vector<int64_t> ClipTokenizer::tokenize(const std::string& text, bool* truncated) const {
  std::vector<int64_t> body = encode(text);
  std::vector<int64_t> ids{sot_};
  ids.insert(ids.end(), body.begin(), body.end());
  ids.push_back(eot_);
  const bool cut = ids.size() > static_cast<std::size_t>(context_);
  if (cut) {
    ids.resize(context_);
    ids.back() = eot_;
  }
  ids.resize(context_, 0);
  if (truncated) *truncated = cut;
  return ids;
}

}  // namespace escnet::detail
