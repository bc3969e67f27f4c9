/* A plain-C user of escnet.h: segments a synthetic gradient image and prints, per class, how many
 * pixels it labels.
 *
 *   escnet-example-c FOLDER [VOCABULARY]     (VOCABULARY for an artifacts folder, none for a baked one)
 *
 * Exit 0 on success; 2 with escnet_last_error() on stderr when the runtime refuses. */
#include <stdio.h>
#include <stdlib.h>

#include "escnet/escnet.h"

enum { HEIGHT = 48, WIDTH = 64 };

static int refuse(const char* what) {
  fprintf(stderr, "escnet-example-c: %s: %s\n", what, escnet_last_error());
  return 2;
}

int main(int argc, char** argv) {
  static uint8_t rgb[HEIGHT * WIDTH * 3];
  static int32_t labels[HEIGHT * WIDTH];
  escnet_segmenter* seg = NULL;
  escnet_options options;
  size_t classes = 0, i;
  int y, x, code = 0;
  if (argc < 2 || argc > 3) {
    fprintf(stderr, "usage: escnet-example-c FOLDER [VOCABULARY]\n");
    return 2;
  }
  for (y = 0; y < HEIGHT; ++y) {
    for (x = 0; x < WIDTH; ++x) {
      uint8_t* p = rgb + (y * WIDTH + x) * 3;
      p[0] = (uint8_t)(4 * x);
      p[1] = (uint8_t)(5 * y);
      p[2] = (uint8_t)(128 + x - y);
    }
  }
  escnet_options_init(&options);
  printf("escnet %s\n", escnet_version());
  if (escnet_segmenter_create(argv[1], &options, &seg) != ESCNET_OK) return refuse(argv[1]);
  if (argc == 3 && escnet_segmenter_set_vocabulary(seg, argv[2]) != ESCNET_OK) code = refuse(argv[2]);
  if (!code && escnet_segmenter_segment(seg, rgb, HEIGHT, WIDTH, WIDTH * 3, labels) != ESCNET_OK) code = refuse("segment");
  if (!code && escnet_segmenter_class_count(seg, &classes) != ESCNET_OK) code = refuse("class_count");
  for (i = 0; !code && i < classes; ++i) {
    char name[256];
    size_t count = 0, p;
    if (escnet_segmenter_class_name(seg, i, name, sizeof name, NULL) != ESCNET_OK) {
      code = refuse("class_name");
      break;
    }
    for (p = 0; p < HEIGHT * WIDTH; ++p) count += labels[p] == (int32_t)i;
    printf("%s: %lu\n", name, (unsigned long)count);
  }
  escnet_segmenter_destroy(seg);
  return code;
}
