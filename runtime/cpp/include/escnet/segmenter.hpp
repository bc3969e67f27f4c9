// escnet C++ runtime: open-vocabulary segmentation from an escnet artifacts folder.
//
//   escnet::Segmenter seg("artifacts");          // reads manifest.json, verifies every sha256
//   seg.set_vocabulary("ade150.escvocab");       // class embeddings written by `escnet-export vocab`
//   escnet::Labels out = seg.segment(rgb, h, w, stride);   // out.data[y * w + x] = class index
//
// A baked folder (`escnet-export bake`) works the same way, with its classes inside the graph:
// no set_vocabulary call (class_names() lists them).
//
// Thread safety: segment() is const and may be called from many threads at once (compiled models
// are shared; each keeps a pool of OpenVINO infer requests, one per concurrent call, reused).
// set_vocabulary() may run concurrently with segment(): calls already running finish with the
// vocabulary they started with. Errors are escnet::Error exceptions with one-line messages.
// No global state: two Segmenters in one process are independent.
#pragma once

#include <array>
#include <map>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace escnet {

// Every failure the library reports: a missing or tampered folder, a stale vocabulary, bad input.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// One RGB image: height rows of width x 3 bytes (R, G, B), row r starting at rgb + r * stride.
struct Image {
  const uint8_t* rgb = nullptr;
  int height = 0;
  int width = 0;
  std::size_t stride = 0;
};

struct Options {
  std::string device = "CPU";     // OpenVINO device
  std::string precision = "f32";  // "f32", or "bf16" (OpenVINO's inference precision hint)
  int class_chunk = 0;            // classes per decoder step; 0: the manifest's
  int threads = 0;                // OpenVINO inference threads; 0: its default
};

// Class indices at the image's size, row-major: data[y * width + x]. With scores asked for, the
// per-class probabilities each label is the arg-max of: scores[(c * height + y) * width + x],
// (T, H, W) float32 in [0, 1], as the Python runtime's return_scores gives them.
struct Labels {
  int height = 0;
  int width = 0;
  std::vector<int32_t> data;
  std::vector<float> scores;  // empty unless asked for
  // The names data indexes: the vocabulary this call ran with (set_vocabulary on another thread
  // cannot pair these labels with other names).
  std::vector<std::string> class_names;
};

class Segmenter {
 public:
  explicit Segmenter(const std::string& folder, const Options& options = Options());
  ~Segmenter();
  Segmenter(Segmenter&&) noexcept;
  Segmenter& operator=(Segmenter&&) noexcept;
  Segmenter(const Segmenter&) = delete;
  Segmenter& operator=(const Segmenter&) = delete;

  // Loads class embeddings from a vocabulary file (refused when written by another text encoder).
  void set_vocabulary(const std::string& vocabulary_file);

  // Class names in (UTF-8): tokenized with CLIP's BPE from the artifacts' own (verified) merges
  // file, filled into the manifest's templates and run through the artifacts' text encoder on the
  // same engine, as the Python runtime's set_vocabulary does. See docs/cpp.md for the names whose
  // ids differ from Python's (ftfy's repairs, HTML entities other than &amp; &lt; &gt; &quot; &apos;).
  // cache_file (optional): a vocabulary file used as an on-disk cache: read when it holds exactly
  // these names for these artifacts, else the names are encoded and the file (re)written. A file
  // there that is not a vocabulary file is an Error, never written over.
  void set_classes(const std::vector<std::string>& names, const std::string& cache_file = "");

  // The current vocabulary as a vocabulary file (the format both runtimes read), written atomically.
  void save_vocabulary(const std::string& vocabulary_file) const;

  // The token ids (the manifest's context length) CLIP's tokenizer gives `text`.
  std::vector<int64_t> tokenize(const std::string& text) const;

  // rgb: height rows of width x 3 bytes (R, G, B), row r starting at rgb + r * stride.
  // with_scores: also fill Labels::scores (artifacts folders only: a baked graph's scores are at
  // the decoder's resolution, after the sigmoid, so they cannot be brought to the image's size
  // as the labels were; Error for a baked folder). sliding_window: CAT-Seg's protocol with the
  // manifest's sliding_window (windows over a canvas plus a global view, as the Python runtime's
  // segment(sliding_window=True)); artifacts folders only.
  Labels segment(const uint8_t* rgb, int height, int width, std::size_t stride, bool with_scores = false,
                 bool sliding_window = false) const;

  // A batch: every image with the same vocabulary (one set_vocabulary / set_classes on another
  // thread cannot split the batch across two), results in order.
  std::vector<Labels> segment(const std::vector<Image>& images, bool with_scores = false, bool sliding_window = false) const;

  std::vector<std::string> class_names() const;
  // (r, g, b) per class, for label images.
  std::vector<std::array<uint8_t, 3>> colours() const;
  bool baked() const;
  // What the artifacts folder's graphs hold, from its manifest's precision: "fp32", or "int8" for a
  // folder `escnet-export quantize` wrote (its QDQ pairs run in int8 under either Options::precision;
  // the rest runs in that precision). Empty for a baked folder, whose manifest does not record it.
  std::string weights_precision() const;
  // Per graph, the nodes kept in f32 under precision "bf16" (the precision rule's islands, the same
  // nodes as the Python runtime's ov-cpu-bf16 keeps; none under "f32"). Compiles any graph not yet compiled.
  std::map<std::string, std::vector<std::string>> f32_islands() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace escnet
