// The f32 islands of an OpenVINO model under a bf16 hint: runtime/escnet_runtime/precision_rule.py's
// rule, node by node, as runtime/escnet_runtime/backends/ov_islands.py applies it (the same nodes,
// the same names; tests/cpp/test_cpp_precision.py compares the two).
#pragma once

#include <memory>
#include <openvino/openvino.hpp>
#include <string>
#include <vector>

namespace escnet::detail {

// Marks the island nodes of `model` with the rt_info key precise_0 (what ov::disable_fp16_compression
// sets), renames counter-named ones "<Kind>_island_<i>", and returns their names in graph order.
std::vector<std::string> mark_f32_islands(ov::Model& model);

// `model` serialized to IR in memory and read back: the marks become the attribute the CPU plugin
// acts on (a plain rt_info string alone is not acted on, OpenVINO 2026.4). `weights` receives the
// IR's weights, which the model read back may share: keep it while the model or its compile lives.
std::shared_ptr<ov::Model> through_ir(ov::Core& core, const std::shared_ptr<ov::Model>& model, ov::Tensor& weights);

}  // namespace escnet::detail
