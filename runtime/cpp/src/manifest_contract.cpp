// The parts of a manifest that are the deployment contract (runtime/escnet_runtime/contract.py):
// templates, tokenizer, the decoder's steps in run order with each step's tensors, the sliding
// window; for baked folders the classes and the segmenter graph. One line naming the field.
#include <algorithm>
#include <set>

#include "class_names.hpp"
#include "json_fields.hpp"
#include "manifest.hpp"

namespace escnet::detail {
using nlohmann::json;

namespace {

const char* const kSot = "<start_of_text>";  // runtime/contract.py TokenizerSpec
const char* const kEot = "<end_of_text>";
using Names = std::set<std::string>;

// Each step kind's inputs and outputs (runtime/contract.py decoder_step_specs).
struct StepTensors {
  Names inputs, outputs;
};
const StepTensors kOpen{{"dense_features", "class_embeddings"}, {"class_state_out", "prompt_scores_out", "score_logsumexp_part"}};
const StepTensors kBlock{{"class_state", "dense_features", "class_embeddings", "prompt_scores", "score_logsumexp"},
                         {"class_state_out", "attention_kv_part", "attention_k_sum_part"}};
const StepTensors kAttend{{"class_state", "class_embeddings", "attention_kv", "attention_k_sum"}, kOpen.outputs};
const StepTensors kClose{{"class_state", "class_embeddings", "attention_kv", "attention_k_sum", "guidance_a", "guidance_b"},
                         {"logits"}};

Names names_of(const std::vector<TensorSpec>& tensors) {
  Names out;
  for (const auto& t : tensors) out.insert(t.name);
  return out;
}

std::string join(const Names& names) {
  std::string s;
  for (const auto& n : names) s += (s.empty() ? "" : ", ") + n;
  return s;
}

void check_tensors(const GraphSpec& g, const StepTensors& want, const std::string& at) {
  if (names_of(g.inputs) != want.inputs) throw FieldError(at + ".inputs: expected " + join(want.inputs) + ", got " + join(names_of(g.inputs)));
  if (names_of(g.outputs) != want.outputs) throw FieldError(at + ".outputs: expected " + join(want.outputs) + ", got " + join(names_of(g.outputs)));
}

// runtime/contract.py decoder_step_names: open, block_0, attend_0, ..., block_{N-1}, close.
std::vector<std::string> step_names(std::size_t blocks) {
  std::vector<std::string> out{"decoder_open"};
  for (std::size_t k = 0; k < blocks; ++k) {
    out.push_back("decoder_block_" + std::to_string(k));
    if (k + 1 < blocks) out.push_back("decoder_attend_" + std::to_string(k));
  }
  out.push_back("decoder_close");
  return out;
}

void read_steps(const json& j, Manifest& m) {
  const json* steps = optional_member(j, "decoder_steps", "decoder_steps");
  if (!steps) return;
  if (!steps->is_array()) throw FieldError("decoder_steps: expected a list of graph names, got " + quote(*steps));
  for (std::size_t i = 0; i < steps->size(); ++i) {
    const std::string at = "decoder_steps[" + std::to_string(i) + "]";
    const std::string step = text((*steps)[i], at);
    if (!m.graphs.count(step)) throw FieldError(at + ": " + quote(json(step)) + " is not among the graphs");
    if (std::count(m.decoder_steps.begin(), m.decoder_steps.end(), step)) throw FieldError("decoder_steps: a step is listed twice (" + step + ")");
    m.decoder_steps.push_back(step);
  }
  if (m.decoder_steps.empty()) return;
  std::size_t blocks = 0;  // the manifest's decoder_block_k graphs, as runtime/manifest_checks.py counts them
  for (const auto& [name, g] : m.graphs) {
    const std::string prefix = "decoder_block_";
    blocks += name.rfind(prefix, 0) == 0 && name.size() > prefix.size() &&
              name.find_first_not_of("0123456789", prefix.size()) == std::string::npos;
  }
  const auto want = step_names(blocks);
  std::string order;
  for (const auto& w : want) order += (order.empty() ? "" : ", ") + w;
  for (std::size_t i = 0; i <= std::max(want.size(), m.decoder_steps.size()); ++i) {
    const std::string got = i < m.decoder_steps.size() ? m.decoder_steps[i] : "(the end)";
    const std::string expected = i < want.size() ? want[i] : "(the end)";
    if (got != expected) {
      throw FieldError("decoder_steps[" + std::to_string(i) + "]: expected '" + expected + "' (the contract's order for " +
                       std::to_string(blocks) + " decoder blocks: " + order + "), got " + quote(json(got)));
    }
    if (i >= want.size()) break;
  }
  for (const auto& step : m.decoder_steps) {
    const StepTensors& kind = step == "decoder_open" ? kOpen : step == "decoder_close" ? kClose
                              : step.rfind("decoder_block_", 0) == 0 ? kBlock : kAttend;
    check_tensors(m.graph(step), kind, "graphs." + step);
  }
  const TensorSpec& classes = m.graph("decoder_open").input("class_embeddings");
  if (classes.shape.size() != 3 || classes.shape[1] != static_cast<int64_t>(m.templates.size()) || classes.shape[2] < 1) {
    throw FieldError("graphs.decoder_open.inputs.class_embeddings.shape: expected (classes, " + std::to_string(m.templates.size()) +
                     " templates, a fixed width)");
  }
}

void read_templates(const json& j, Manifest& m) {
  const json& list = array(member(j, "templates", "templates"), "templates", 1, 1000);
  for (std::size_t i = 0; i < list.size(); ++i) {
    const std::string at = "templates[" + std::to_string(i) + "]";
    const std::string t = text(list[i], at);
    const bool ok = t.size() <= 1000 && std::count(t.begin(), t.end(), '{') == 1 && std::count(t.begin(), t.end(), '}') == 1 &&
                    t.find("{}") != std::string::npos;
    if (!ok) throw FieldError(at + ": expected exactly one {} (where the class name goes) and no other braces, got " + quote(list[i]));
    m.templates.push_back(t);
  }
}

void read_tokenizer(const json& j, Manifest& m) {
  const json& tok = member(j, "tokenizer", "tokenizer");
  m.tokenizer_file = text(member(tok, "vocab_file", "tokenizer.vocab_file"), "tokenizer.vocab_file", true);
  check_relative(m.tokenizer_file, "tokenizer.vocab_file");
  m.tokenizer_sha256 = sha256_field(member(tok, "vocab_sha256", "tokenizer.vocab_sha256"), "tokenizer.vocab_sha256");
  m.context_length = static_cast<int>(whole(member(tok, "context_length", "tokenizer.context_length"), "tokenizer.context_length", 2, 4096));
  if (const json* kind = optional_member(tok, "kind", "tokenizer.kind"); kind && *kind != "openai-clip-bpe") {
    throw FieldError("tokenizer.kind: this runtime implements 'openai-clip-bpe', got " + quote(*kind));
  }
  for (const auto& [key, want] : {std::pair<const char*, const char*>{"sot_token", kSot}, {"eot_token", kEot}}) {
    const json* v = optional_member(tok, key, std::string("tokenizer.") + key);
    if (v && *v != want) throw FieldError(std::string("tokenizer.") + key + ": this runtime implements '" + want + "', got " + quote(*v));
  }
  auto listed = m.files.find(m.tokenizer_file);
  if (listed == m.files.end()) throw FieldError("files: the tokenizer vocabulary \"" + m.tokenizer_file + "\" is not listed");
  if (listed->second != m.tokenizer_sha256) throw FieldError("tokenizer.vocab_sha256: differs from the vocabulary's sha256 in files");
}

void read_sliding(const json& j, Manifest& m) {
  const int s = m.preprocess.image_size;
  const int legacy = static_cast<int>(s * 2 / 3.0);  // runtime/contract.py legacy_sliding_window
  m.sliding = {s + legacy, s, legacy};
  const json* minor = optional_member(j, "format_minor", "format_minor");
  const bool needed = minor && whole(*minor, "format_minor", 0, INT32_MAX) >= 1;
  const json* sw = optional_member(j, "sliding_window", "sliding_window");
  const json* batch = optional_member(j, "text_batch", "text_batch");
  if (needed && !sw) throw FieldError("sliding_window: missing");
  if (needed && !batch) throw FieldError("text_batch: missing");
  if (batch) m.text_batch = static_cast<int>(whole(*batch, "text_batch", 1, 1 << 20));
  if (!sw) return;
  m.sliding.canvas = static_cast<int>(whole(member(*sw, "canvas", "sliding_window.canvas"), "sliding_window.canvas", 1, 1 << 15));
  m.sliding.window = static_cast<int>(whole(member(*sw, "window", "sliding_window.window"), "sliding_window.window", 1, 1 << 15));
  m.sliding.stride = static_cast<int>(whole(member(*sw, "stride", "sliding_window.stride"), "sliding_window.stride", 1, 1 << 15));
  const SlidingWindow& w = m.sliding;
  if (w.window != s) throw FieldError("sliding_window.window: expected the image size " + std::to_string(s));
  if (w.canvas < w.window || w.stride > w.window || (w.canvas - w.window) % w.stride) {
    throw FieldError("sliding_window: windows of " + std::to_string(w.window) + " at stride " + std::to_string(w.stride) +
                     " do not tile a " + std::to_string(w.canvas) + " canvas (expected canvas >= window >= stride and "
                     "(canvas - window) divisible by stride)");
  }
}

// Format 1.2's precision: required from minor 2 on, fp32 before it.
void read_precision(const json& j, Manifest& m) {
  const json* minor = optional_member(j, "format_minor", "format_minor");
  const json* p = optional_member(j, "precision", "precision");
  if (!p) {
    if (minor && whole(*minor, "format_minor", 0, INT32_MAX) >= 2) throw FieldError("precision: missing");
    return;
  }
  if (!p->is_string() || (*p != "fp32" && *p != "int8")) throw FieldError("precision: expected fp32 or int8, got " + quote(*p));
  m.precision = p->get<std::string>();
}

}  // namespace

void check_artifacts(const json& j, Manifest& m) {
  text(member(j, "preset", "preset"), "preset", true);
  whole(member(j, "opset", "opset"), "opset", 1, 1000);
  read_templates(j, m);
  read_tokenizer(j, m);
  if (const json* chunk = optional_member(j, "class_chunk", "class_chunk"); chunk && !chunk->is_null()) {
    m.class_chunk = static_cast<int>(whole(*chunk, "class_chunk", 1, kMaxClasses));
  }
  const GraphSpec& encoder = m.graph("image_encoder");
  const auto& shape = encoder.inputs.at(0).shape;
  const int64_t s = m.preprocess.image_size;
  if (shape.size() != 4 || shape[1] != 3 || shape[2] != s || shape[3] != s) {
    throw FieldError("preprocess.image_size: " + std::to_string(s) + " differs from the image encoder's input shape");
  }
  check_tensors(encoder, {{"image"}, {"dense_features", "guidance_a", "guidance_b"}}, "graphs.image_encoder");
  check_tensors(m.graph("text_encoder"), {{"token_ids"}, {"text_embeddings"}}, "graphs.text_encoder");
  if (m.graphs.count("decoder")) {  // the whole decoder, run when the classes fit in one chunk
    check_tensors(m.graph("decoder"), {{"dense_features", "guidance_a", "guidance_b", "class_embeddings"}, {"logits"}},
                  "graphs.decoder");
  }
  read_steps(j, m);
  read_sliding(j, m);
  read_precision(j, m);
}

void check_baked(const json& j, Manifest& m) {
  whole(member(j, "class_chunk", "class_chunk"), "class_chunk", 1, kMaxClasses);
  whole(member(j, "post_chunk", "post_chunk"), "post_chunk", 1, kMaxClasses);
  whole(member(j, "opset", "opset"), "opset", 1, 1000);
  const json& classes = array(member(j, "classes", "classes"), "classes", 1, kMaxClasses);
  std::vector<std::pair<int64_t, std::size_t>> order;
  for (std::size_t i = 0; i < classes.size(); ++i) {
    const std::string at = "classes[" + std::to_string(i) + "]";
    order.emplace_back(whole(member(classes[i], "index", at + ".index"), at + ".index", 0, kMaxClasses - 1), i);
  }
  std::sort(order.begin(), order.end());
  for (std::size_t k = 0; k < order.size(); ++k) {
    if (order[k].first != static_cast<int64_t>(k)) throw FieldError("classes: expected the indices 0.." + std::to_string(order.size() - 1) + ", each once");
    const json& c = classes[order[k].second];
    const std::string at = "classes[" + std::to_string(order[k].second) + "]";
    const std::string name = text(member(c, "name", at + ".name"), at + ".name", true);
    if (std::any_of(name.begin(), name.end(), [](char ch) { return (ch >= 0 && ch < 0x20) || ch == 0x7f; })) {
      throw FieldError(at + ".name: expected a class name without control characters, got " + quote(c.at("name")));
    }
    m.class_names.push_back(name);
    const json& rgb = array(member(c, "colour", at + ".colour"), at + ".colour", 3, 3);
    m.colours.push_back({});
    for (int ch = 0; ch < 3; ++ch) {
      m.colours.back()[ch] = static_cast<uint8_t>(whole(rgb[ch], at + ".colour[" + std::to_string(ch) + "]", 0, 255));
    }
  }
  check_class_names(m.class_names, "classes");
  if (m.graphs.size() != 1) throw FieldError("graphs: expected the one graph \"segmenter\"");
  const GraphSpec& g = m.graph("segmenter");
  // Exactly runtime/contract.py baked_graph_spec(side, T).
  const int64_t t = static_cast<int64_t>(m.class_names.size());
  const auto is = [](const TensorSpec& s, const char* name, const char* dtype, std::vector<std::string> dims) {
    if (s.name != name || s.dtype != dtype || s.shape.size() != dims.size()) return false;
    for (std::size_t i = 0; i < dims.size(); ++i) {
      const bool ok = dims[i].empty() ? s.shape[i] >= 1 : (dims[i][0] >= '0' && dims[i][0] <= '9') ? s.shape[i] == std::stoll(dims[i]) : s.dim_names[i] == dims[i];
      if (!ok) return false;
    }
    return true;
  };
  if (g.inputs.size() != 1 || !is(g.inputs[0], "image", "uint8", {"batch", "height", "width", "3"})) {
    throw FieldError("graphs.segmenter.inputs: expected one image uint8 [batch, height, width, 3]");
  }
  if (g.outputs.size() != 2 || !is(g.outputs[0], "labels", "int32", {"batch", "height", "width"})) {
    throw FieldError("graphs.segmenter.outputs: expected labels int32 [batch, height, width], then scores float32 [batch, T, side, side]");
  }
  const TensorSpec& scores = g.outputs[1];
  const bool square = scores.shape.size() == 4 && scores.shape[2] >= 1 && scores.shape[2] == scores.shape[3];
  if (!square || !is(scores, "scores", "float32", {"batch", std::to_string(t), "", ""})) {
    throw FieldError("graphs.segmenter.outputs[1]: expected scores float32 [batch, " + std::to_string(t) +
                     ", side, side] for the " + std::to_string(t) + " classes the manifest lists");
  }
}

}  // namespace escnet::detail
