#include "io/safetensors_writer.h"

#include <cstdio>
#include <nlohmann/json.hpp>
#include <unistd.h>

namespace kiln {

std::vector<uint8_t> EncodeSafetensors(std::span<const TensorToWrite> tensors) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  header["__metadata__"] = {{"format", "pt"}};
  uint64_t offset = 0;
  for (const TensorToWrite& tensor : tensors) {
    header[tensor.name] = {{"dtype", tensor.dtype}, {"shape", tensor.shape},
                           {"data_offsets", {offset, offset + tensor.bytes.size()}}};
    offset += (tensor.bytes.size() + 7) / 8 * 8;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  std::vector<uint8_t> image(8 + text.size() + offset, 0);
  const uint64_t length = text.size();
  for (int i = 0; i < 8; ++i) image[static_cast<size_t>(i)] = static_cast<uint8_t>(length >> (8 * i));
  std::copy(text.begin(), text.end(), image.begin() + 8);
  size_t at = 8 + text.size();
  for (const TensorToWrite& tensor : tensors) {
    std::copy(tensor.bytes.begin(), tensor.bytes.end(), image.begin() + static_cast<std::ptrdiff_t>(at));
    at += (tensor.bytes.size() + 7) / 8 * 8;
  }
  return image;
}

Status WriteSafetensors(const std::string& path, std::span<const TensorToWrite> tensors) {
  const std::vector<uint8_t> image = EncodeSafetensors(tensors);
  const std::string temp = path + ".tmp." + std::to_string(::getpid());
  FILE* out = std::fopen(temp.c_str(), "wb");
  if (!out) return Error(ErrorCode::kIo, "cannot create " + temp);
  const bool ok = std::fwrite(image.data(), 1, image.size(), out) == image.size();
  if (std::fclose(out) != 0 || !ok || std::rename(temp.c_str(), path.c_str()) != 0) {
    std::remove(temp.c_str());
    return Error(ErrorCode::kIo, "cannot write " + path);
  }
  return Status::Ok();
}

}  // namespace kiln
