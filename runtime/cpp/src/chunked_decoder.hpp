// The decoder's step graphs over chunks of classes: runtime/chunked_decoder.py, in C++.
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "engine.hpp"

namespace escnet::detail {

// Tensor names and step rules of runtime/contract.py. The manifest's graph specs are checked
// against them when a decoder is built: a drift fails at load with a clear message.
namespace names {
inline const std::string kImage = "image";
inline const std::string kDense = "dense_features", kGuidanceA = "guidance_a", kGuidanceB = "guidance_b";
inline const std::string kClasses = "class_embeddings", kLogits = "logits";
inline const std::string kImageEncoder = "image_encoder", kTextEncoder = "text_encoder", kDecoder = "decoder";
}  // namespace names

enum class Combine { kLogSumExp, kSum };

// How step outputs become inputs (runtime/contract.py CARRIED and PARTS): a carried output is the
// same chunk's input of a later step; a part is one chunk's share of a per-pixel quantity over
// all classes, combined over chunks (in chunk order) into the input every chunk reads next.
struct StepRules {
  std::map<std::string, std::string> carried;
  std::map<std::string, std::pair<std::string, Combine>> parts;
  static StepRules contract();
};

class ChunkedDecoder {
 public:
  // The manifest's decoder_steps, checked: every input of every step is an image feature, the
  // class embeddings, or something an earlier step carries or combines; the last gives logits.
  ChunkedDecoder(const Engine& engine, const Manifest& manifest);

  // features: the image encoder's outputs (batch 1); embeddings (T, P, D) -> logits per chunk of
  // classes, each (1, Tc, 4g, 4g), in class order.
  std::vector<Tensor> operator()(const Outputs& features, const std::vector<float>& embeddings, int64_t classes,
                                 int64_t templates, int64_t dim, int chunk) const;

 private:
  const Engine& engine_;
  std::vector<const GraphSpec*> steps_;
  StepRules rules_;
};

}  // namespace escnet::detail
