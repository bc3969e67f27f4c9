#include "png_io.hpp"

#include <fcntl.h>
#include <png.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <random>

#include "escnet/segmenter.hpp"

namespace escnet_tools {
namespace {

struct ImageGuard {
  png_image image{};
  ImageGuard() {
    image.version = PNG_IMAGE_VERSION;
  }
  ~ImageGuard() { png_image_free(&image); }
};

std::string reason(const png_image& image) { return image.message[0] ? image.message : "unknown libpng error"; }

mode_t current_umask() {
  const mode_t mask = ::umask(0);
  ::umask(mask);
  return mask;
}

// A new file beside `target` (never an existing one), opened for writing with the umask's mode.
std::FILE* create_beside(const std::filesystem::path& target, std::string& name) {
  std::random_device rd;
  for (int attempt = 0; attempt < 100; ++attempt) {
    name = (target.parent_path() / ("." + target.filename().string() + "." + std::to_string(rd()) + ".tmp")).string();
    const int fd = ::open(name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0666);
    if (fd >= 0) {
      ::fchmod(fd, 0666 & ~current_umask());
      if (std::FILE* f = ::fdopen(fd, "wb")) return f;
      ::close(fd);
      std::remove(name.c_str());
      break;
    }
    if (errno != EEXIST) break;
  }
  throw escnet::Error(target.string() + ": cannot write the label PNG (" + std::strerror(errno) + ")");
}

}  // namespace

RgbImage read_png_rgb(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) throw escnet::Error(path + ": no such file");
  const auto size = std::filesystem::file_size(path, ec);
  if (ec || size > kMaxFileBytes) throw escnet::Error(path + ": not a PNG this tool reads (over " + std::to_string(kMaxFileBytes >> 20) + " MiB)");
  std::vector<uint8_t> bytes(static_cast<std::size_t>(size));
  std::FILE* f = std::fopen(path.c_str(), "rb");
  const bool ok = f && std::fread(bytes.data(), 1, bytes.size(), f) == bytes.size();
  if (f) std::fclose(f);
  if (!ok) throw escnet::Error(path + ": cannot read the image");
  return read_png_rgb(bytes.data(), bytes.size(), path);
}

RgbImage read_png_rgb(const uint8_t* data, std::size_t size, const std::string& name) {
  ImageGuard g;
  if (!png_image_begin_read_from_memory(&g.image, data, size)) {
    throw escnet::Error(name + ": not a PNG libpng can read (" + reason(g.image) + ")");
  }
  if (g.image.width > kMaxSide || g.image.height > kMaxSide ||
      uint64_t(g.image.width) * g.image.height > kMaxPixels) {  // checked before any pixel buffer exists
    throw escnet::Error(name + ": image is " + std::to_string(g.image.width) + "x" + std::to_string(g.image.height) +
                        ", over the limit of " + std::to_string(kMaxPixels) + " pixels (" + std::to_string(kMaxSide) +
                        " a side)");
  }
  g.image.format = PNG_FORMAT_RGB;
  RgbImage out{static_cast<int>(g.image.height), static_cast<int>(g.image.width), {}};
  out.pixels.resize(PNG_IMAGE_SIZE(g.image));
  if (!png_image_finish_read(&g.image, nullptr, out.pixels.data(), 0, nullptr)) {
    throw escnet::Error(name + ": damaged PNG (" + reason(g.image) + ")");
  }
  return out;
}

void write_label_png(const std::string& path, const std::vector<int32_t>& labels, int height, int width,
                     const std::vector<std::array<uint8_t, 3>>& colours) {
  ImageGuard g;
  g.image.width = static_cast<png_uint_32>(width);
  g.image.height = static_cast<png_uint_32>(height);
  std::vector<uint8_t> bytes;
  std::vector<uint16_t> words;
  std::vector<uint8_t> colormap;
  const void* buffer = nullptr;
  if (colours.size() <= 256) {
    g.image.format = PNG_FORMAT_RGB_COLORMAP;
    g.image.colormap_entries = static_cast<png_uint_32>(std::max<std::size_t>(1, colours.size()));
    colormap.assign(3 * g.image.colormap_entries, 0);
    for (std::size_t i = 0; i < colours.size(); ++i) std::copy(colours[i].begin(), colours[i].end(), colormap.begin() + 3 * i);
    bytes.assign(labels.begin(), labels.end());
    buffer = bytes.data();
  } else {
    g.image.format = PNG_FORMAT_LINEAR_Y;  // 16-bit gray, values written as given
    words.assign(labels.begin(), labels.end());
    buffer = words.data();
  }
  if (labels.size() != static_cast<std::size_t>(width) * height) throw escnet::Error(path + ": labels do not fill the image");
  const std::filesystem::path target(path);
  std::string tmp;
  std::FILE* file = create_beside(target, tmp);
  const bool written = png_image_write_to_stdio(&g.image, file, 0, buffer, 0, colormap.empty() ? nullptr : colormap.data());
  const bool closed = std::fclose(file) == 0;
  if (!written || !closed) {
    std::remove(tmp.c_str());
    throw escnet::Error(path + ": cannot write the label PNG (" + (written ? std::string("write error") : reason(g.image)) + ")");
  }
  std::error_code ec;
  std::filesystem::rename(tmp, target, ec);
  if (ec) {
    std::remove(tmp.c_str());
    throw escnet::Error(path + ": cannot write the label PNG (" + ec.message() + ")");
  }
}

}  // namespace escnet_tools
