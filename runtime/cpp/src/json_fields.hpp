// Reading the fields of a JSON document (nlohmann-json) with one-line errors that name the field
// as runtime/escnet_runtime/manifest_checks.py does: "preprocess.mean[1]: expected a number, got \"x\"".
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "escnet/segmenter.hpp"

namespace escnet::detail {

// One field is wrong; what() is "field: what was expected, what was found" (callers prefix the file).
class FieldError : public Error {
 public:
  using Error::Error;
};

// A value quoted in an error: JSON text, at most 60 characters.
std::string quote(const nlohmann::json& value);

// obj[key]; FieldError "name: missing" when absent, "name: expected an object" when obj is none.
const nlohmann::json& member(const nlohmann::json& obj, const std::string& key, const std::string& name);
const nlohmann::json* optional_member(const nlohmann::json& obj, const std::string& key, const std::string& name);

// A whole number (not a bool, not 2.0, not a string) in [lo, hi].
int64_t whole(const nlohmann::json& v, const std::string& name, int64_t lo, int64_t hi);
// A finite number; with `positive`, > 0.
double number(const nlohmann::json& v, const std::string& name, bool positive = false);
// A string; with `non_empty`, at least one character.
std::string text(const nlohmann::json& v, const std::string& name, bool non_empty = false);
// An array of lo..hi items.
const nlohmann::json& array(const nlohmann::json& v, const std::string& name, std::size_t lo, std::size_t hi);
// 64 lower-case hex digits.
std::string sha256_field(const nlohmann::json& v, const std::string& name);
// A path a manifest names: relative, '/' separated, no empty / . / .. part, no drive, no '\' or NUL.
void check_relative(const std::string& path, const std::string& name);
// A whole number written as a string ("1"), as safetensors metadata stores numbers.
int64_t whole_text(const std::string& s, const std::string& name, int64_t lo, int64_t hi);

}  // namespace escnet::detail
