// escnet-segment-cpp: segment a PNG with the C++ runtime, write a label PNG.
//
//   escnet-segment-cpp --artifacts DIR --vocabulary FILE --out labels.png image.png
//   escnet-segment-cpp --artifacts BAKED_DIR --out labels.png image.png
//
// Errors: one line on stderr; exit 2 for bad input (folder, files, vocabulary, image), 1 otherwise.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "escnet/segmenter.hpp"
#include "png_io.hpp"

namespace {

const char* const kUsage =
    "usage: escnet-segment-cpp --artifacts DIR [--vocabulary FILE | --classes A,B,...] --out LABELS.png [--class-chunk N] "
    "[--precision f32|bf16] [--threads N] [--repeat N] [--concurrent N] [--overwrite] IMAGE.png";

struct Args {
  std::string artifacts, vocabulary, out, image;
  std::vector<std::string> classes;  // --classes: names encoded by the artifacts' text encoder
  escnet::Options options;
  int repeat = 1;
  int concurrent = 1;  // also segment the image from N threads at once and check every result is the same
  bool overwrite = false;
};

int to_int(const std::string& flag, const std::string& value, int lo, int hi) {
  std::size_t used = 0;
  int v = 0;
  try {
    v = std::stoi(value, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != value.size() || value.empty() || v < lo || v > hi) {
    throw escnet::Error(flag + " " + value + ": expected a whole number in " + std::to_string(lo) + ".." + std::to_string(hi));
  }
  return v;
}

// "sky, grass,a red car" -> {"sky", "grass", "a red car"}: comma-separated, spaces around trimmed,
// as escnet-export vocab --classes reads them.
std::vector<std::string> split_names(const std::string& value) {
  std::vector<std::string> names;
  std::size_t start = 0;
  while (start <= value.size()) {
    const std::size_t end = std::min(value.find(',', start), value.size());
    std::string name = value.substr(start, end - start);
    name.erase(0, name.find_first_not_of(' '));
    name.erase(name.find_last_not_of(' ') + 1);
    if (name.empty()) throw escnet::Error("--classes " + value + ": an empty class name (expected NAME,NAME,...)");
    names.push_back(name);
    start = end + 1;
  }
  return names;
}

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "-h" || flag == "--help") {
      std::cout << kUsage << "\n";
      std::exit(0);
    }
    if (flag == "--overwrite") {
      a.overwrite = true;
      continue;
    }
    if (flag.rfind("--", 0) != 0) {
      if (!a.image.empty()) throw escnet::Error("one image per call; got " + a.image + " and " + flag);
      a.image = flag;
      continue;
    }
    if (i + 1 >= argc) throw escnet::Error(flag + " needs a value");
    const std::string value = argv[++i];
    if (flag == "--artifacts") a.artifacts = value;
    else if (flag == "--vocabulary") a.vocabulary = value;
    else if (flag == "--classes") a.classes = split_names(value);
    else if (flag == "--out") a.out = value;
    else if (flag == "--class-chunk") a.options.class_chunk = to_int(flag, value, 1, 65535);
    else if (flag == "--precision") a.options.precision = value;
    else if (flag == "--threads") a.options.threads = to_int(flag, value, 0, 1024);
    else if (flag == "--repeat") a.repeat = to_int(flag, value, 1, 100000);
    else if (flag == "--concurrent") a.concurrent = to_int(flag, value, 1, 64);
    else throw escnet::Error("unknown option " + flag + " (" + kUsage + ")");
  }
  if (a.artifacts.empty() || a.out.empty() || a.image.empty()) throw escnet::Error(kUsage);
  return a;
}

// The output is a new file outside the artifacts folder, or --overwrite names an earlier one.
void check_output(const Args& a) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::path out = fs::weakly_canonical(fs::absolute(a.out, ec), ec);
  const fs::path folder = fs::weakly_canonical(fs::absolute(a.artifacts, ec), ec);
  const auto [end, _] = std::mismatch(folder.begin(), folder.end(), out.begin(), out.end());
  if (!ec && end == folder.end()) throw escnet::Error("--out " + a.out + " is inside the artifacts folder " + a.artifacts + "; write it elsewhere");
  const fs::file_status st = fs::symlink_status(a.out, ec);
  if (fs::exists(st) && !a.overwrite) throw escnet::Error(a.out + " exists; pass --overwrite to replace it");
  if (fs::exists(st) && !fs::is_regular_file(st)) throw escnet::Error(a.out + " exists and is not a regular file; refused");
  if (!fs::is_directory(fs::absolute(a.out, ec).parent_path(), ec)) throw escnet::Error(a.out + ": no such folder to write into");
}

// segment() from n threads on one Segmenter: every result must equal the single-threaded one.
// Returns the wall time of the n concurrent calls, in ms.
double check_concurrent(const escnet::Segmenter& seg, const escnet_tools::RgbImage& image, const escnet::Labels& want,
                      int n) {
  std::vector<escnet::Labels> got(n);
  std::vector<std::string> errors(n);
  std::vector<std::thread> threads;
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < n; ++i) {
    threads.emplace_back([&, i] {
      try {
        got[i] = seg.segment(image.pixels.data(), image.height, image.width, static_cast<std::size_t>(image.width) * 3);
      } catch (const std::exception& e) {
        errors[i] = e.what();
      }
    });
  }
  for (auto& t : threads) t.join();
  const double wall = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  for (int i = 0; i < n; ++i) {
    if (!errors[i].empty()) throw escnet::Error("concurrent call " + std::to_string(i) + " failed: " + errors[i]);
    if (got[i].data != want.data) throw std::runtime_error("concurrent call " + std::to_string(i) + " gave other labels");
  }
  return wall;
}

int run(const Args& a) {
  check_output(a);
  const escnet_tools::RgbImage image = escnet_tools::read_png_rgb(a.image);  // bad images fail before loading models
  escnet::Segmenter seg(a.artifacts, a.options);
  const bool given = !a.vocabulary.empty() || !a.classes.empty();
  if (!a.vocabulary.empty() && !a.classes.empty()) throw escnet::Error("give --vocabulary FILE or --classes NAMES, not both");
  if (seg.baked() && given) {
    throw escnet::Error(a.artifacts + " is a baked graph (its classes are inside); drop --vocabulary / --classes");
  }
  if (!seg.baked() && !given) throw escnet::Error("--vocabulary FILE or --classes NAMES is needed with an artifacts folder");
  if (!a.vocabulary.empty()) seg.set_vocabulary(a.vocabulary);
  if (!a.classes.empty()) seg.set_classes(a.classes);
  escnet::Labels labels;
  std::vector<double> ms;
  for (int r = 0; r < a.repeat; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    labels = seg.segment(image.pixels.data(), image.height, image.width, static_cast<std::size_t>(image.width) * 3);
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  if (a.concurrent > 1) {  // --repeat rounds of N calls at once: the median round
    std::vector<double> walls;
    for (int r = 0; r < a.repeat; ++r) walls.push_back(check_concurrent(seg, image, labels, a.concurrent));
    std::sort(walls.begin(), walls.end());
    std::fprintf(stderr, "escnet-segment-cpp: %d concurrent calls took %.1f ms wall (median of %d rounds), the same labels\n",
                 a.concurrent, walls[walls.size() / 2], a.repeat);
  }
  if (a.options.precision == "bf16") {
    for (const auto& [graph, nodes] : seg.f32_islands()) {
      std::string line;
      for (const auto& n : nodes) line += " " + n;
      std::fprintf(stderr, "escnet-segment-cpp: bf16: %s keeps %zu nodes in f32:%s\n", graph.c_str(), nodes.size(), line.c_str());
    }
  }
  escnet_tools::write_label_png(a.out, labels.data, labels.height, labels.width, seg.colours());
  std::sort(ms.begin(), ms.end());
  const std::string weights = seg.baked() ? "baked" : seg.weights_precision() + " artifacts";
  std::fprintf(stderr, "escnet-segment-cpp: %s: %zu classes, %dx%d, %s, %s, segment median %.1f ms over %d runs (min %.1f)\n",
               a.image.c_str(), labels.class_names.size(), labels.width, labels.height, weights.c_str(),
               a.options.precision.c_str(), ms[ms.size() / 2], a.repeat, ms.front());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(parse(argc, argv));
  } catch (const escnet::Error& e) {
    std::cerr << "escnet-segment-cpp: error: " << e.what() << "\n";
    return 2;
  } catch (const std::bad_alloc&) {
    std::cerr << "escnet-segment-cpp: error: out of memory (try a smaller --class-chunk or image)\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "escnet-segment-cpp: internal error: " << e.what() << "\n";
    return 1;
  }
}
