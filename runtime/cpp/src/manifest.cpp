#include "manifest.hpp"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "escnet/segmenter.hpp"
#include "sha256.hpp"

namespace escnet::detail {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

const char* const kArtifactsFormat = "escnet-artifacts";  // runtime/contract.py FORMAT
const char* const kBakedFormat = "escnet-baked";          // runtime/contract.py BAKED_FORMAT
const char* const kManifestFile = "manifest.json";
const char* const kResize = "bilinear, align_corners=False, no antialias";
const char* const kLayout = "NCHW RGB";

TensorSpec tensor_spec(const json& j) {
  TensorSpec t{j.at("name").get<std::string>(), j.at("dtype").get<std::string>(), {}, {}};
  for (const auto& d : j.at("shape")) {
    t.shape.push_back(d.is_number_integer() ? d.get<int64_t>() : -1);
    t.dim_names.push_back(d.is_string() ? d.get<std::string>() : "");
  }
  return t;
}

GraphSpec graph_spec(const std::string& name, const json& j) {
  GraphSpec g{name, j.at("file").get<std::string>(), {}, {}};
  for (const auto& t : j.at("inputs")) g.inputs.push_back(tensor_spec(t));
  for (const auto& t : j.at("outputs")) g.outputs.push_back(tensor_spec(t));
  return g;
}

Preprocess preprocess(const json& j) {
  if (j.at("resize").get<std::string>() != kResize || j.at("layout").get<std::string>() != kLayout) {
    throw Error("manifest preprocessing '" + j.at("resize").get<std::string>() + "' / '" +
                j.at("layout").get<std::string>() + "' is not the one this runtime implements");
  }
  Preprocess p;
  p.image_size = j.at("image_size").get<int>();
  for (int c = 0; c < 3; ++c) {
    p.mean[c] = j.at("mean").at(c).get<float>();
    p.std[c] = j.at("std").at(c).get<float>();
  }
  p.divisor = static_cast<float>(std::lround(1.0 / j.at("scale").get<double>()));
  return p;
}

Manifest parse(const json& j, const std::string& where) {
  Manifest m;
  const std::string format = j.value("format", "");
  if (format != kArtifactsFormat && format != kBakedFormat) {
    throw Error(where + ": not an escnet manifest (format '" + format + "')");
  }
  m.baked = format == kBakedFormat;
  const int supported = m.baked ? kBakedFormatVersion : kArtifactsFormatVersion;
  const json& version = j.at("format_version");
  if (!version.is_number_integer() || version.get<int>() > supported) {
    throw Error(where + ": manifest format version " + version.dump() + " is newer than this runtime supports (" +
                std::to_string(supported) + "); upgrade the escnet C++ runtime");
  }
  for (const auto& [name, g] : j.at("graphs").items()) m.graphs.emplace(name, graph_spec(name, g));
  for (const auto& [name, sha] : j.at("files").items()) m.files.emplace(name, sha.get<std::string>());
  m.preprocess = preprocess(j.at("preprocess"));
  if (m.baked) {
    for (const auto& c : j.at("classes")) {
      m.class_names.push_back(c.at("name").get<std::string>());
      const auto& rgb = c.at("colour");
      m.colours.push_back({rgb.at(0).get<uint8_t>(), rgb.at(1).get<uint8_t>(), rgb.at(2).get<uint8_t>()});
    }
    return m;
  }
  m.decoder_steps = j.value("decoder_steps", std::vector<std::string>{});
  if (j.contains("class_chunk") && j.at("class_chunk").is_number_integer()) m.class_chunk = j.at("class_chunk");
  m.tokenizer_sha256 = j.at("tokenizer").at("vocab_sha256").get<std::string>();
  m.context_length = j.at("tokenizer").at("context_length").get<int>();
  m.templates = j.at("templates").get<std::vector<std::string>>();
  for (const auto& step : m.decoder_steps) m.graph(step);  // every step is a graph
  return m;
}

}  // namespace

const TensorSpec& GraphSpec::input(const std::string& tensor) const {
  for (const auto& t : inputs) {
    if (t.name == tensor) return t;
  }
  throw Error("graph " + name + " has no input '" + tensor + "' (artifacts of another contract version)");
}

const GraphSpec& Manifest::graph(const std::string& name) const {
  auto it = graphs.find(name);
  if (it == graphs.end()) throw Error("the manifest lists no graph '" + name + "'");
  return it->second;
}

std::vector<char> read_file(const fs::path& path, const std::string& what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path.string() + ": cannot read " + what);
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) throw Error(path.string() + ": read error in " + what);
  return bytes;
}

Folder::Folder(const fs::path& path) : path_(path) {
  std::error_code ec;
  if (!fs::is_directory(path, ec)) throw Error(path.string() + ": no such folder");
  const fs::path file = path / kManifestFile;
  if (!fs::is_regular_file(file, ec)) {
    throw Error(path.string() + ": no manifest.json; expected a folder written by escnet-export");
  }
  const auto bytes = read_file(file, "the manifest");
  try {
    manifest_ = parse(json::parse(bytes.begin(), bytes.end()), file.string());
  } catch (const json::exception& e) {
    throw Error(file.string() + ": unreadable or incomplete manifest (" + std::string(e.what()) + ")");
  }
}

std::vector<char> Folder::read_verified(const std::string& relative) const {
  auto listed = manifest_.files.find(relative);
  if (listed == manifest_.files.end()) throw Error(path_.string() + ": " + relative + " is not listed in the manifest");
  const fs::path rel(relative);
  bool escapes = rel.is_absolute() || rel.empty();
  for (const auto& part : rel) escapes = escapes || part == "..";
  std::error_code ec;
  const fs::path full = path_ / rel;
  const fs::path root = fs::weakly_canonical(path_, ec);
  const fs::path real = fs::weakly_canonical(full, ec);
  auto mismatch = std::mismatch(root.begin(), root.end(), real.begin(), real.end());
  if (escapes || mismatch.first != root.end()) throw Error(path_.string() + ": " + relative + " is outside the folder");
  if (!fs::is_regular_file(full, ec)) throw Error(path_.string() + ": " + relative + " is listed in the manifest but missing");
  auto bytes = read_file(full, relative);
  const std::string actual = sha256_hex(bytes.data(), bytes.size());
  if (actual != listed->second) {
    throw Error(path_.string() + ": " + relative + " does not match the manifest (sha256 " + actual.substr(0, 12) +
                "..., expected " + listed->second.substr(0, 12) + "...)");
  }
  return bytes;
}

}  // namespace escnet::detail
