#include "json_fields.hpp"

#include <cctype>
#include <cmath>
#include <limits>

namespace escnet::detail {
using nlohmann::json;

namespace {
constexpr std::size_t kShort = 60;

std::string range(int64_t lo, int64_t hi) {
  if (hi == std::numeric_limits<int64_t>::max()) return ">= " + std::to_string(lo);
  return "in " + std::to_string(lo) + ".." + std::to_string(hi);
}
}  // namespace

std::string quote(const json& value) {
  std::string s = value.dump(-1, ' ', false, json::error_handler_t::replace);
  if (s.size() > kShort) s = s.substr(0, kShort - 3) + "...";
  return s;
}

const json& member(const json& obj, const std::string& key, const std::string& name) {
  const json* v = optional_member(obj, key, name);
  if (!v) throw FieldError(name + ": missing");
  return *v;
}

const json* optional_member(const json& obj, const std::string& key, const std::string& name) {
  if (!obj.is_object()) {
    const std::size_t dot = name.rfind('.');
    const std::string parent = dot == std::string::npos ? "(root)" : name.substr(0, dot);
    throw FieldError(parent + ": expected an object, got " + quote(obj));
  }
  auto it = obj.find(key);
  return it == obj.end() ? nullptr : &*it;
}

int64_t whole(const json& v, const std::string& name, int64_t lo, int64_t hi) {
  const bool integral = v.is_number_integer() && !(v.is_number_unsigned() && v.get<uint64_t>() > uint64_t(INT64_MAX));
  if (!integral || v.get<int64_t>() < lo || v.get<int64_t>() > hi) {
    throw FieldError(name + ": expected a whole number " + range(lo, hi) + ", got " + quote(v));
  }
  return v.get<int64_t>();
}

double number(const json& v, const std::string& name, bool positive) {
  if (!v.is_number() || !std::isfinite(v.get<double>()) || (positive && !(v.get<double>() > 0))) {
    throw FieldError(name + ": expected " + (positive ? "a number > 0" : "a finite number") + ", got " + quote(v));
  }
  return v.get<double>();
}

std::string text(const json& v, const std::string& name, bool non_empty) {
  if (!v.is_string() || (non_empty && v.get_ref<const std::string&>().empty())) {
    throw FieldError(name + ": expected " + (non_empty ? "a non-empty string" : "a string") + ", got " + quote(v));
  }
  return v.get<std::string>();
}

const json& array(const json& v, const std::string& name, std::size_t lo, std::size_t hi) {
  if (!v.is_array() || v.size() < lo || v.size() > hi) {
    const std::string want = lo == hi ? std::to_string(lo) + " items" : std::to_string(lo) + ".." + std::to_string(hi) + " items";
    throw FieldError(name + ": expected a list of " + want + ", got " + (v.is_array() ? std::to_string(v.size()) : quote(v)));
  }
  return v;
}

std::string sha256_field(const json& v, const std::string& name) {
  const bool ok = v.is_string() && v.get_ref<const std::string&>().size() == 64 &&
                  v.get_ref<const std::string&>().find_first_not_of("0123456789abcdef") == std::string::npos;
  if (!ok) throw FieldError(name + ": expected a sha256 (64 lower-case hex digits), got " + quote(v));
  return v.get<std::string>();
}

void check_relative(const std::string& path, const std::string& name) {
  bool bad = path.empty() || path.find('\\') != std::string::npos || path.find('\0') != std::string::npos ||
             path[0] == '/' || (path.size() >= 2 && path[1] == ':' && std::isalpha(static_cast<unsigned char>(path[0])));
  std::size_t start = 0;
  while (!bad && start <= path.size()) {
    std::size_t end = path.find('/', start);
    if (end == std::string::npos) end = path.size();
    const std::string part = path.substr(start, end - start);
    bad = part.empty() || part == "." || part == "..";
    start = end + 1;
  }
  if (bad) throw FieldError(name + ": " + quote(json(path)) + " is not a relative path inside the artifacts folder");
}

int64_t whole_text(const std::string& s, const std::string& name, int64_t lo, int64_t hi) {
  const bool digits = !s.empty() && s.size() <= 18 && s.find_first_not_of("0123456789") == std::string::npos;
  if (!digits || std::stoll(s) < lo || std::stoll(s) > hi) {
    throw FieldError(name + ": expected a whole number " + range(lo, hi) + ", got " + quote(json(s)));
  }
  return std::stoll(s);
}

}  // namespace escnet::detail
