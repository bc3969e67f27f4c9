#include "image_ops.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace escnet::detail {
namespace {

// Source taps and weights along one axis (runtime/resize.py axis_weights).
struct Axis {
  std::vector<int> i0, i1;
  std::vector<float> l0, l1;
};

Axis axis_weights(int in, int out) {
  Axis a{std::vector<int>(out), std::vector<int>(out), std::vector<float>(out), std::vector<float>(out)};
  const float scale = static_cast<float>(in) / static_cast<float>(out);
  for (int d = 0; d < out; ++d) {
    if (in == out) {
      a.i0[d] = a.i1[d] = d;
      a.l0[d] = 1.0f;
      a.l1[d] = 0.0f;
      continue;
    }
    // float64 product of float32 values (exact), minus 0.5 in float64, rounded to float32.
    float src = static_cast<float>(static_cast<double>(scale) * static_cast<double>(static_cast<float>(d) + 0.5f) - 0.5);
    src = std::max(src, 0.0f);
    int i0 = std::min(static_cast<int>(std::floor(src)), in - 1);
    float l1 = std::min(std::max(src - static_cast<float>(i0), 0.0f), 1.0f);
    a.i0[d] = i0;
    a.i1[d] = i0 + (i0 < in - 1 ? 1 : 0);
    a.l1[d] = l1;
    a.l0[d] = 1.0f - l1;
  }
  return a;
}

// float32 fma(a, b, c) as runtime/resize.py _fma computes it (in float64, then rounded).
inline float fma32(float a, float b, float c) {
  return static_cast<float>(static_cast<double>(a) * static_cast<double>(b) + static_cast<double>(c));
}

inline float sigmoid(float x) { return 1.0f / (1.0f + std::exp(-x)); }

}  // namespace

std::vector<float> resize_bilinear(const float* planes, int n, int in_h, int in_w, int out_h, int out_w) {
  std::vector<float> out(static_cast<std::size_t>(n) * out_h * out_w);
  if (in_h == out_h && in_w == out_w) {
    std::memcpy(out.data(), planes, out.size() * sizeof(float));
    return out;
  }
  const Axis wx = axis_weights(in_w, out_w), hy = axis_weights(in_h, out_h);
  std::vector<float> narrow(static_cast<std::size_t>(in_h) * out_w);  // width pass of one plane
  for (int p = 0; p < n; ++p) {
    const float* src = planes + static_cast<std::size_t>(p) * in_h * in_w;
    for (int y = 0; y < in_h; ++y) {
      const float* row = src + static_cast<std::size_t>(y) * in_w;
      float* dst = narrow.data() + static_cast<std::size_t>(y) * out_w;
      for (int x = 0; x < out_w; ++x) {
        const float v1 = row[wx.i1[x]] * wx.l1[x];  // rounded to float32 first, as numpy does
        dst[x] = fma32(row[wx.i0[x]], wx.l0[x], v1);
      }
    }
    float* plane = out.data() + static_cast<std::size_t>(p) * out_h * out_w;
    for (int y = 0; y < out_h; ++y) {
      const float* r0 = narrow.data() + static_cast<std::size_t>(hy.i0[y]) * out_w;
      const float* r1 = narrow.data() + static_cast<std::size_t>(hy.i1[y]) * out_w;
      float* dst = plane + static_cast<std::size_t>(y) * out_w;
      for (int x = 0; x < out_w; ++x) {
        const float v1 = r1[x] * hy.l1[y];
        dst[x] = fma32(r0[x], hy.l0[y], v1);
      }
    }
  }
  return out;
}

std::vector<float> image_view(const uint8_t* rgb, int height, int width, std::size_t stride, const Preprocess& pre) {
  std::vector<float> planes(static_cast<std::size_t>(3) * height * width);  // (3, H, W)
  for (int y = 0; y < height; ++y) {
    const uint8_t* row = rgb + static_cast<std::size_t>(y) * stride;
    for (int x = 0; x < width; ++x) {
      for (int c = 0; c < 3; ++c) {
        const float v = static_cast<float>(row[3 * x + c]) / pre.divisor;
        planes[(static_cast<std::size_t>(c) * height + y) * width + x] = (v - pre.mean[c]) / pre.std[c];
      }
    }
  }
  return resize_bilinear(planes.data(), 3, height, width, pre.image_size, pre.image_size);
}

LabelAccumulator::LabelAccumulator(int image_size, int height, int width, float* scores)
    : size_(image_size),
      height_(height),
      width_(width),
      scores_(scores),
      best_(static_cast<std::size_t>(height) * width),
      labels_(static_cast<std::size_t>(height) * width, 0) {}

std::vector<float> view_probabilities(const float* logits, int side, int size) {
  std::vector<float> probs = resize_bilinear(logits, 1, side, side, size, size);  // (S, S)
  for (float& v : probs) v = sigmoid(v);
  return probs;
}

void LabelAccumulator::add(int32_t index, const float* logits, int side) {
  const std::vector<float> probs = view_probabilities(logits, side, size_);
  add_probabilities(index, probs.data(), size_);
}

void LabelAccumulator::add_probabilities(int32_t index, const float* probs, int side) {
  const std::vector<float> up = resize_bilinear(probs, 1, side, side, height_, width_);
  if (scores_) std::copy(up.begin(), up.end(), scores_ + static_cast<std::size_t>(index) * up.size());
  if (first_) {
    best_ = up;
    first_ = false;
    return;
  }
  for (std::size_t i = 0; i < up.size(); ++i) {
    const float v = up[i], b = best_[i];
    if (v > b || (std::isnan(v) && !std::isnan(b))) {
      best_[i] = v;
      labels_[i] = index;
    }
  }
}

}  // namespace escnet::detail
