// SHA-256 (FIPS 180-4), self-contained: the image's OpenSSL headers are not guaranteed in CI.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace escnet::detail {

// Lower-case hex digest of size bytes at data.
std::string sha256_hex(const void* data, std::size_t size);

}  // namespace escnet::detail
