// PNG in (RGB, 8 bits) and label PNGs out, with libpng's simplified API.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace escnet_tools {

struct RgbImage {
  int height = 0;
  int width = 0;
  std::vector<uint8_t> pixels;  // height * width * 3, rows packed
};

// Any PNG libpng reads (gray, palette, alpha, 16 bits), converted to 8-bit RGB. Throws escnet::Error.
RgbImage read_png_rgb(const std::string& path);

// labels (height * width): a palette PNG (8 bits, the given colours) up to 256 classes, else
// 16-bit grayscale class indices; written to a temporary file beside `path`, then renamed.
void write_label_png(const std::string& path, const std::vector<int32_t>& labels, int height, int width,
                     const std::vector<std::array<uint8_t, 3>>& colours);

}  // namespace escnet_tools
