#include "vocabulary_writer.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>
#include <random>

#include "escnet/segmenter.hpp"
#include "sha256.hpp"

namespace escnet::detail {
using nlohmann::json;

namespace {

mode_t current_umask() {
  const mode_t mask = ::umask(0);
  ::umask(mask);
  return mask;
}

void write_all(int fd, const char* data, std::size_t size, const std::string& where) {
  while (size > 0) {
    const ssize_t n = ::write(fd, data, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw Error(where + ": cannot write the vocabulary file (" + std::strerror(errno) + ")");
    data += n;
    size -= static_cast<std::size_t>(n);
  }
}

std::string header_of(const Vocabulary& v, const Manifest& manifest, const std::string& encoder, const std::string& precision) {
  const std::string names = json(v.names).dump(-1, ' ', false, json::error_handler_t::strict);
  json colours = json::array();
  for (const auto& c : v.colours) colours.push_back({c[0], c[1], c[2]});
  const std::size_t bytes = v.embeddings.size() * sizeof(float);
  json meta = {{"format", "escnet-vocabulary"}, {"format_version", std::to_string(kVocabFormatVersion)},
               {"class_names", names}, {"class_names_sha256", sha256_hex(names.data(), names.size())},
               {"templates", json(manifest.templates).dump()}, {"text_encoder_sha256", encoder},
               {"tokenizer_sha256", manifest.tokenizer_sha256}, {"context_length", std::to_string(manifest.context_length)},
               {"precision", precision}, {"embeddings_sha256", sha256_hex(v.embeddings.data(), bytes)},
               {"colours", colours.dump()}};
  json header = {{"__metadata__", meta},
                 {"class_embeddings", {{"dtype", "F32"}, {"shape", {v.names.size(), v.templates, v.dim}}, {"data_offsets", {0, bytes}}}}};
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // the data starts 8-byte aligned
  return text;
}

}  // namespace

void write_vocabulary(const std::filesystem::path& file, const Vocabulary& v, const Manifest& manifest,
                      const std::string& encoder_sha256, const std::string& precision) {
  const std::string where = file.string();
  const std::string header = header_of(v, manifest, encoder_sha256, precision);
  std::random_device rd;
  std::string tmp;
  int fd = -1;
  for (int attempt = 0; attempt < 100 && fd < 0; ++attempt) {
    tmp = (file.parent_path() / ("." + file.filename().string() + "." + std::to_string(rd()) + ".tmp")).string();
    fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0666);
    if (fd < 0 && errno != EEXIST) break;
  }
  if (fd < 0) throw Error(where + ": cannot write the vocabulary file (" + std::strerror(errno) + ")");
  try {
    ::fchmod(fd, 0666 & ~current_umask());
    char length[8];
    for (int i = 0; i < 8; ++i) length[i] = static_cast<char>((uint64_t(header.size()) >> (8 * i)) & 0xff);
    write_all(fd, length, 8, where);
    write_all(fd, header.data(), header.size(), where);
    write_all(fd, reinterpret_cast<const char*>(v.embeddings.data()), v.embeddings.size() * sizeof(float), where);
    if (::fsync(fd) != 0 || ::close(fd) != 0) throw Error(where + ": cannot write the vocabulary file (" + std::strerror(errno) + ")");
    fd = -1;
    std::error_code ec;
    std::filesystem::rename(tmp, file, ec);
    if (ec) throw Error(where + ": cannot write the vocabulary file (" + ec.message() + ")");
  } catch (...) {
    if (fd >= 0) ::close(fd);
    std::remove(tmp.c_str());
    throw;
  }
}

}  // namespace escnet::detail
