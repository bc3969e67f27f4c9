// Which tensors of an ONNX model keep their bytes outside it (ONNX external data), found by
// reading the model's protobuf wire format (onnx.proto3 field numbers), without the protobuf
// library: runtime/escnet_runtime/graph_files.py's external_locations, in C++.
#pragma once

#include <string>
#include <vector>

namespace escnet::detail {

// The external-data locations the model's tensors name (initializers, sparse initializers,
// tensor attributes, subgraphs, functions); "" for an external tensor without a location.
// Empty for a self-contained model. Error (one line naming `file`) for bytes that are not a
// protobuf message or nest deeper than any real model does.
std::vector<std::string> external_locations(const std::vector<char>& model, const std::string& file);

}  // namespace escnet::detail
