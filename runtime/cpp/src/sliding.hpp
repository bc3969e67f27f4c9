// CAT-Seg's sliding-window protocol, as runtime/escnet_runtime/sliding.py computes it: the image
// resized to canvas x canvas (normalised first), S x S windows at the manifest's stride (row-major),
// plus one global view at S; per class, window probabilities summed last-to-first where they
// overlap, divided by the cover count, averaged with the global view's probabilities resized to
// the canvas.
#pragma once

#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

#include "manifest.hpp"

namespace escnet::detail {

class SlidingGrid {
 public:
  SlidingGrid(const SlidingWindow& spec);
  // (3, S, S) views: the windows in row-major order, then the global view.
  std::vector<std::vector<float>> views(const uint8_t* rgb, int height, int width, std::size_t stride, const Preprocess& pre) const;
  // One class: each view's probabilities (S x S, windows then global) -> scores (canvas, canvas).
  std::vector<float> fold(const std::vector<std::vector<float>>& probs) const;
  int canvas() const { return big_; }
  std::size_t windows() const { return corners_.size(); }

 private:
  int big_, size_, stride_;
  std::vector<std::pair<int, int>> corners_;  // (y, x)
  std::vector<float> count_;                  // (canvas, canvas) windows covering each pixel
};

}  // namespace escnet::detail
