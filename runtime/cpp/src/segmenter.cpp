// escnet::Segmenter: an artifacts folder (image encoder + decoder steps, a vocabulary file) or a
// baked folder (one graph), behind one API.
#include "escnet/segmenter.hpp"

#include <algorithm>
#include <mutex>

#include "chunked_decoder.hpp"
#include "engine.hpp"
#include "image_ops.hpp"
#include "sliding.hpp"
#include "manifest.hpp"
#include "text_encoder.hpp"
#include "tokenizer.hpp"
#include "vocabulary.hpp"
#include "vocabulary_writer.hpp"

namespace escnet {
using namespace detail;

namespace {
const char* const kSegmenter = "segmenter";  // runtime/contract.py SEGMENTER
const int kMaxSide = 1 << 15;
const uint64_t kMaxPixels = 89'478'485;  // the Python runtime's DEFAULT_MAX_PIXELS
}  // namespace

struct Segmenter::Impl {
  Folder folder;
  Options options;
  std::unique_ptr<Engine> engine;
  std::unique_ptr<ChunkedDecoder> decoder;
  int chunk = 0;
  int64_t templates = 0, dim = 0;  // the decoder's class_embeddings (P, D)
  mutable std::mutex mutex;        // guards `vocabulary` (the pointer, not what it points to)
  std::shared_ptr<const Vocabulary> vocabulary;
  mutable std::mutex tokenizer_mutex;
  mutable std::unique_ptr<ClipTokenizer> clip;  // read and built on first use

  const ClipTokenizer& tokenizer() const {
    std::lock_guard<std::mutex> lock(tokenizer_mutex);
    if (folder.manifest().baked) throw Error("this graph has its classes baked in; it takes no class names");
    if (!clip) {
      const Manifest& m = folder.manifest();
      clip = std::make_unique<ClipTokenizer>(folder.read_verified(m.tokenizer_file), m.context_length,
                                             (folder.path() / m.tokenizer_file).string());
    }
    return *clip;
  }

  Impl(const std::string& path, const Options& opts) : folder(path), options(opts) {
    const Manifest& m = folder.manifest();
    if (m.baked) {
      engine = openvino_engine(folder, {kSegmenter}, options);
      auto v = std::make_shared<Vocabulary>();
      v->names = m.class_names;
      v->colours = m.colours;
      vocabulary = std::move(v);
      return;
    }
    if (options.class_chunk < 0 || options.class_chunk > kMaxClasses) {
      throw Error("class_chunk is " + std::to_string(options.class_chunk) + "; expected 1.." + std::to_string(kMaxClasses) +
                  " (or 0: the manifest's)");
    }
    if (options.threads < 0 || options.threads > 1024) throw Error("threads is " + std::to_string(options.threads) + "; expected 0..1024");
    chunk = options.class_chunk > 0 ? options.class_chunk : (m.class_chunk > 0 ? m.class_chunk : 32);
    std::vector<std::string> graphs{names::kImageEncoder};
    graphs.insert(graphs.end(), m.decoder_steps.begin(), m.decoder_steps.end());
    if (m.decoder_steps.empty()) {
      throw Error(folder.path().string() + ": no decoder step graphs; export the artifacts again with this escnet-export");
    }
    const TensorSpec& classes = m.graph(m.decoder_steps.front()).input(names::kClasses);  // (T, P, D)
    templates = classes.shape.at(1);
    dim = classes.shape.at(2);
    m.graph(names::kTextEncoder);  // the vocabulary file names its sha256
    engine = openvino_engine(folder, graphs, options);
    decoder = std::make_unique<ChunkedDecoder>(*engine, m);
  }

  std::shared_ptr<const Vocabulary> current() const {
    std::lock_guard<std::mutex> lock(mutex);
    if (!vocabulary) throw Error("no vocabulary; call set_vocabulary(file) first");
    return vocabulary;
  }

  // One (3, S, S) view -> logits per chunk of classes, each (1, Tc, side, side).
  std::vector<Tensor> decode(const Vocabulary& v, std::vector<float> view) const {
    const int s = folder.manifest().preprocess.image_size;
    Tensor image{{1, 3, s, s}, std::move(view)};
    const Outputs features = engine->run(names::kImageEncoder, {{names::kImage, &image}});
    const auto classes = static_cast<int64_t>(v.names.size());
    const Manifest& m = folder.manifest();
    if (classes <= chunk && m.graphs.count(names::kDecoder)) return {whole_decoder(m.graph(names::kDecoder), features, v)};
    return (*decoder)(features, v.embeddings, classes, templates, dim, chunk);
  }

  // As the Python runtime, classes that fit in one chunk go through the whole decoder in one call
  // (its int8 form is quantised apart from the steps', so the steps would give other int8 results).
  Tensor whole_decoder(const GraphSpec& spec, const Outputs& features, const Vocabulary& v) const {
    Tensor text{{static_cast<int64_t>(v.names.size()), templates, dim}, v.embeddings};  // (T, P, D)
    Feed feed;
    for (const auto& t : spec.inputs) {
      auto it = features.find(t.name);
      if (t.name != names::kClasses && it == features.end()) throw Error("the image encoder gave no '" + t.name + "'");
      feed.emplace_back(t.name, t.name == names::kClasses ? &text : &it->second);
    }
    Outputs out = engine->run(names::kDecoder, feed);
    return std::move(out.at(names::kLogits));
  }

  Labels segment_sliding(const Vocabulary& v, const uint8_t* rgb, int height, int width, std::size_t stride,
                         bool with_scores) const {
    const Manifest& m = folder.manifest();
    const SlidingGrid grid(m.sliding);
    std::vector<std::vector<Tensor>> logits;  // per view (windows, then global): per chunk
    for (auto& view : grid.views(rgb, height, width, stride, m.preprocess)) logits.push_back(decode(v, std::move(view)));
    const auto classes = static_cast<int64_t>(v.names.size());
    Labels result{height, width, {}, {}, v.names};
    if (with_scores) result.scores.resize(static_cast<std::size_t>(classes) * height * width);
    LabelAccumulator labels(m.preprocess.image_size, height, width, with_scores ? result.scores.data() : nullptr);
    int32_t index = 0;
    for (std::size_t part = 0; part < logits.front().size(); ++part) {
      const Tensor& first = logits.front()[part];  // (1, Tc, side, side)
      const int side = static_cast<int>(first.shape.at(3));
      for (int64_t c = 0; c < first.shape.at(1); ++c, ++index) {
        std::vector<std::vector<float>> probs;
        for (const auto& view : logits) {
          probs.push_back(view_probabilities(view[part].data.data() + c * side * side, side, m.preprocess.image_size));
        }
        const std::vector<float> scores = grid.fold(probs);
        labels.add_probabilities(index, scores.data(), grid.canvas());
      }
    }
    result.data = labels.take();
    return result;
  }

  Labels segment_steps(const Vocabulary& v, const uint8_t* rgb, int height, int width, std::size_t stride,
                       bool with_scores) const {
    const Preprocess& pre = folder.manifest().preprocess;
    const int s = pre.image_size;
    const auto classes = static_cast<int64_t>(v.names.size());
    const std::vector<Tensor> logits = decode(v, image_view(rgb, height, width, stride, pre));
    Labels result{height, width, {}, {}, v.names};
    if (with_scores) result.scores.resize(static_cast<std::size_t>(classes) * height * width);
    LabelAccumulator labels(s, height, width, with_scores ? result.scores.data() : nullptr);
    int32_t index = 0;
    for (const Tensor& part : logits) {  // (1, Tc, side, side)
      const int side = static_cast<int>(part.shape.at(3));
      for (int64_t c = 0; c < part.shape.at(1); ++c, ++index) {
        labels.add(index, part.data.data() + c * side * side, side);
      }
    }
    result.data = labels.take();
    return result;
  }

  Labels segment_baked(const uint8_t* rgb, int height, int width, std::size_t stride) const {
    const std::size_t row = static_cast<std::size_t>(width) * 3;
    const auto classes = static_cast<int64_t>(folder.manifest().class_names.size());
    std::vector<uint8_t> packed;
    if (stride != row) {
      packed.resize(row * height);
      for (int y = 0; y < height; ++y) std::copy_n(rgb + y * stride, row, packed.data() + y * row);
    }
    BakedOutputs out = engine->run_baked(kSegmenter, packed.empty() ? rgb : packed.data(), height, width, classes);
    return Labels{height, width, std::move(out.labels), {}, folder.manifest().class_names};
  }
};

Segmenter::Segmenter(const std::string& folder, const Options& options) : impl_(std::make_unique<Impl>(folder, options)) {}
Segmenter::~Segmenter() = default;
Segmenter::Segmenter(Segmenter&&) noexcept = default;
Segmenter& Segmenter::operator=(Segmenter&&) noexcept = default;

void Segmenter::set_vocabulary(const std::string& vocabulary_file) {
  if (impl_->folder.manifest().baked) throw Error("this graph has its classes baked in; it takes no vocabulary file");
  const Manifest& m = impl_->folder.manifest();
  std::shared_ptr<const Vocabulary> v;
  try {
    v = std::make_shared<const Vocabulary>(read_vocabulary(vocabulary_file, m, m.graph(names::kTextEncoder).file,
                                                           impl_->templates, impl_->dim));
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Error(vocabulary_file + ": not a usable vocabulary file (" + e.what() + ")");
  }
  std::lock_guard<std::mutex> lock(impl_->mutex);
  impl_->vocabulary = std::move(v);
}

void Segmenter::set_classes(const std::vector<std::string>& names, const std::string& cache_file) {
  const ClipTokenizer& tok = impl_->tokenizer();
  const Manifest& m = impl_->folder.manifest();
  std::error_code ec;
  if (!cache_file.empty() && std::filesystem::exists(cache_file, ec)) {
    try {
      auto cached = std::make_shared<const Vocabulary>(
          read_vocabulary(cache_file, m, m.graph(names::kTextEncoder).file, impl_->templates, impl_->dim));
      if (cached->names == names) {
        std::lock_guard<std::mutex> lock(impl_->mutex);
        impl_->vocabulary = std::move(cached);
        return;
      }
    } catch (const Error&) {  // stale or damaged: encoded again and rewritten below
    }
    if (!is_vocabulary_file(cache_file)) {
      throw Error(cache_file + ": exists and is not a vocabulary file; not written over (give another cache file)");
    }
  }
  auto v = std::make_shared<const Vocabulary>(encode_classes(*impl_->engine, tok, m, names, impl_->dim));
  if (!cache_file.empty()) {
    write_vocabulary(cache_file, *v, m, m.files.at(m.graph(names::kTextEncoder).file), impl_->options.precision == "bf16" ? "bf16" : "fp32");
  }
  std::lock_guard<std::mutex> lock(impl_->mutex);
  impl_->vocabulary = std::move(v);
}

void Segmenter::save_vocabulary(const std::string& vocabulary_file) const {
  const Manifest& m = impl_->folder.manifest();
  if (m.baked) throw Error("this graph has its classes baked in; there is no vocabulary to save");
  const auto v = impl_->current();
  write_vocabulary(vocabulary_file, *v, m, m.files.at(m.graph(names::kTextEncoder).file),
                   impl_->options.precision == "bf16" ? "bf16" : "fp32");
}

std::vector<int64_t> Segmenter::tokenize(const std::string& text) const { return impl_->tokenizer().tokenize(text); }

namespace {
void check_image(const uint8_t* rgb, int height, int width, std::size_t stride) {
  if (rgb == nullptr) throw Error("image pointer is null");
  if (height < 1 || width < 1 || height > kMaxSide || width > kMaxSide) {
    throw Error("image is " + std::to_string(height) + "x" + std::to_string(width) + "; expected 1.." +
                std::to_string(kMaxSide) + " pixels a side");
  }
  if (uint64_t(height) * uint64_t(width) > kMaxPixels) {
    throw Error("image is " + std::to_string(width) + "x" + std::to_string(height) + ", over the limit of " +
                std::to_string(kMaxPixels) + " pixels");
  }
  if (stride < static_cast<std::size_t>(width) * 3) {
    throw Error("row stride " + std::to_string(stride) + " is shorter than a row of " + std::to_string(width) + " RGB pixels");
  }
}
}  // namespace

Labels Segmenter::segment(const uint8_t* rgb, int height, int width, std::size_t stride, bool with_scores,
                          bool sliding_window) const {
  return segment(std::vector<Image>{{rgb, height, width, stride}}, with_scores, sliding_window).front();
}

std::vector<Labels> Segmenter::segment(const std::vector<Image>& images, bool with_scores, bool sliding_window) const {
  for (const Image& im : images) check_image(im.rgb, im.height, im.width, im.stride);  // all before any work
  const auto vocabulary = impl_->current();
  const bool baked = impl_->folder.manifest().baked;
  if (baked && sliding_window) throw Error("the sliding window needs an artifacts folder; a baked graph runs one view");
  if (baked && with_scores) {
    throw Error("scores at the image's size need an artifacts folder; a baked graph gives them at its own resolution");
  }
  for (const Image& im : images) {
    if (with_scores && vocabulary->names.size() * uint64_t(im.height) * uint64_t(im.width) > (uint64_t(1) << 31)) {
      throw Error("scores for " + std::to_string(vocabulary->names.size()) + " classes at " + std::to_string(im.height) +
                  "x" + std::to_string(im.width) + " would take over 8 GiB; ask for labels only, or a smaller image");
    }
  }
  std::vector<Labels> out;
  for (const Image& im : images) {
    if (baked) {
      out.push_back(impl_->segment_baked(im.rgb, im.height, im.width, im.stride));
    } else if (sliding_window) {
      out.push_back(impl_->segment_sliding(*vocabulary, im.rgb, im.height, im.width, im.stride, with_scores));
    } else {
      out.push_back(impl_->segment_steps(*vocabulary, im.rgb, im.height, im.width, im.stride, with_scores));
    }
  }
  return out;
}

std::vector<std::string> Segmenter::class_names() const {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  return impl_->vocabulary ? impl_->vocabulary->names : std::vector<std::string>{};
}

std::vector<std::array<uint8_t, 3>> Segmenter::colours() const {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  return impl_->vocabulary ? impl_->vocabulary->colours : std::vector<std::array<uint8_t, 3>>{};
}

bool Segmenter::baked() const { return impl_->folder.manifest().baked; }

std::string Segmenter::weights_precision() const {
  const auto& m = impl_->folder.manifest();
  return m.baked ? std::string() : m.precision;
}

std::map<std::string, std::vector<std::string>> Segmenter::f32_islands() const {
  std::map<std::string, std::vector<std::string>> out;
  for (const auto& [name, spec] : impl_->folder.manifest().graphs) out.emplace(name, impl_->engine->f32_islands(name));
  return out;
}

}  // namespace escnet
