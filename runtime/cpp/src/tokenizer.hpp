// OpenAI CLIP's byte-level BPE tokenizer: runtime/escnet_runtime/tokenizer.py in C++, over the
// artifacts' own bpe_simple_vocab_16e6.txt.gz (verified bytes), with ICU for the Unicode classes
// (letters, numbers, white space) and lower-casing.
//
// Cleaning differs from Python's in one place: Python repairs mojibake with ftfy.fix_text and
// unescapes every HTML5 entity; here only &amp; &lt; &gt; &quot; &apos; and numeric entities are
// unescaped and no repair is made. Names that ftfy would change (mojibake such as "cafÃ©", some
// compatibility characters) or that hold other named entities get other ids (docs/cpp.md).
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

namespace escnet::detail {

class ClipTokenizer {
 public:
  // gz: the gzipped merges file; Error when it does not inflate, inflates past 16 MiB, or is not CLIP's.
  ClipTokenizer(const std::vector<char>& gz, int context_length, const std::string& where);
  ~ClipTokenizer();
  // Text -> BPE ids, without start/end of text and without truncation.
  std::vector<int64_t> encode(const std::string& text) const;
  // context_length ids: start, the text's ids (cut to fit, the last replaced by end of text), end, zeros.
  std::vector<int64_t> tokenize(const std::string& text, bool* truncated = nullptr) const;
  int context_length() const { return context_; }

 private:
  std::vector<int64_t> merge(const std::string& word) const;
  int context_;
  std::array<std::string, 256> bytes_;  // byte -> its printable symbol (UTF-8)
  std::unordered_map<std::string, int64_t> encoder_;
  std::unordered_map<std::string, int> ranks_;  // "a b" -> merge rank
  int64_t sot_ = 0, eot_ = 0;
  struct Split;
  std::unique_ptr<Split> split_;
};

// runtime/escnet_runtime/tokenizer.py clean_text (without ftfy; see above).
std::string clean_text(const std::string& text);

}  // namespace escnet::detail
