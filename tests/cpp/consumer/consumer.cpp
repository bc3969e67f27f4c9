// consumer FOLDER IMAGE.rgb HEIGHT WIDTH LABELS.i32 [VOCABULARY]: segments raw RGB bytes (HEIGHT rows
// of WIDTH x 3), writes the labels as raw little-endian int32 and prints the class count.
#include <escnet/segmenter.hpp>

#include <fstream>
#include <iostream>
#include <iterator>
#include <string>
#include <vector>

int main(int argc, char** argv) {
  if (argc != 6 && argc != 7) {
    std::cerr << "usage: consumer FOLDER IMAGE.rgb HEIGHT WIDTH LABELS.i32 [VOCABULARY]\n";
    return 2;
  }
  try {
    const int height = std::stoi(argv[3]), width = std::stoi(argv[4]);
    std::ifstream in(argv[2], std::ios::binary);
    const std::vector<uint8_t> rgb((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (rgb.size() != static_cast<std::size_t>(height) * width * 3) throw escnet::Error("the image is not HEIGHT x WIDTH x 3 bytes");
    escnet::Segmenter seg(argv[1]);
    if (argc == 7) seg.set_vocabulary(argv[6]);
    const escnet::Labels labels = seg.segment(rgb.data(), height, width, static_cast<std::size_t>(width) * 3);
    std::ofstream out(argv[5], std::ios::binary);
    out.write(reinterpret_cast<const char*>(labels.data.data()), static_cast<std::streamsize>(labels.data.size() * 4));
    std::cout << seg.class_names().size() << " classes\n";
    return out ? 0 : 1;
  } catch (const escnet::Error& e) {
    std::cerr << "consumer: " << e.what() << "\n";
    return 2;
  }
}
