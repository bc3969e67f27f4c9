// The OpenVINO engine: graphs read from verified bytes, checked against the manifest, compiled
// once; infer requests pooled per compiled model.
#include <algorithm>
#include <cstring>
#include <mutex>
#include <openvino/openvino.hpp>
#include <sstream>

#include "engine.hpp"
#include "f32_islands.hpp"
#include "json_fields.hpp"
#include "onnx_external.hpp"

namespace escnet::detail {
namespace {

const char* const kBatch = "batch";  // runtime/contract.py BATCH

// OpenVINO's messages span lines (source location, then the reason): one line, bounded.
Error one_line(const std::string& context, const std::exception& e) {
  std::istringstream in(e.what());
  std::string word, text;
  while (in >> word) text += (text.empty() ? "" : " ") + word;
  if (text.size() > 400) text = text.substr(0, 400) + "...";
  return Error(context + ": " + text);
}

std::string shape_text(const std::vector<int64_t>& shape, const std::vector<std::string>* names = nullptr) {
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) {
    s += (i ? ", " : "") + (shape[i] < 0 ? (names ? (*names)[i] : std::string("?")) : std::to_string(shape[i]));
  }
  return s + "]";
}

ov::PartialShape partial_shape(const TensorSpec& t) {
  std::vector<ov::Dimension> dims;
  for (std::size_t i = 0; i < t.shape.size(); ++i) {
    dims.emplace_back(t.dim_names[i] == kBatch ? ov::Dimension(1) : ov::Dimension(t.shape[i]));  // -1: dynamic
  }
  return ov::PartialShape(dims);
}

// Graphs with a class axis stay dynamic: fixing only their batch to 1 trips OpenVINO's CPU
// transformations (ShuffleChannelsFusion on the decoder steps' reshapes, OpenVINO 2026.4).
bool only_batch_dynamic(const GraphSpec& spec) {
  for (const auto& t : spec.inputs) {
    for (const auto& name : t.dim_names) {
      if (!name.empty() && name != kBatch) return false;
    }
  }
  return true;
}

ov::element::Type element_type(const std::string& dtype) {
  if (dtype == "float32") return ov::element::f32;
  if (dtype == "float16") return ov::element::f16;
  if (dtype == "int64") return ov::element::i64;
  if (dtype == "int32") return ov::element::i32;
  return ov::element::u8;
}

// One tensor of the manifest against the graph's port: dtype, rank, every fixed size.
void check_port(const TensorSpec& t, const ov::Output<const ov::Node>& port, const std::string& field, const std::string& file) {
  const ov::PartialShape& got = port.get_partial_shape();
  bool ok = port.get_element_type() == element_type(t.dtype) && got.rank().is_static() &&
            got.rank().get_length() == static_cast<int64_t>(t.shape.size());
  for (std::size_t i = 0; ok && i < t.shape.size(); ++i) {
    ok = t.shape[i] < 0 || got[i].is_dynamic() || got[i].get_length() == t.shape[i];
  }
  if (!ok) {
    throw Error(field + " (" + t.name + "): the manifest says " + t.dtype + " " + shape_text(t.shape, &t.dim_names) + ", " + file +
                " has " + port.get_element_type().get_type_name() + " " + got.to_string() + "; the manifest and its graph disagree");
  }
}

void check_model(const ov::Model& model, const GraphSpec& spec) {
  const std::string at = "graphs." + spec.name;
  if (model.inputs().size() != spec.inputs.size()) {
    throw Error(at + ".inputs: the manifest lists " + std::to_string(spec.inputs.size()) + ", " + spec.file + " has " +
                std::to_string(model.inputs().size()) + "; the manifest and its graph disagree");
  }
  for (const auto& [list, kind] : {std::pair{&spec.inputs, "inputs"}, std::pair{&spec.outputs, "outputs"}}) {
    for (std::size_t i = 0; i < list->size(); ++i) {
      const TensorSpec& t = (*list)[i];
      const std::string field = at + "." + kind + "[" + std::to_string(i) + "]";
      const auto& ports = kind[0] == 'i' ? model.inputs() : model.outputs();
      const ov::Output<const ov::Node>* port = nullptr;
      for (const auto& p : ports) {
        if (p.get_names().count(t.name)) port = &p;
      }
      if (!port) throw Error(field + " (" + t.name + "): " + spec.file + " has no such tensor; the manifest and its graph disagree");
      check_port(t, *port, field, spec.file);
    }
  }
}

// Infer requests of one compiled model: taken for a call, given back after it; a new one is made
// only while every pooled one is busy, so a pool grows to the number of concurrent callers.
class RequestPool {
 public:
  explicit RequestPool(ov::CompiledModel compiled, ov::Tensor weights = {}, std::vector<std::string> islands = {})
      : compiled_(std::move(compiled)), weights_(std::move(weights)), islands_(std::move(islands)) {}
  const std::vector<std::string>& islands() const { return islands_; }
  class Lease {
   public:
    Lease(RequestPool* pool, ov::InferRequest request) : pool_(pool), request_(std::move(request)) {}
    Lease(Lease&& other) noexcept : pool_(other.pool_), request_(std::move(other.request_)) { other.pool_ = nullptr; }
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    Lease& operator=(Lease&&) = delete;
    ~Lease() {
      if (pool_) pool_->give_back(std::move(request_));
    }
    ov::InferRequest* operator->() { return &request_; }

   private:
    RequestPool* pool_;
    ov::InferRequest request_;
  };

  Lease take() {
    std::unique_lock<std::mutex> lock(mutex_);
    if (free_.empty()) {
      lock.unlock();
      return Lease(this, compiled_.create_infer_request());
    }
    ov::InferRequest request = std::move(free_.back());
    free_.pop_back();
    return Lease(this, std::move(request));
  }
  const ov::CompiledModel& compiled() const { return compiled_; }

 private:
  void give_back(ov::InferRequest request) noexcept {
    try {
      std::lock_guard<std::mutex> lock(mutex_);
      free_.push_back(std::move(request));
    } catch (...) {  // out of memory for the list: the request is dropped, not pooled
    }
  }
  ov::CompiledModel compiled_;
  ov::Tensor weights_;               // the IR weights a model with f32 islands was read from (may be shared)
  std::vector<std::string> islands_;  // the nodes kept f32 under bf16, in graph order
  std::mutex mutex_;
  std::vector<ov::InferRequest> free_;
};

// A fed tensor against its manifest spec: rank, fixed sizes, batch 1, data of the shape's size.
void check_feed(const GraphSpec& spec, const std::string& name, const Tensor& t) {
  for (std::size_t i = 0; i < spec.inputs.size(); ++i) {
    const TensorSpec& want = spec.inputs[i];
    if (want.name != name) continue;
    bool ok = t.shape.size() == want.shape.size();
    std::size_t count = 1;
    for (std::size_t k = 0; ok && k < t.shape.size(); ++k) {
      ok = t.shape[k] >= 1 && (want.shape[k] < 0 || t.shape[k] == want.shape[k]) && (want.dim_names[k] != kBatch || t.shape[k] == 1);
      count *= static_cast<std::size_t>(std::max<int64_t>(t.shape[k], 0));
    }
    if (!ok || count != t.data.size()) {
      throw Error("graphs." + spec.name + ".inputs[" + std::to_string(i) + "] (" + name + "): given " + shape_text(t.shape) +
                  ", the manifest says " + shape_text(want.shape, &want.dim_names));
    }
    return;
  }
  throw Error("graphs." + spec.name + ".inputs: no input '" + name + "'");
}

class OpenVinoEngine final : public Engine {
 public:
  OpenVinoEngine(const Folder& folder, const std::vector<std::string>& graphs, const Options& options)
      : folder_(folder), device_(options.device) {
    if (options.precision != "f32" && options.precision != "bf16") {
      throw Error("precision '" + options.precision + "': expected f32 or bf16");
    }
    // As the Python runtime (backends/ov.py INT8_UNDER_BF16): OpenVINO 2026.4's CPU plugin cannot
    // compile the quantised decoder's int8 convolutions under a bf16 hint.
    if (options.precision == "bf16" && folder.manifest().precision == "int8") {
      throw Error("precision bf16 on int8 artifacts: OpenVINO's CPU plugin cannot compile their decoder in bf16 "
                  "(no implementation for its int8 convolutions); use f32, which runs their QDQ pairs in int8");
    }
    ov::AnyMap config{ov::hint::inference_precision(options.precision == "bf16" ? ov::element::bf16 : ov::element::f32),
                      ov::hint::performance_mode(ov::hint::PerformanceMode::LATENCY)};
    if (options.threads > 0) config.emplace(ov::inference_num_threads(options.threads));
    config_ = config;
    bf16_ = options.precision == "bf16";
    for (const auto& name : graphs) pool(name);
  }

  Outputs run(const std::string& graph, const Feed& feed) const override {
    RequestPool& requests = pool(graph);
    const GraphSpec& spec = folder_.manifest().graph(graph);
    for (const auto& [name, tensor] : feed) check_feed(spec, name, *tensor);
    try {
      auto request = requests.take();
      for (const auto& [name, tensor] : feed) {
        // The request gets its own copy: OpenVINO may write into an input it shares ("shared data can
        // be modified during runtime"), and the caller's tensors are const.
        ov::Tensor input(ov::element::f32, ov::Shape(tensor->shape.begin(), tensor->shape.end()));
        std::memcpy(input.data<float>(), tensor->data.data(), input.get_byte_size());
        request->set_tensor(name, input);
      }
      request->infer();
      return outputs(*request.operator->(), spec);
    } catch (const Error&) {
      throw;
    } catch (const std::exception& e) {
      throw one_line("OpenVINO failed running " + graph, e);
    }
  }

  // Like run(): take a pooled request, set its inputs, infer, read the outputs; here the one input is
  // token ids (int64), there every input is float32, so only the tensor setup differs.
  Outputs run_ids(const std::string& graph, const std::string& input, const std::vector<int64_t>& ids, int64_t rows,
                  int64_t cols) const override {
    RequestPool& requests = pool(graph);
    const GraphSpec& spec = folder_.manifest().graph(graph);
    if (rows < 1 || cols < 1 || ids.size() != static_cast<std::size_t>(rows * cols)) throw Error("graphs." + graph + ": bad token ids");
    try {
      auto request = requests.take();
      ov::Tensor t(ov::element::i64, ov::Shape{static_cast<std::size_t>(rows), static_cast<std::size_t>(cols)});
      std::memcpy(t.data<int64_t>(), ids.data(), t.get_byte_size());
      request->set_tensor(input, t);
      request->infer();
      return outputs(*request.operator->(), spec);
    } catch (const Error&) {
      throw;
    } catch (const std::exception& e) {
      throw one_line("OpenVINO failed running " + graph, e);
    }
  }

  std::vector<std::string> f32_islands(const std::string& graph) const override { return pool(graph).islands(); }

  static Outputs outputs(ov::InferRequest& request, const GraphSpec& spec) {
    Outputs out;
    for (const auto& o : spec.outputs) {
      const ov::Tensor t = request.get_tensor(o.name);
      if (t.get_element_type() != ov::element::f32) throw Error("graphs." + spec.name + ".outputs (" + o.name + "): not float32");
      const ov::Shape shape = t.get_shape();
      Tensor host{std::vector<int64_t>(shape.begin(), shape.end()), std::vector<float>(t.get_size())};
      std::memcpy(host.data.data(), t.data<const float>(), t.get_byte_size());
      out.emplace(o.name, std::move(host));
    }
    return out;
  }

  BakedOutputs run_baked(const std::string& graph, const uint8_t* rgb, int height, int width, int64_t classes) const override {
    RequestPool& requests = pool(graph);
    const GraphSpec& spec = folder_.manifest().graph(graph);
    BakedOutputs out;
    try {
      auto request = requests.take();
      ov::Shape shape{1, static_cast<std::size_t>(height), static_cast<std::size_t>(width), 3};
      ov::Tensor image(ov::element::u8, shape);  // a copy: the caller's buffer is const (see run)
      std::memcpy(image.data<uint8_t>(), rgb, image.get_byte_size());
      request->set_tensor(spec.inputs.at(0).name, image);
      request->infer();
      out.labels = baked_labels(request->get_tensor("labels"), height, width, classes);
      out.scores = baked_scores(request->get_tensor("scores"), classes);
    } catch (const Error&) {
      throw;
    } catch (const std::exception& e) {
      throw one_line("OpenVINO failed running " + graph, e);
    }
    return out;
  }

 private:
  // The graph's request pool, compiling the graph on its first use (under the lock: once).
  RequestPool& pool(const std::string& graph) const {
    std::lock_guard<std::mutex> lock(pools_mutex_);
    auto it = pools_.find(graph);
    if (it == pools_.end()) {
      const GraphSpec& spec = folder_.manifest().graph(graph);
      it = pools_.emplace(graph, compile(folder_, spec, device_, config_)).first;
    }
    return *it->second;
  }

  // Under bf16 the f32 islands are marked and the model goes once through IR (f32_islands.hpp).
  std::unique_ptr<RequestPool> compile(const Folder& folder, const GraphSpec& spec, const std::string& device,
                                       const ov::AnyMap& config) const {
    const std::vector<char> bytes = folder.read_verified(spec.file);
    refuse_external_data(folder, bytes, spec.file);
    try {
      std::shared_ptr<ov::Model> model = core_.read_model(std::string(bytes.begin(), bytes.end()), ov::Tensor());
      check_model(*model, spec);
      // The image encoder: fully static at batch 1. Not on int8 weights: OpenVINO picks other int8
      // kernels for the static graph, whose outputs differ from the dynamic graph's (up to 0.02 on
      // the tiny preset's features) and so from the Python runtime's, which keeps it dynamic.
      if (only_batch_dynamic(spec) && folder.manifest().precision != "int8") {
        std::map<std::string, ov::PartialShape> shapes;
        for (const auto& t : spec.inputs) shapes.emplace(t.name, partial_shape(t));
        model->reshape(shapes);
      }
      ov::Tensor weights;
      std::vector<std::string> islands;
      if (bf16_) islands = mark_f32_islands(*model);
      if (!islands.empty()) model = through_ir(core_, model, weights);
      return std::make_unique<RequestPool>(core_.compile_model(model, device, config), weights, islands);
    } catch (const Error&) {
      throw;
    } catch (const std::exception& e) {
      throw one_line("OpenVINO could not load " + spec.file, e);
    }
  }

  // Every byte the engine reads was hashed: OpenVINO given a graph as bytes would open an external-data
  // location itself (an absolute path as it stands, a relative one against the current folder).
  static void refuse_external_data(const Folder& folder, const std::vector<char>& bytes, const std::string& file) {
    for (const auto& location : external_locations(bytes, file)) {
      try {
        check_relative(location, file + ": external data");
      } catch (const FieldError& e) {
        throw Error(folder.path().string() + ": " + e.what() + "; refused");
      }
      throw Error(folder.path().string() + ": " + file + " keeps weights in external data ('" + location +
                  "'), which the C++ runtime does not load (OpenVINO would read it unverified); refused");
    }
  }

  static std::vector<int32_t> baked_labels(const ov::Tensor& t, int height, int width, int64_t classes) {
    const ov::Shape s = t.get_shape();
    const bool shape_ok = s.size() == 3 && s[0] == 1 && s[1] == std::size_t(height) && s[2] == std::size_t(width);
    if (!shape_ok || t.get_element_type() != ov::element::i32) {
      throw Error("graphs.segmenter.outputs (labels): the graph gave " + t.get_element_type().get_type_name() + " " +
                  ov::PartialShape(s).to_string() + " for a " + std::to_string(height) + "x" + std::to_string(width) +
                  " image, expected i32 [1," + std::to_string(height) + "," + std::to_string(width) + "]");
    }
    std::vector<int32_t> labels(t.get_size());
    std::memcpy(labels.data(), t.data<const int32_t>(), t.get_byte_size());
    for (int32_t v : labels) {
      if (v < 0 || v >= classes) {
        throw Error("graphs.segmenter.outputs (labels): the graph gave label " + std::to_string(v) + ", the manifest lists " +
                    std::to_string(classes) + " classes; the manifest and its graph disagree");
      }
    }
    return labels;
  }

  static Tensor baked_scores(const ov::Tensor& t, int64_t classes) {
    const ov::Shape s = t.get_shape();
    if (s.size() != 4 || s[0] != 1 || s[1] != std::size_t(classes) || t.get_element_type() != ov::element::f32) {
      throw Error("graphs.segmenter.outputs (scores): the graph gave " + ov::PartialShape(s).to_string() + ", expected [1," +
                  std::to_string(classes) + ",side,side]: the manifest lists " + std::to_string(classes) + " classes");
    }
    Tensor out{{static_cast<int64_t>(s[1]), static_cast<int64_t>(s[2]), static_cast<int64_t>(s[3])}, std::vector<float>(t.get_size())};
    std::memcpy(out.data.data(), t.data<const float>(), t.get_byte_size());
    return out;
  }

  const Folder& folder_;
  std::string device_;
  ov::AnyMap config_;
  bool bf16_ = false;
  mutable ov::Core core_;
  mutable std::mutex pools_mutex_;
  mutable std::map<std::string, std::unique_ptr<RequestPool>> pools_;  // a pool never moves once made
};

}  // namespace

std::unique_ptr<Engine> openvino_engine(const Folder& folder, const std::vector<std::string>& graphs,
                                        const Options& options) {
  return std::make_unique<OpenVinoEngine>(folder, graphs, options);
}

}  // namespace escnet::detail
