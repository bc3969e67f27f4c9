// PNG in (RGB, 8 bits) and label PNGs out, with libpng's simplified API.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace escnet_tools {

struct RgbImage {
  int height = 0;
  int width = 0;
  std::vector<uint8_t> pixels;  // height * width * 3, rows packed
};

constexpr uint32_t kMaxSide = 1 << 15;        // escnet::Segmenter's limit per side
constexpr uint64_t kMaxPixels = 89'478'485;   // the Python runtime's DEFAULT_MAX_PIXELS (Pillow's bomb threshold)
constexpr uint64_t kMaxFileBytes = uint64_t(1) << 30;

// Any PNG libpng reads (gray, palette, alpha, 16 bits), converted to 8-bit RGB; its size is checked
// against kMaxSide and kMaxPixels before pixels are allocated. Throws escnet::Error.
RgbImage read_png_rgb(const std::string& path);
// The same from bytes in memory (`name` for messages).
RgbImage read_png_rgb(const uint8_t* data, std::size_t size, const std::string& name);

// labels (height * width): a palette PNG (8 bits, the given colours) up to 256 classes, else
// 16-bit grayscale class indices; written to a new temporary file beside `path` (the umask's
// mode), then renamed over `path`.
void write_label_png(const std::string& path, const std::vector<int32_t>& labels, int height, int width,
                     const std::vector<std::array<uint8_t, 3>>& colours);

}  // namespace escnet_tools
