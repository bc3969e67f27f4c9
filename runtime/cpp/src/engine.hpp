// What the orchestration needs of an inference engine: run a named graph on named float32 tensors.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "escnet/segmenter.hpp"
#include "manifest.hpp"

namespace escnet::detail {

struct Tensor {
  std::vector<int64_t> shape;
  std::vector<float> data;
};

using Feed = std::vector<std::pair<std::string, const Tensor*>>;
using Outputs = std::map<std::string, Tensor>;

// The baked graph's outputs for one image: labels (H, W) int32 and scores (T, side, side) float32.
struct BakedOutputs {
  std::vector<int32_t> labels;
  Tensor scores;
};

class Engine {
 public:
  virtual ~Engine() = default;
  // Runs `graph` (float32 inputs and outputs); safe to call from several threads at once. Every
  // fed tensor is checked against the manifest's spec first (an Error naming the field).
  virtual Outputs run(const std::string& graph, const Feed& feed) const = 0;
  // The baked graph: one uint8 RGB image (height, width, 3), contiguous. Error unless the graph
  // gives (1, H, W) labels in 0..classes-1 and (1, classes, side, side) scores.
  // A graph of one int64 input (rows, cols), e.g. the text encoder's token ids -> its float32 outputs.
  virtual Outputs run_ids(const std::string& graph, const std::string& input, const std::vector<int64_t>& ids, int64_t rows,
                          int64_t cols) const = 0;
  // The nodes of `graph` kept in f32 under a bf16 hint (none under f32), in graph order.
  virtual std::vector<std::string> f32_islands(const std::string& graph) const = 0;
  virtual BakedOutputs run_baked(const std::string& graph, const uint8_t* rgb, int height, int width, int64_t classes) const = 0;
};

// OpenVINO (C++ API): each graph is read from the verified bytes (a graph naming external data is
// refused: its bytes would come from outside the hashed files), checked against its manifest spec
// and compiled once, with the batch axis fixed to 1 and the class axis dynamic: `graphs` at
// construction, any other graph of the folder on its first run. Each compiled model keeps a pool
// of infer requests, reused across calls and threads.
std::unique_ptr<Engine> openvino_engine(const Folder& folder, const std::vector<std::string>& graphs,
                                        const Options& options);

}  // namespace escnet::detail
