// The folder and its verified reads: every file the engine gets was listed, confined, hashed.
#include "manifest.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "escnet/segmenter.hpp"
#include "json_fields.hpp"
#include "sha256.hpp"

namespace escnet::detail {
namespace fs = std::filesystem;

namespace {
const char* const kManifestFile = "manifest.json";
constexpr uint64_t kMaxManifest = 64u << 20;  // runtime/manifest.py MAX_MANIFEST_BYTES
constexpr uint64_t kMaxListedFile = uint64_t(2) << 30;  // an ONNX file over protobuf's 2 GB limit cannot load anyway

struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};
}  // namespace

const TensorSpec& GraphSpec::input(const std::string& tensor) const {
  for (const auto& t : inputs) {
    if (t.name == tensor) return t;
  }
  throw FieldError("graphs." + name + ".inputs: no input '" + tensor + "' (artifacts of another contract version)");
}

const TensorSpec& GraphSpec::output(const std::string& tensor) const {
  for (const auto& t : outputs) {
    if (t.name == tensor) return t;
  }
  throw FieldError("graphs." + name + ".outputs: no output '" + tensor + "' (artifacts of another contract version)");
}

const GraphSpec& Manifest::graph(const std::string& name) const {
  auto it = graphs.find(name);
  if (it == graphs.end()) throw FieldError("graphs." + name + ": missing (the manifest lists no graph '" + name + "')");
  return it->second;
}

std::vector<char> read_file(const fs::path& path, const std::string& what, uint64_t max_bytes) {
  Fd f;
  f.fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
  if (f.fd < 0) throw Error(path.string() + ": cannot read " + what + " (" + std::strerror(errno) + ")");
  struct stat st {};
  if (::fstat(f.fd, &st) != 0 || !S_ISREG(st.st_mode)) throw Error(path.string() + ": " + what + " is not a regular file");
  if (static_cast<uint64_t>(st.st_size) > max_bytes) {
    throw Error(path.string() + ": " + std::to_string(st.st_size) + " bytes is too large for " + what);
  }
  std::vector<char> bytes(static_cast<std::size_t>(st.st_size));
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::read(f.fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw Error(path.string() + ": read error in " + what + " (" + std::strerror(errno) + ")");
    if (n == 0) throw Error(path.string() + ": " + what + " shrank while being read");
    done += static_cast<std::size_t>(n);
  }
  return bytes;
}

Folder::Folder(const fs::path& path) : path_(path) {
  std::error_code ec;
  if (!fs::is_directory(path, ec)) throw Error(path.string() + ": no such folder");
  const fs::path file = path / kManifestFile;
  if (!fs::is_regular_file(file, ec)) {
    throw Error(path.string() + ": no manifest.json; expected a folder written by escnet-export");
  }
  manifest_ = parse_manifest(read_file(file, "the manifest", kMaxManifest), file.string());
}

std::vector<char> Folder::read_verified(const std::string& relative) const {
  auto listed = manifest_.files.find(relative);
  if (listed == manifest_.files.end()) throw Error(path_.string() + ": " + relative + " is not listed in the manifest (it has no sha256); refused");
  try {
    check_relative(relative, "files");
  } catch (const FieldError& e) {
    throw Error(path_.string() + ": " + e.what());
  }
  std::error_code ec;
  const fs::path full = path_ / relative;
  const fs::path root = fs::weakly_canonical(path_, ec);
  const fs::path real = fs::weakly_canonical(full, ec);
  auto mismatch = std::mismatch(root.begin(), root.end(), real.begin(), real.end());
  if (ec || mismatch.first != root.end()) throw Error(path_.string() + ": " + relative + " leads outside the folder (a symbolic link); refused");
  if (!fs::exists(fs::symlink_status(full, ec))) throw Error(path_.string() + ": " + relative + " is listed in the manifest but missing");
  // The last part may be a link inside the folder: open what it resolves to, never following another.
  auto bytes = read_file(real, relative, kMaxListedFile);
  const std::string actual = sha256_hex(bytes.data(), bytes.size());
  if (actual != listed->second) {
    throw Error(path_.string() + ": " + relative + " does not match the manifest (sha256 " + actual.substr(0, 12) +
                "..., expected " + listed->second.substr(0, 12) + "...)");
  }
  return bytes;
}

}  // namespace escnet::detail
