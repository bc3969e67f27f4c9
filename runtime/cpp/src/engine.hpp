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

class Engine {
 public:
  virtual ~Engine() = default;
  // Runs `graph` (float32 inputs and outputs); safe to call from several threads at once.
  virtual Outputs run(const std::string& graph, const Feed& feed) const = 0;
  // The baked graph: one uint8 RGB image (height, width, 3), contiguous -> labels.
  virtual Labels run_baked(const std::string& graph, const uint8_t* rgb, int height, int width) const = 0;
};

// OpenVINO (C++ API): each graph is read from the verified bytes and compiled once, with the
// batch axis fixed to 1 and the class axis dynamic.
std::unique_ptr<Engine> openvino_engine(const Folder& folder, const std::vector<std::string>& graphs,
                                        const Options& options);

}  // namespace escnet::detail
