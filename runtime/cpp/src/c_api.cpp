// The C API (include/escnet/escnet.h) over escnet::Segmenter: every call caught, a status and a
// thread-local one-line message out, no exception or C++ type across the boundary.
#include "escnet/escnet.h"

#include <cstring>
#include <new>
#include <string>
#include <vector>

#include "escnet/segmenter.hpp"

struct escnet_segmenter {
  escnet::Segmenter segmenter;
};

namespace {

thread_local std::string last_error;

// One line: newlines (OpenVINO's, a class name's) become spaces.
escnet_status fail(escnet_status status, const std::string& message) {
  last_error = message;
  for (char& c : last_error) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  return status;
}

template <typename F>
escnet_status guarded(F&& body) noexcept {
  try {
    last_error.clear();
    return body();
  } catch (const escnet::Error& e) {
    return fail(ESCNET_BAD_INPUT, e.what());
  } catch (const std::bad_alloc&) {
    return fail(ESCNET_OUT_OF_MEMORY, "out of memory (try a smaller class_chunk or image)");
  } catch (const std::exception& e) {
    return fail(ESCNET_INTERNAL, std::string("internal error: ") + e.what());
  } catch (...) {
    return fail(ESCNET_INTERNAL, "internal error: an unknown exception");
  }
}

escnet_status null_argument(const char* name) { return fail(ESCNET_INVALID_ARGUMENT, std::string(name) + " is NULL"); }

escnet_status segment(const escnet_segmenter* s, const uint8_t* rgb, int height, int width, size_t stride, int32_t* labels,
                      float* scores, bool sliding = false) {
  if (!s) return null_argument("segmenter");
  if (!labels) return null_argument("labels");
  if (scores && s->segmenter.baked()) {
    return fail(ESCNET_INVALID_ARGUMENT, "scores at the image's size need an artifacts folder, not a baked one");
  }
  if (sliding && s->segmenter.baked()) return fail(ESCNET_INVALID_ARGUMENT, "the sliding window needs an artifacts folder, not a baked one");
  const escnet::Labels out = s->segmenter.segment(rgb, height, width, stride, scores != nullptr, sliding);
  std::memcpy(labels, out.data.data(), out.data.size() * sizeof(int32_t));
  if (scores) std::memcpy(scores, out.scores.data(), out.scores.size() * sizeof(float));
  return ESCNET_OK;
}

}  // namespace

extern "C" {

const char* escnet_version(void) { return "0.1.0"; }

const char* escnet_last_error(void) { return last_error.c_str(); }

void escnet_options_init(escnet_options* options) {
  if (options) *options = escnet_options{nullptr, nullptr, 0, 0};
}

escnet_status escnet_segmenter_create(const char* folder, const escnet_options* options, escnet_segmenter** out) {
  return guarded([&] {
    if (!out) return null_argument("out");
    *out = nullptr;
    if (!folder) return null_argument("folder");
    escnet::Options o;
    if (options) {
      if (options->device) o.device = options->device;
      if (options->precision) o.precision = options->precision;
      if (options->class_chunk < 0 || options->threads < 0) {
        return fail(ESCNET_INVALID_ARGUMENT, "class_chunk and threads must be 0 (the default) or more");
      }
      o.class_chunk = options->class_chunk;
      o.threads = options->threads;
    }
    *out = new escnet_segmenter{escnet::Segmenter(folder, o)};
    return ESCNET_OK;
  });
}

void escnet_segmenter_destroy(escnet_segmenter* segmenter) { delete segmenter; }

escnet_status escnet_segmenter_set_vocabulary(escnet_segmenter* segmenter, const char* vocabulary_file) {
  return guarded([&] {
    if (!segmenter) return null_argument("segmenter");
    if (!vocabulary_file) return null_argument("vocabulary_file");
    segmenter->segmenter.set_vocabulary(vocabulary_file);
    return ESCNET_OK;
  });
}

escnet_status escnet_segmenter_set_classes(escnet_segmenter* segmenter, const char* const* names, size_t count) {
  return escnet_segmenter_set_classes_cached(segmenter, names, count, nullptr);
}

escnet_status escnet_segmenter_set_classes_cached(escnet_segmenter* segmenter, const char* const* names,
                                                  size_t count, const char* cache_file) {
  return guarded([&] {
    if (!segmenter) return null_argument("segmenter");
    if (!names && count) return null_argument("names");
    std::vector<std::string> list;
    for (size_t i = 0; i < count; ++i) {
      if (!names[i]) return fail(ESCNET_INVALID_ARGUMENT, "names[" + std::to_string(i) + "] is NULL");
      list.emplace_back(names[i]);
    }
    segmenter->segmenter.set_classes(list, cache_file ? cache_file : "");
    return ESCNET_OK;
  });
}

escnet_status escnet_segmenter_save_vocabulary(const escnet_segmenter* segmenter, const char* vocabulary_file) {
  return guarded([&] {
    if (!segmenter) return null_argument("segmenter");
    if (!vocabulary_file) return null_argument("vocabulary_file");
    segmenter->segmenter.save_vocabulary(vocabulary_file);
    return ESCNET_OK;
  });
}

escnet_status escnet_segmenter_tokenize(const escnet_segmenter* segmenter, const char* text, int64_t* ids, size_t capacity,
                                        size_t* count) {
  return guarded([&] {
    if (!segmenter) return null_argument("segmenter");
    if (!text) return null_argument("text");
    const std::vector<int64_t> out = segmenter->segmenter.tokenize(text);
    if (count) *count = out.size();
    if (!ids || capacity < out.size()) {
      return fail(ESCNET_INVALID_ARGUMENT, "the ids take " + std::to_string(out.size()) + " values; the buffer has " +
                                               std::to_string(ids ? capacity : 0));
    }
    std::memcpy(ids, out.data(), out.size() * sizeof(int64_t));
    return ESCNET_OK;
  });
}

escnet_status escnet_segmenter_segment(const escnet_segmenter* segmenter, const uint8_t* rgb, int height, int width,
                                       size_t stride, int32_t* labels) {
  return guarded([&] { return segment(segmenter, rgb, height, width, stride, labels, nullptr); });
}

escnet_status escnet_segmenter_segment_scores(const escnet_segmenter* segmenter, const uint8_t* rgb, int height, int width,
                                              size_t stride, int32_t* labels, float* scores) {
  return guarded([&] {
    if (!scores) return null_argument("scores");
    return segment(segmenter, rgb, height, width, stride, labels, scores);
  });
}

escnet_status escnet_segmenter_segment_sliding(const escnet_segmenter* segmenter, const uint8_t* rgb, int height, int width,
                                               size_t stride, int32_t* labels, float* scores) {
  return guarded([&] { return segment(segmenter, rgb, height, width, stride, labels, scores, true); });
}

escnet_status escnet_segmenter_segment_batch(const escnet_segmenter* segmenter, const escnet_image* images, size_t count,
                                             int32_t* const* labels) {
  return guarded([&] {
    if (!segmenter) return null_argument("segmenter");
    if (count && (!images || !labels)) return null_argument(!images ? "images" : "labels");
    std::vector<escnet::Image> batch;
    for (size_t i = 0; i < count; ++i) {
      if (!labels[i]) return fail(ESCNET_INVALID_ARGUMENT, "labels[" + std::to_string(i) + "] is NULL");
      batch.push_back({images[i].rgb, images[i].height, images[i].width, images[i].stride});
    }
    const std::vector<escnet::Labels> out = segmenter->segmenter.segment(batch);
    for (size_t i = 0; i < count; ++i) std::memcpy(labels[i], out[i].data.data(), out[i].data.size() * sizeof(int32_t));
    return ESCNET_OK;
  });
}

escnet_status escnet_segmenter_class_count(const escnet_segmenter* segmenter, size_t* count) {
  return guarded([&] {
    if (!segmenter) return null_argument("segmenter");
    if (!count) return null_argument("count");
    *count = segmenter->segmenter.class_names().size();
    return ESCNET_OK;
  });
}

escnet_status escnet_segmenter_class_name(const escnet_segmenter* segmenter, size_t index, char* buffer, size_t size,
                                          size_t* needed) {
  return guarded([&] {
    if (!segmenter) return null_argument("segmenter");
    const auto names = segmenter->segmenter.class_names();
    if (index >= names.size()) {
      return fail(ESCNET_INVALID_ARGUMENT, "class index " + std::to_string(index) + " is out of range (" +
                                               std::to_string(names.size()) + " classes)");
    }
    const std::string& name = names[index];
    if (needed) *needed = name.size() + 1;
    if (!buffer || size < name.size() + 1) {
      return fail(ESCNET_INVALID_ARGUMENT, "the name takes " + std::to_string(name.size() + 1) + " bytes; the buffer has " +
                                               std::to_string(buffer ? size : 0));
    }
    std::memcpy(buffer, name.c_str(), name.size() + 1);
    return ESCNET_OK;
  });
}

escnet_status escnet_segmenter_class_colour(const escnet_segmenter* segmenter, size_t index, uint8_t rgb[3]) {
  return guarded([&] {
    if (!segmenter) return null_argument("segmenter");
    if (!rgb) return null_argument("rgb");
    const auto colours = segmenter->segmenter.colours();
    if (index >= colours.size()) {
      return fail(ESCNET_INVALID_ARGUMENT, "class index " + std::to_string(index) + " is out of range (" +
                                               std::to_string(colours.size()) + " classes)");
    }
    std::memcpy(rgb, colours[index].data(), 3);
    return ESCNET_OK;
  });
}

const char* escnet_segmenter_weights_precision(const escnet_segmenter* segmenter) {
  if (!segmenter) return nullptr;
  const std::string p = segmenter->segmenter.weights_precision();
  return p == "int8" ? "int8" : p == "fp32" ? "fp32" : "";
}

}  // extern "C"
