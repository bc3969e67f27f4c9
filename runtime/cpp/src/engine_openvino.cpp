// The OpenVINO engine: graphs read from verified bytes, compiled once, an infer request per call.
#include <cstring>
#include <openvino/openvino.hpp>
#include <sstream>

#include "engine.hpp"

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

class OpenVinoEngine final : public Engine {
 public:
  OpenVinoEngine(const Folder& folder, const std::vector<std::string>& graphs, const Options& options) {
    if (options.precision != "f32" && options.precision != "bf16") {
      throw Error("precision '" + options.precision + "': expected f32 or bf16");
    }
    ov::AnyMap config{ov::hint::inference_precision(options.precision == "bf16" ? ov::element::bf16 : ov::element::f32),
                      ov::hint::performance_mode(ov::hint::PerformanceMode::LATENCY)};
    if (options.threads > 0) config.emplace(ov::inference_num_threads(options.threads));
    for (const auto& name : graphs) {
      const GraphSpec& spec = folder.manifest().graph(name);
      if (folder.manifest().files.count(spec.file + ".data")) {
        throw Error(spec.file + " keeps its weights in external data, which the C++ runtime does not read yet");
      }
      std::shared_ptr<ov::Model> model;
      try {
        const std::vector<char> bytes = folder.read_verified(spec.file);
        model = core_.read_model(std::string(bytes.begin(), bytes.end()), ov::Tensor());
        if (only_batch_dynamic(spec)) {  // the image encoder: fully static at batch 1
          std::map<std::string, ov::PartialShape> shapes;
          for (const auto& t : spec.inputs) shapes.emplace(t.name, partial_shape(t));
          model->reshape(shapes);
        }
        compiled_.emplace(name, core_.compile_model(model, options.device, config));
      } catch (const Error&) {
        throw;
      } catch (const std::exception& e) {
        throw one_line("OpenVINO could not load " + spec.file, e);
      }
      specs_.emplace(name, spec);
    }
  }

  Outputs run(const std::string& graph, const Feed& feed) const override {
    const GraphSpec& spec = specs_.at(graph);
    try {
      ov::InferRequest request = compiled_.at(graph).create_infer_request();
      for (const auto& [name, tensor] : feed) {
        // The request gets its own copy: OpenVINO may write into an input it shares ("shared data can
        // be modified during runtime"), and the caller's tensors are const.
        ov::Tensor input(ov::element::f32, ov::Shape(tensor->shape.begin(), tensor->shape.end()));
        std::memcpy(input.data<float>(), tensor->data.data(), input.get_byte_size());
        request.set_tensor(name, input);
      }
      request.infer();
      Outputs out;
      for (const auto& o : spec.outputs) {
        const ov::Tensor t = request.get_tensor(o.name);
        const ov::Shape shape = t.get_shape();
        Tensor host{std::vector<int64_t>(shape.begin(), shape.end()), std::vector<float>(t.get_size())};
        std::memcpy(host.data.data(), t.data<const float>(), t.get_byte_size());
        out.emplace(o.name, std::move(host));
      }
      return out;
    } catch (const std::exception& e) {
      throw one_line("OpenVINO failed running " + graph, e);
    }
  }

  Labels run_baked(const std::string& graph, const uint8_t* rgb, int height, int width) const override {
    const GraphSpec& spec = specs_.at(graph);
    try {
      ov::InferRequest request = compiled_.at(graph).create_infer_request();
      ov::Shape shape{1, static_cast<std::size_t>(height), static_cast<std::size_t>(width), 3};
      ov::Tensor image(ov::element::u8, shape);  // a copy: the caller's buffer is const (see run)
      std::memcpy(image.data<uint8_t>(), rgb, image.get_byte_size());
      request.set_tensor(spec.inputs.at(0).name, image);
      request.infer();
      const ov::Tensor t = request.get_tensor(spec.outputs.at(0).name);  // labels (1, H, W) int32
      Labels labels{height, width, std::vector<int32_t>(t.get_size())};
      std::memcpy(labels.data.data(), t.data<const int32_t>(), t.get_byte_size());
      return labels;
    } catch (const std::exception& e) {
      throw one_line("OpenVINO failed running " + graph, e);
    }
  }

 private:
  ov::Core core_;
  mutable std::map<std::string, ov::CompiledModel> compiled_;  // create_infer_request is thread-safe
  std::map<std::string, GraphSpec> specs_;
};

}  // namespace

std::unique_ptr<Engine> openvino_engine(const Folder& folder, const std::vector<std::string>& graphs,
                                        const Options& options) {
  return std::make_unique<OpenVinoEngine>(folder, graphs, options);
}

}  // namespace escnet::detail
