#include "onnx_external.hpp"

#include <cstdint>
#include <set>

#include "escnet/segmenter.hpp"

namespace escnet::detail {
namespace {

constexpr int kMaxDepth = 64;  // nested graphs (If / Loop bodies); real models stay far below
constexpr uint64_t kExternal = 1;  // TensorProto.DataLocation.EXTERNAL

struct Span {
  const uint8_t* begin = nullptr;
  const uint8_t* end = nullptr;
};

// One field of a message: its number, wire type, and a varint value or a length-delimited span.
struct Field {
  uint64_t number = 0;
  int wire = 0;
  uint64_t value = 0;
  Span bytes;
};

class Walker {
 public:
  explicit Walker(const std::string& file) : file_(file) {}
  std::set<std::string> found;

  void model(Span m) {
    each(m, 0, [&](const Field& f) {
      if (f.number == 7 && f.wire == 2) graph(f.bytes, 1);      // ModelProto.graph
      if (f.number == 25 && f.wire == 2) function(f.bytes, 1);  // ModelProto.functions
    });
  }

 private:
  const std::string& file_;

  [[noreturn]] void bad() const { throw Error(file_ + ": not a readable ONNX model (damaged protobuf)"); }

  uint64_t varint(const uint8_t*& p, const uint8_t* end) const {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (p >= end) bad();
      const uint8_t byte = *p++;
      v |= static_cast<uint64_t>(byte & 0x7f) << shift;
      if (!(byte & 0x80)) return v;
    }
    bad();
  }

  template <typename F>
  void each(Span s, int depth, F&& visit) const {
    if (depth > kMaxDepth) throw Error(file_ + ": ONNX graphs nested more than " + std::to_string(kMaxDepth) + " deep");
    const uint8_t* p = s.begin;
    while (p < s.end) {
      const uint64_t key = varint(p, s.end);
      Field f{key >> 3, static_cast<int>(key & 7), 0, {}};
      if (f.number == 0) bad();
      if (f.wire == 0) {
        f.value = varint(p, s.end);
      } else if (f.wire == 1 || f.wire == 5) {
        const std::size_t n = f.wire == 1 ? 8 : 4;
        if (static_cast<std::size_t>(s.end - p) < n) bad();
        p += n;
      } else if (f.wire == 2) {
        const uint64_t n = varint(p, s.end);
        if (n > static_cast<uint64_t>(s.end - p)) bad();
        f.bytes = {p, p + n};
        p += n;
      } else {
        bad();  // groups (wire types 3, 4) are not in onnx.proto3
      }
      visit(f);
    }
  }

  void graph(Span g, int depth) {
    each(g, depth, [&](const Field& f) {
      if (f.wire != 2) return;
      if (f.number == 1) node(f.bytes, depth + 1);     // GraphProto.node
      if (f.number == 5) tensor(f.bytes, depth + 1);   // GraphProto.initializer
      if (f.number == 15) sparse(f.bytes, depth + 1);  // GraphProto.sparse_initializer
    });
  }

  void function(Span fn, int depth) {
    each(fn, depth, [&](const Field& f) {
      if (f.number == 7 && f.wire == 2) node(f.bytes, depth + 1);  // FunctionProto.node
    });
  }

  void node(Span n, int depth) {
    each(n, depth, [&](const Field& f) {
      if (f.number == 5 && f.wire == 2) attribute(f.bytes, depth + 1);  // NodeProto.attribute
    });
  }

  void attribute(Span a, int depth) {
    each(a, depth, [&](const Field& f) {
      if (f.wire != 2) return;
      if (f.number == 5 || f.number == 10) tensor(f.bytes, depth + 1);  // t, tensors
      if (f.number == 6 || f.number == 11) graph(f.bytes, depth + 1);   // g, graphs
      if (f.number == 22 || f.number == 23) sparse(f.bytes, depth + 1); // sparse_tensor(s)
    });
  }

  void sparse(Span s, int depth) {
    each(s, depth, [&](const Field& f) {
      if ((f.number == 1 || f.number == 2) && f.wire == 2) tensor(f.bytes, depth + 1);  // values, indices
    });
  }

  // TensorProto: external when data_location (14) is EXTERNAL or it names external_data (13).
  void tensor(Span t, int depth) {
    bool external = false;
    std::string location;
    each(t, depth, [&](const Field& f) {
      if (f.number == 14 && f.wire == 0 && f.value == kExternal) external = true;
      if (f.number != 13 || f.wire != 2) return;
      external = true;
      std::string key, value;
      each(f.bytes, depth + 1, [&](const Field& e) {  // StringStringEntryProto: key 1, value 2
        if (e.wire != 2) return;
        if (e.number == 1) key.assign(e.bytes.begin, e.bytes.end);
        if (e.number == 2) value.assign(e.bytes.begin, e.bytes.end);
      });
      if (key == "location") location = value;
    });
    if (external) found.insert(location);
  }
};

}  // namespace

std::vector<std::string> external_locations(const std::vector<char>& model, const std::string& file) {
  Walker walker(file);
  const auto* p = reinterpret_cast<const uint8_t*>(model.data());
  walker.model({p, p + model.size()});
  return {walker.found.begin(), walker.found.end()};
}

}  // namespace escnet::detail
