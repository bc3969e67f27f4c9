// Preprocessing and post-processing, as runtime/preprocess.py, resize.py and postprocess.py compute
// them (bit for bit where the Python runtime is exact: the resize reproduces torch's float32
// bilinear, align_corners=False, no antialias).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "manifest.hpp"

namespace escnet::detail {

// Bilinear resize of `planes` (n, in_h, in_w) float32 -> (n, out_h, out_w).
std::vector<float> resize_bilinear(const float* planes, int n, int in_h, int in_w, int out_h, int out_w);

// RGB uint8 rows -> (3, S, S) float32: x / divisor, (x - mean) / std at the image's size, then resize to S.
std::vector<float> image_view(const uint8_t* rgb, int height, int width, std::size_t stride, const Preprocess& pre);

// One view's class probabilities: logits (side x side) -> bilinear to (size, size) -> sigmoid
// (runtime/postprocess.py view_probabilities, one class).
std::vector<float> view_probabilities(const float* logits, int side, int size);

// Running arg-max over classes at the image's size. add(t, logits) takes class t's logits
// (side x side, the decoder's resolution): bilinear to S, sigmoid, bilinear to (H, W), then
// the first maximum over classes wins (a NaN wins over any number, as in numpy / torch).
class LabelAccumulator {
 public:
  // scores: when not null, (classes, height, width) floats receiving each class's probabilities.
  LabelAccumulator(int image_size, int height, int width, float* scores = nullptr);
  void add(int32_t index, const float* logits, int side);
  // Class `index`'s probabilities (side x side): bilinear to (H, W), then the running arg-max.
  void add_probabilities(int32_t index, const float* probs, int side);
  std::vector<int32_t> take() { return std::move(labels_); }

 private:
  int size_, height_, width_;
  float* scores_;
  bool first_ = true;
  std::vector<float> best_;
  std::vector<int32_t> labels_;
};

}  // namespace escnet::detail
