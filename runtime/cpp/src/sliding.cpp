#include "sliding.hpp"

#include "image_ops.hpp"

namespace escnet::detail {

SlidingGrid::SlidingGrid(const SlidingWindow& spec) : big_(spec.canvas), size_(spec.window), stride_(spec.stride) {
  const int n = (big_ - size_) / stride_ + 1;
  for (int i = 0; i < n; ++i) {
    for (int j = 0; j < n; ++j) corners_.emplace_back(i * stride_, j * stride_);
  }
  count_.assign(static_cast<std::size_t>(big_) * big_, 0.0f);
  for (const auto& [y, x] : corners_) {
    for (int r = y; r < y + size_; ++r) {
      for (int c = x; c < x + size_; ++c) count_[static_cast<std::size_t>(r) * big_ + c] += 1.0f;
    }
  }
}

std::vector<std::vector<float>> SlidingGrid::views(const uint8_t* rgb, int height, int width, std::size_t stride,
                                                   const Preprocess& pre) const {
  Preprocess canvas = pre;
  canvas.image_size = big_;
  const std::vector<float> full = image_view(rgb, height, width, stride, canvas);  // (3, big, big)
  std::vector<std::vector<float>> out;
  const std::size_t plane = static_cast<std::size_t>(size_) * size_;
  for (const auto& [y, x] : corners_) {
    std::vector<float> w(3 * plane);
    for (int ch = 0; ch < 3; ++ch) {
      for (int r = 0; r < size_; ++r) {
        const float* src = full.data() + (static_cast<std::size_t>(ch) * big_ + y + r) * big_ + x;
        std::copy(src, src + size_, w.data() + ch * plane + static_cast<std::size_t>(r) * size_);
      }
    }
    out.push_back(std::move(w));
  }
  out.push_back(image_view(rgb, height, width, stride, pre));
  return out;
}

std::vector<float> SlidingGrid::fold(const std::vector<std::vector<float>>& probs) const {
  std::vector<float> summed(static_cast<std::size_t>(big_) * big_, 0.0f);
  for (std::size_t k = corners_.size(); k-- > 0;) {  // last-to-first: F.fold's order
    const auto [y, x] = corners_[k];
    for (int r = 0; r < size_; ++r) {
      float* dst = summed.data() + static_cast<std::size_t>(y + r) * big_ + x;
      const float* src = probs[k].data() + static_cast<std::size_t>(r) * size_;
      for (int c = 0; c < size_; ++c) dst[c] += src[c];
    }
  }
  const std::vector<float> global = resize_bilinear(probs.back().data(), 1, size_, size_, big_, big_);
  for (std::size_t i = 0; i < summed.size(); ++i) summed[i] = (summed[i] / count_[i] + global[i]) / 2.0f;
  return summed;
}

}  // namespace escnet::detail
