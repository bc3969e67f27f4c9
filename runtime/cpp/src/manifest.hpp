// The folder's manifest.json (artifacts or baked), read with nlohmann-json and checked field by
// field as runtime/escnet_runtime/manifest_checks.py checks it, and verified reads of its files.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace escnet::detail {

constexpr int kArtifactsFormatVersion = 1;  // runtime/contract.py FORMAT_VERSION
constexpr int kBakedFormatVersion = 1;      // runtime/contract.py BAKED_FORMAT_VERSION
constexpr int kVocabFormatVersion = 1;      // runtime/contract.py VOCAB_FORMAT_VERSION
constexpr int kMaxClasses = 65535;          // runtime/vocabulary.py MAX_CLASSES (16-bit label PNGs)

struct TensorSpec {
  std::string name;
  std::string dtype;
  std::vector<int64_t> shape;          // -1 where the axis is dynamic
  std::vector<std::string> dim_names;  // the dynamic axes' names ("batch", "classes", ...); "" where fixed
};

struct GraphSpec {
  std::string name;
  std::string file;
  std::vector<TensorSpec> inputs;
  std::vector<TensorSpec> outputs;
  const TensorSpec& input(const std::string& tensor) const;   // Error when the graph has no such input
  const TensorSpec& output(const std::string& tensor) const;  // Error when the graph has no such output
};

struct Preprocess {
  int image_size = 0;
  std::array<float, 3> mean{};
  std::array<float, 3> std{};
  float divisor = 255.0f;  // uint8 / divisor before mean and std (the manifest's 1 / scale)
};

// CAT-Seg's sliding-window protocol (runtime/escnet_runtime/sliding.py): canvas, window, stride.
struct SlidingWindow {
  int canvas = 0;
  int window = 0;
  int stride = 0;
};

struct Manifest {
  bool baked = false;
  std::map<std::string, GraphSpec> graphs;
  std::map<std::string, std::string> files;  // relative path -> sha256
  Preprocess preprocess;
  // Artifacts folders: the decoder's steps in run order, the recommended chunk, the text encoder's identity.
  std::vector<std::string> decoder_steps;
  int class_chunk = 0;
  std::string tokenizer_file;
  std::string tokenizer_sha256;
  int context_length = 0;
  std::vector<std::string> templates;
  SlidingWindow sliding;  // the manifest's, or the format 1.0 default for its image size
  int text_batch = 0;     // texts per text-encoder call; 0: not given
  // Format 1.2: the graphs' weights, "fp32" or "int8" (QDQ pairs, as `escnet-export quantize`
  // writes them; runtime/contract.py WEIGHTS_PRECISIONS); "fp32" for an older manifest.
  std::string precision = "fp32";
  // Baked folders: the classes inside the graph.
  std::vector<std::string> class_names;
  std::vector<std::array<uint8_t, 3>> colours;

  const GraphSpec& graph(const std::string& name) const;
};

// The manifest's JSON text -> a checked Manifest; Error "<where>: <field>: <what>" otherwise.
Manifest parse_manifest(const std::vector<char>& bytes, const std::string& where);

// An artifacts or baked folder: its manifest, and the only way to read the files it lists.
class Folder {
 public:
  explicit Folder(const std::filesystem::path& path);
  const Manifest& manifest() const { return manifest_; }
  const std::filesystem::path& path() const { return path_; }
  // A file the manifest lists, read once: inside the folder, a regular file, its sha256 checked
  // on exactly the bytes returned.
  std::vector<char> read_verified(const std::string& relative) const;

 private:
  std::filesystem::path path_;
  Manifest manifest_;
};

// A regular file's bytes (no FIFO, device or folder; at most max_bytes); Error naming `what` otherwise.
std::vector<char> read_file(const std::filesystem::path& path, const std::string& what, uint64_t max_bytes);

}  // namespace escnet::detail
