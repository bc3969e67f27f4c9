// The f32 islands (f32_islands.hpp). The operator tables are precision_rule.py's OPENVINO_* ones.
#include "f32_islands.hpp"

#include <algorithm>
#include <openvino/pass/serialize.hpp>
#include <regex>
#include <set>
#include <sstream>

namespace escnet::detail {
namespace {

const std::set<std::string> kDecisions = {"TopK",    "Round",     "Floor",        "Ceiling", "Greater",
                                          "GreaterEqual", "Less", "LessEqual", "Equal"};
const std::set<std::string> kScoreOps = {
    "Add",     "Subtract", "Multiply", "Divide",   "Negative",      "Abs",        "Exp",       "Log",   "Sqrt",
    "Power",   "SquaredDifference",    "Clamp",    "Maximum",       "Minimum",    "Select",    "Convert",
    "ReduceMax", "ReduceMin", "ReduceSum", "ReduceMean", "SoftMax", "LogSoftmax", "Reshape",   "Transpose",
    "Squeeze", "Unsqueeze", "Gather",  "GatherElements", "Concat",  "StridedSlice", "Slice",   "Split",
    "VariadicSplit", "Broadcast", "Tile"};
const std::set<std::string> kProducts = {"MatMul", "Convolution"};
const std::set<std::string> kDecisionOutputs = {"prompt_scores_out", "score_logsumexp_part"};  // contract.py SCORES_OUT, SCORE_LSE_PART
constexpr int64_t kNarrowFeatures = 4;                                                // precision_rule.py NARROW_FEATURES

// Partial shapes of the node's constant operands (a weight, possibly behind a Convert).
std::vector<ov::PartialShape> constant_shapes(const ov::Node& node) {
  std::vector<ov::PartialShape> shapes;
  for (const auto& value : node.input_values()) {
    auto source = value.get_node_shared_ptr();
    if (std::string(source->get_type_name()) == "Convert") source = source->input_value(0).get_node_shared_ptr();
    if (std::string(source->get_type_name()) == "Constant") shapes.push_back(value.get_partial_shape());
  }
  return shapes;
}

// At most kNarrowFeatures rows or columns (a matrix's last two axes).
bool narrow(const ov::PartialShape& shape) {
  if (shape.rank().is_dynamic() || shape.rank().get_length() < 2) return false;
  const int64_t rank = shape.rank().get_length();
  bool any = false;
  int64_t least = 0;
  for (int64_t i = rank - 2; i < rank; ++i) {
    if (shape[i].is_static()) {
      least = any ? std::min(least, shape[i].get_length()) : shape[i].get_length();
      any = true;
    }
  }
  return any && least <= kNarrowFeatures;
}

bool is_real(const ov::Node& node) {
  for (std::size_t i = 0; i < node.get_input_size(); ++i) {
    if (node.get_input_element_type(i).is_real()) return true;
  }
  return false;
}

void push_inputs(const ov::Node& node, std::vector<std::shared_ptr<ov::Node>>& stack) {
  for (const auto& value : node.input_values()) stack.push_back(value.get_node_shared_ptr());
}

// The island's friendly names: decisions, then the walk upstream from them and from the outputs
// the next step decides on, through the score operators and the narrow or weightless products.
std::set<std::string> island_names(const ov::Model& model) {
  std::vector<std::shared_ptr<ov::Node>> stack;
  std::set<std::string> island;
  for (const auto& op : model.get_ordered_ops()) {
    if (kDecisions.count(op->get_type_name()) && is_real(*op)) {
      island.insert(op->get_friendly_name());
      push_inputs(*op, stack);
    }
  }
  for (const auto& result : model.get_results()) {
    for (const auto& name : result->input_value(0).get_names()) {
      if (kDecisionOutputs.count(name)) {
        stack.push_back(result->input_value(0).get_node_shared_ptr());
        break;
      }
    }
  }
  while (!stack.empty()) {
    const auto node = stack.back();
    stack.pop_back();
    const std::string name = node->get_friendly_name(), kind = node->get_type_name();
    if (island.count(name)) continue;
    if (kScoreOps.count(kind) || kDecisions.count(kind)) {
      island.insert(name);
      push_inputs(*node, stack);
    } else if (kProducts.count(kind)) {
      const auto weights = constant_shapes(*node);
      if (weights.empty()) {  // a correlation of two inputs (features x text): a score, walk on
        island.insert(name);
        push_inputs(*node, stack);
      } else if (std::any_of(weights.begin(), weights.end(), narrow)) {
        island.insert(name);  // a score head: in the island, and the walk stops
      }
    }
  }
  return island;
}

}  // namespace

std::vector<std::string> mark_f32_islands(ov::Model& model) {
  const std::set<std::string> island = island_names(model);
  std::vector<std::string> names;
  for (const auto& op : model.get_ordered_ops()) {
    if (!island.count(op->get_friendly_name())) continue;
    op->get_rt_info()["precise_0"] = std::string();
    const std::string kind = op->get_type_name();
    if (std::regex_match(op->get_friendly_name(), std::regex(kind + "_[0-9]+"))) {  // named from a counter of the process
      op->set_friendly_name(kind + "_island_" + std::to_string(names.size()));
    }
    names.push_back(op->get_friendly_name());
  }
  return names;
}

std::shared_ptr<ov::Model> through_ir(ov::Core& core, const std::shared_ptr<ov::Model>& model, ov::Tensor& weights) {
  std::ostringstream xml, bin;
  ov::pass::Serialize(xml, bin).run_on_model(std::const_pointer_cast<ov::Model>(model));
  const std::string data = bin.str();
  weights = ov::Tensor(ov::element::u8, ov::Shape{data.size()});
  std::copy(data.begin(), data.end(), static_cast<char*>(weights.data()));
  return core.read_model(xml.str(), weights);
}

}  // namespace escnet::detail
