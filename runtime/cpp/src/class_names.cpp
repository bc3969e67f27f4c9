#include "class_names.hpp"

#include <unicode/locid.h>
#include <unicode/uchar.h>
#include <unicode/unistr.h>

#include <map>

#include "json_fields.hpp"
#include "manifest.hpp"

namespace escnet::detail {
namespace {

// Python's name.strip().lower(): Unicode white space off both ends, full lower-casing (ICU).
std::string key_of(const std::string& name) {
  icu::UnicodeString s = icu::UnicodeString::fromUTF8(name);
  int32_t begin = 0, end = s.length();
  while (begin < end && u_isUWhiteSpace(s.char32At(begin))) begin = s.moveIndex32(begin, 1);
  while (end > begin && u_isUWhiteSpace(s.char32At(s.moveIndex32(end, -1)))) end = s.moveIndex32(end, -1);
  icu::UnicodeString key(s, begin, end - begin);
  key.toLower(icu::Locale::getRoot());
  std::string out;
  key.toUTF8String(out);
  return out;
}

}  // namespace

void check_class_names(const std::vector<std::string>& names, const std::string& field) {
  if (names.empty()) throw FieldError(field + ": the class list is empty; expected at least one class name");
  if (names.size() > static_cast<std::size_t>(kMaxClasses)) {
    throw FieldError(field + ": " + std::to_string(names.size()) + " class names; at most " + std::to_string(kMaxClasses) + " are supported");
  }
  std::map<std::string, std::size_t> seen;
  for (std::size_t i = 0; i < names.size(); ++i) {
    const std::string key = key_of(names[i]);
    if (key.empty()) throw FieldError(field + ": class name " + std::to_string(i + 1) + " is blank; expected a non-blank string");
    auto [it, fresh] = seen.emplace(key, i);
    if (!fresh) {
      throw FieldError(field + ": duplicate class name " + quote(nlohmann::json(names[i])) + " (names " + std::to_string(it->second + 1) +
                       " and " + std::to_string(i + 1) + "); expected distinct names");
    }
  }
}

}  // namespace escnet::detail
