/* escnet.h: the C API of the escnet runtime (C99), for C, Rust, Go, C#, Java or Python (ctypes).
 *
 *   escnet_segmenter* seg = NULL;
 *   if (escnet_segmenter_create("artifacts", NULL, &seg) != ESCNET_OK) { fprintf(stderr, "%s\n", escnet_last_error()); ... }
 *   escnet_segmenter_set_vocabulary(seg, "ade150.escvocab");   (not for a baked folder)
 *   int32_t* labels = malloc(sizeof(int32_t) * height * width);
 *   escnet_segmenter_segment(seg, rgb, height, width, stride, labels);
 *   escnet_segmenter_destroy(seg);
 *
 * Rules for every function:
 * - It returns an escnet_status; on anything but ESCNET_OK, escnet_last_error() holds one line
 *   saying why (thread-local: each thread sees its own last error).
 * - No exception, and no C++ type, crosses this boundary.
 * - Buffers: the caller owns every buffer it passes (images, labels, names), sized as stated per
 *   function; the library keeps no pointer to any of them after the call returns. The only
 *   library-owned memory a caller sees is a segmenter handle (freed by escnet_segmenter_destroy)
 *   and the strings of escnet_version() (static) and escnet_last_error() (valid until the
 *   calling thread's next escnet call).
 * - Thread safety: escnet_segmenter_segment may run on one segmenter from many threads at once;
 *   escnet_segmenter_set_vocabulary may run beside it (calls in flight finish with the vocabulary
 *   they started with; class_count / class_name / class_colour describe the vocabulary set last,
 *   so a caller that swaps vocabularies while segmenting pairs them itself); destroy only when no
 *   other call on the segmenter is running.
 */
#ifndef ESCNET_H
#define ESCNET_H

#include <stddef.h>
#include <stdint.h>

#if defined(_WIN32)
#define ESCNET_API __declspec(dllexport)
#else
#define ESCNET_API __attribute__((visibility("default")))
#endif

#ifdef __cplusplus
extern "C" {
#endif

#define ESCNET_VERSION_MAJOR 0
#define ESCNET_VERSION_MINOR 1
#define ESCNET_VERSION_PATCH 0

typedef enum escnet_status {
  ESCNET_OK = 0,
  ESCNET_INVALID_ARGUMENT = 1, /* a null pointer, a bad size or index, an unknown option value */
  ESCNET_BAD_INPUT = 2,        /* a folder, file, vocabulary or image the runtime refuses */
  ESCNET_OUT_OF_MEMORY = 3,
  ESCNET_INTERNAL = 4          /* a bug: please report escnet_last_error() */
} escnet_status;

typedef struct escnet_segmenter escnet_segmenter; /* opaque */

typedef struct escnet_options {
  const char* device;    /* OpenVINO device; NULL: "CPU" */
  const char* precision; /* "f32" or "bf16"; NULL: "f32" */
  int class_chunk;       /* classes per decoder step; 0: the manifest's */
  int threads;           /* OpenVINO inference threads; 0: its default */
} escnet_options;

/* "0.1.0": a static string. */
ESCNET_API const char* escnet_version(void);

/* One line about the calling thread's last failed call; "" when its last call succeeded. */
ESCNET_API const char* escnet_last_error(void);

/* The defaults (every field NULL or 0). */
ESCNET_API void escnet_options_init(escnet_options* options);

/* Reads folder/manifest.json, verifies every sha256, compiles the graphs. options may be NULL
 * (the defaults). *out receives a handle to free with escnet_segmenter_destroy (NULL on failure). */
ESCNET_API escnet_status escnet_segmenter_create(const char* folder, const escnet_options* options,
                                                 escnet_segmenter** out);

/* Frees the handle (NULL is allowed). */
ESCNET_API void escnet_segmenter_destroy(escnet_segmenter* segmenter);

/* Class embeddings from a vocabulary file (escnet-export vocab); refused for a baked folder. */
ESCNET_API escnet_status escnet_segmenter_set_vocabulary(escnet_segmenter* segmenter, const char* vocabulary_file);

/* Class names in: names[0..count-1], NUL-terminated UTF-8 (caller-owned), tokenized with CLIP's BPE
 * and run through the artifacts' text encoder; refused for a baked folder. */
ESCNET_API escnet_status escnet_segmenter_set_classes(escnet_segmenter* segmenter, const char* const* names, size_t count);

/* escnet_segmenter_set_classes with an on-disk embedding cache (a vocabulary file, UTF-8 path):
 * when cache_file holds these names for this text encoder (sha256-checked) they are read from it
 * and nothing is encoded; otherwise (missing, stale or damaged) they are encoded and the file is
 * written atomically, so a restart does not encode again. cache_file NULL or "" is
 * escnet_segmenter_set_classes. */
ESCNET_API escnet_status escnet_segmenter_set_classes_cached(escnet_segmenter* segmenter, const char* const* names,
                                                             size_t count, const char* cache_file);

/* The current vocabulary as a vocabulary file (both runtimes read it; a cache across restarts),
 * written atomically with the umask's mode. */
ESCNET_API escnet_status escnet_segmenter_save_vocabulary(const escnet_segmenter* segmenter, const char* vocabulary_file);

/* The token ids CLIP's tokenizer gives `text` (UTF-8): the manifest's context length of them into
 * ids (caller-owned, `capacity` int64 values); *count (may be NULL) receives how many that is.
 * ESCNET_INVALID_ARGUMENT when capacity is smaller (nothing is written then). */
ESCNET_API escnet_status escnet_segmenter_tokenize(const escnet_segmenter* segmenter, const char* text, int64_t* ids,
                                                   size_t capacity, size_t* count);

/* rgb: height rows of width x 3 bytes (R, G, B), row r at rgb + r * stride (caller-owned).
 * labels: caller-owned, height * width int32 class indices written row-major. */
ESCNET_API escnet_status escnet_segmenter_segment(const escnet_segmenter* segmenter, const uint8_t* rgb, int height,
                                                  int width, size_t stride, int32_t* labels);

/* Per-class scores too: scores (caller-owned) receives classes * height * width float32, class-major
 * (scores[(c * height + y) * width + x]), the probability map each label is the arg-max of.
 * ESCNET_INVALID_ARGUMENT for a baked folder (its graph gives scores at its own resolution only). */
ESCNET_API escnet_status escnet_segmenter_segment_scores(const escnet_segmenter* segmenter, const uint8_t* rgb,
                                                         int height, int width, size_t stride, int32_t* labels,
                                                         float* scores);

/* As escnet_segmenter_segment_scores with CAT-Seg's sliding window (the manifest's windows over a
 * canvas plus a global view, as the Python runtime's sliding_window=True); scores may be NULL.
 * Artifacts folders only. */
ESCNET_API escnet_status escnet_segmenter_segment_sliding(const escnet_segmenter* segmenter, const uint8_t* rgb,
                                                          int height, int width, size_t stride, int32_t* labels,
                                                          float* scores);

/* One image of a batch: height rows of width x 3 bytes (R, G, B), row r at rgb + r * stride. */
typedef struct escnet_image {
  const uint8_t* rgb;
  int height;
  int width;
  size_t stride;
} escnet_image;

/* A batch of `count` images (caller-owned), all with the same vocabulary: labels[i] (caller-owned,
 * images[i].height * images[i].width int32) receives image i's labels. Every image is checked
 * before any is segmented. */
ESCNET_API escnet_status escnet_segmenter_segment_batch(const escnet_segmenter* segmenter, const escnet_image* images,
                                                        size_t count, int32_t* const* labels);

/* The number of classes of the current vocabulary (0 before one is set). */
ESCNET_API escnet_status escnet_segmenter_class_count(const escnet_segmenter* segmenter, size_t* count);

/* Class `index`'s name, UTF-8, into the caller's buffer of `size` bytes (NUL-terminated);
 * *needed (may be NULL) receives the bytes it takes, NUL included. ESCNET_INVALID_ARGUMENT when
 * the buffer is too small (nothing is written then) or the index is out of range. */
ESCNET_API escnet_status escnet_segmenter_class_name(const escnet_segmenter* segmenter, size_t index, char* buffer,
                                                     size_t size, size_t* needed);

/* Class `index`'s label colour into rgb[0..2] (caller-owned). */
ESCNET_API escnet_status escnet_segmenter_class_colour(const escnet_segmenter* segmenter, size_t index, uint8_t rgb[3]);

/* What the artifacts folder's graphs hold, from its manifest: "fp32", or "int8" for a folder that
 * `escnet-export quantize` wrote; "" for a baked folder (not recorded). A static string, never
 * freed by the caller; NULL for a NULL segmenter. */
ESCNET_API const char* escnet_segmenter_weights_precision(const escnet_segmenter* segmenter);

#ifdef __cplusplus
}
#endif

#endif /* ESCNET_H */
