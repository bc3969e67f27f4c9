// manifest.json -> Manifest, every field checked as runtime/escnet_runtime/manifest_checks.py and
// its JSON Schema check them (the contract vectors in tests/support/contract_vectors hold both to
// the same cases); each failure one line naming the field.
#include <cctype>
#include <cmath>
#include <limits>
#include <set>

#include "json_fields.hpp"
#include "manifest.hpp"

namespace escnet::detail {
using nlohmann::json;

namespace {

const char* const kArtifactsFormat = "escnet-artifacts";  // runtime/contract.py FORMAT
const char* const kBakedFormat = "escnet-baked";          // runtime/contract.py BAKED_FORMAT
const char* const kResize = "bilinear, align_corners=False, no antialias";
const char* const kLayout = "NCHW RGB";
const std::set<std::string> kDtypes = {"float32", "float16", "int64", "uint8", "int32"};  // contract.DTYPES
constexpr int64_t kMaxSize = 1 << 20;  // any fixed tensor axis, image size, chunk or canvas

bool graph_name_ok(const std::string& s) {
  if (s.empty() || s[0] == '-') return false;
  for (char c : s) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-')) return false;
  }
  return true;
}

TensorSpec tensor_spec(const json& j, const std::string& at) {
  TensorSpec t{text(member(j, "name", at + ".name"), at + ".name", true), "", {}, {}};
  t.dtype = text(member(j, "dtype", at + ".dtype"), at + ".dtype");
  if (!kDtypes.count(t.dtype)) throw FieldError(at + ".dtype: expected one of float32, float16, int64, uint8, int32");
  const json& shape = array(member(j, "shape", at + ".shape"), at + ".shape", 0, 8);
  for (std::size_t i = 0; i < shape.size(); ++i) {
    const json& d = shape[i];
    const std::string name = at + ".shape[" + std::to_string(i) + "]";
    if (d.is_string() && !d.get_ref<const std::string&>().empty()) {
      t.shape.push_back(-1);
      t.dim_names.push_back(d.get<std::string>());
    } else if (d.is_number_integer()) {
      t.shape.push_back(whole(d, name, 1, kMaxSize));
      t.dim_names.emplace_back();
    } else {
      throw FieldError(name + ": expected a positive size or a dynamic axis name, got " + quote(d));
    }
  }
  return t;
}

GraphSpec graph_spec(const std::string& name, const json& j, const std::map<std::string, std::string>& files) {
  const std::string at = "graphs." + name;
  if (!graph_name_ok(name)) throw FieldError("graphs: expected a graph name of letters, digits, _ and -, got " + quote(json(name)));
  GraphSpec g{name, name + ".onnx", {}, {}};
  if (const json* file = optional_member(j, "file", at + ".file")) {
    if (text(*file, at + ".file") != g.file) throw FieldError(at + ".file: expected \"" + g.file + "\", got " + quote(*file));
  }
  if (!files.count(g.file)) throw FieldError("files: the graph file \"" + g.file + "\" is not listed (every graph must be hashed)");
  for (const char* kind : {"inputs", "outputs"}) {
    const json& list = array(member(j, kind, at + "." + kind), at + "." + kind, 1, 64);
    std::set<std::string> seen;
    for (std::size_t i = 0; i < list.size(); ++i) {
      const std::string where = at + "." + kind + "[" + std::to_string(i) + "]";
      TensorSpec t = tensor_spec(list[i], where);
      if (!seen.insert(t.name).second) throw FieldError(where + ".name: \"" + t.name + "\" is listed twice");
      (kind[0] == 'i' ? g.inputs : g.outputs).push_back(std::move(t));
    }
  }
  return g;
}

Preprocess preprocess(const json& j) {
  if (text(member(j, "resize", "preprocess.resize"), "preprocess.resize") != kResize) {
    throw FieldError(std::string("preprocess.resize: this runtime implements '") + kResize + "', got " + quote(j.at("resize")));
  }
  if (text(member(j, "layout", "preprocess.layout"), "preprocess.layout") != kLayout) {
    throw FieldError(std::string("preprocess.layout: this runtime implements '") + kLayout + "', got " + quote(j.at("layout")));
  }
  Preprocess p;
  p.image_size = static_cast<int>(whole(member(j, "image_size", "preprocess.image_size"), "preprocess.image_size", 1, 8192));
  const json& mean = array(member(j, "mean", "preprocess.mean"), "preprocess.mean", 3, 3);
  const json& sd = array(member(j, "std", "preprocess.std"), "preprocess.std", 3, 3);
  for (int c = 0; c < 3; ++c) {
    const std::string i = "[" + std::to_string(c) + "]";
    p.mean[c] = static_cast<float>(number(mean[c], "preprocess.mean" + i));
    p.std[c] = static_cast<float>(number(sd[c], "preprocess.std" + i, true));
    if (!(p.std[c] > 0) || !std::isfinite(p.mean[c])) throw FieldError("preprocess.std" + i + ": out of float32 range");
  }
  const double scale = number(member(j, "scale", "preprocess.scale"), "preprocess.scale", true);
  const double divisor = std::round(1.0 / scale);
  if (!(divisor >= 1 && divisor <= 65535)) {
    throw FieldError("preprocess.scale: expected 1 / (the image's maximum value), got " + quote(j.at("scale")));
  }
  p.divisor = static_cast<float>(divisor);
  return p;
}

int format_version(const json& j, int supported) {
  const json& v = member(j, "format_version", "format_version");
  const int64_t version = whole(v, "format_version", 1, std::numeric_limits<int64_t>::max());
  if (version > supported) {
    throw FieldError("format_version: " + std::to_string(version) + " is newer than this runtime supports (" +
                     std::to_string(supported) + "); upgrade the escnet C++ runtime");
  }
  return static_cast<int>(version);
}

void read_files(const json& j, Manifest& m) {
  const json& files = member(j, "files", "files");
  if (!files.is_object() || files.empty()) throw FieldError("files: expected an object of file path -> sha256 (at least one), got " + quote(files));
  for (const auto& [name, sha] : files.items()) {
    check_relative(name, "files");
    m.files.emplace(name, sha256_field(sha, "files." + name));
  }
}

void read_graphs(const json& j, Manifest& m) {
  const json& graphs = member(j, "graphs", "graphs");
  if (!graphs.is_object() || graphs.empty()) throw FieldError("graphs: expected an object of graphs by name (at least one), got " + quote(graphs));
  for (const auto& [name, g] : graphs.items()) m.graphs.emplace(name, graph_spec(name, g, m.files));
}

}  // namespace

void check_artifacts(const json& j, Manifest& m);  // manifest_contract.cpp
void check_baked(const json& j, Manifest& m);      // manifest_contract.cpp

Manifest parse_manifest(const std::vector<char>& bytes, const std::string& where) {
  json j;
  try {
    j = json::parse(bytes.begin(), bytes.end());
  } catch (const json::exception& e) {
    throw Error(where + ": unreadable manifest (not JSON: " + std::string(e.what()).substr(0, 200) + ")");
  }
  Manifest m;
  const json* format = j.is_object() ? optional_member(j, "format", "format") : nullptr;
  const std::string got = format && format->is_string() ? format->get<std::string>() : (format ? quote(*format) : "");
  if (got != kArtifactsFormat && got != kBakedFormat) throw Error(where + ": not an escnet manifest (format '" + got + "')");
  m.baked = got == kBakedFormat;
  try {
    format_version(j, m.baked ? kBakedFormatVersion : kArtifactsFormatVersion);
    read_files(j, m);
    read_graphs(j, m);
    m.preprocess = preprocess(member(j, "preprocess", "preprocess"));
    if (m.baked) {
      check_baked(j, m);
    } else {
      check_artifacts(j, m);
    }
  } catch (const FieldError& e) {
    throw Error(where + (m.baked ? " (an escnet-baked manifest, by its format)" : "") + ": " + e.what());
  } catch (const json::exception& e) {  // the checks above should leave none; still one line
    throw Error(where + ": manifest is incomplete (" + std::string(e.what()).substr(0, 200) + ")");
  }
  return m;
}

}  // namespace escnet::detail
