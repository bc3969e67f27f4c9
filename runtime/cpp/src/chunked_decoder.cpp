// The orchestration of runtime/chunked_decoder.py: for each step in the manifest's order, for
// each chunk in order, run the step feeding every input by name from the chunk's own values,
// else from the shared ones; outputs are carried to the chunk's next steps or, for parts of a
// sum over all classes, combined over chunks into a shared value once every chunk has run.
#include "chunked_decoder.hpp"

#include <algorithm>
#include <cmath>
#include <set>

namespace escnet::detail {
namespace {

// numpy's float32 logaddexp (npy_logaddexpf), so that the reduction rounds as the Python runtime's.
float logaddexp(float x, float y) {
  if (x == y) return x + 0.693147180559945309417232121458176568f;  // log(2)
  const float t = x - y;
  if (t > 0) return x + std::log1p(std::exp(-t));
  if (t <= 0) return y + std::log1p(std::exp(t));
  return t;  // NaN
}

// Shares of one quantity, in chunk order -> the value over all classes (a left fold, as numpy's
// reduce over a stacked axis 0 computes it).
Tensor combine(std::vector<Tensor>& shares, Combine how) {
  Tensor total = std::move(shares.front());
  for (std::size_t j = 1; j < shares.size(); ++j) {
    const std::vector<float>& part = shares[j].data;
    if (part.size() != total.data.size()) throw Error("decoder step parts of different sizes across chunks");
    for (std::size_t i = 0; i < part.size(); ++i) {
      total.data[i] = how == Combine::kSum ? total.data[i] + part[i] : logaddexp(total.data[i], part[i]);
    }
  }
  return total;
}

}  // namespace

StepRules StepRules::contract() {
  StepRules r;
  r.carried = {{"class_state_out", "class_state"}, {"prompt_scores_out", "prompt_scores"}};
  r.parts = {{"score_logsumexp_part", {"score_logsumexp", Combine::kLogSumExp}},
             {"attention_kv_part", {"attention_kv", Combine::kSum}},
             {"attention_k_sum_part", {"attention_k_sum", Combine::kSum}}};
  return r;
}

ChunkedDecoder::ChunkedDecoder(const Engine& engine, const Manifest& manifest)
    : engine_(engine), rules_(StepRules::contract()) {
  if (manifest.decoder_steps.size() < 2) {
    throw Error("these artifacts have no decoder step graphs; export them again with this version of escnet-export");
  }
  std::set<std::string> known{names::kDense, names::kGuidanceA, names::kGuidanceB, names::kClasses};
  for (const auto& name : manifest.decoder_steps) {
    const GraphSpec& g = manifest.graph(name);
    for (const auto& t : g.inputs) {
      if (!known.count(t.name)) throw Error("decoder step " + name + " reads '" + t.name + "', which no earlier step provides");
    }
    for (const auto& t : g.outputs) {
      auto carried = rules_.carried.find(t.name);
      auto part = rules_.parts.find(t.name);
      known.insert(carried != rules_.carried.end() ? carried->second
                   : part != rules_.parts.end()    ? part->second.first
                                                   : t.name);
    }
    steps_.push_back(&g);
  }
  const auto& last = steps_.back()->outputs;
  if (std::none_of(last.begin(), last.end(), [](const TensorSpec& t) { return t.name == names::kLogits; })) {
    throw Error("the last decoder step " + steps_.back()->name + " gives no logits");
  }
}

std::vector<Tensor> ChunkedDecoder::operator()(const Outputs& features, const std::vector<float>& embeddings,
                                               int64_t classes, int64_t templates, int64_t dim, int chunk) const {
  std::map<std::string, Tensor> shared;
  for (const auto* name : {&names::kDense, &names::kGuidanceA, &names::kGuidanceB}) {
    auto it = features.find(*name);
    if (it == features.end()) throw Error("the image encoder gave no '" + *name + "'");
    shared.emplace(*name, it->second);
  }
  std::vector<std::map<std::string, Tensor>> chunks;  // each chunk's own values
  const int64_t row = templates * dim;
  for (int64_t s = 0; s < classes; s += chunk) {
    const int64_t e = std::min<int64_t>(s + chunk, classes);
    Tensor text{{e - s, templates, dim}, std::vector<float>(embeddings.begin() + s * row, embeddings.begin() + e * row)};
    chunks.push_back({{names::kClasses, std::move(text)}});
  }
  for (const GraphSpec* step : steps_) {
    std::map<std::string, std::vector<Tensor>> parts;
    for (auto& values : chunks) {
      Feed feed;
      for (const auto& t : step->inputs) {
        auto own = values.find(t.name);
        feed.emplace_back(t.name, own != values.end() ? &own->second : &shared.at(t.name));
      }
      Outputs out = engine_.run(step->name, feed);
      for (auto& [name, value] : out) {
        if (rules_.parts.count(name)) {
          parts[name].push_back(std::move(value));
          continue;
        }
        auto carried = rules_.carried.find(name);
        values[carried != rules_.carried.end() ? carried->second : name] = std::move(value);
      }
    }
    for (auto& [name, shares] : parts) {
      const auto& [target, how] = rules_.parts.at(name);
      shared[target] = combine(shares, how);
    }
  }
  std::vector<Tensor> logits;
  for (auto& values : chunks) logits.push_back(std::move(values.at(names::kLogits)));
  return logits;
}

}  // namespace escnet::detail
