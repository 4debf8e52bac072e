#include "io/npy.h"

#include <cstdio>
#include <cstring>
#include <unistd.h>

#include "core/mapped_file.h"
#include "io/output_file.h"

namespace kiln {

Status WriteNpyF32(const std::string& path, const float* values, const std::vector<int64_t>& shape) {
  std::string dims;
  int64_t count = 1;
  for (int64_t d : shape) {
    dims += std::to_string(d) + ",";
    count *= d;
  }
  if (shape.size() > 1) dims.pop_back();  // "(3,)" for 1-D, "(3,4)" otherwise
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + dims + "), }";
  // magic(6) + version(2) + len(2) + header + '\n', padded with spaces to a multiple of 64.
  const size_t unpadded = 10 + header.size() + 1;
  header.append((64 - unpadded % 64) % 64, ' ');
  header.push_back('\n');
  TRY_ASSIGN(OutputFile out, OutputFile::Create(path));
  const uint16_t header_len = static_cast<uint16_t>(header.size());
  const char prefix[10] = {'\x93', 'N', 'U', 'M', 'P', 'Y', 1, 0, static_cast<char>(header_len & 0xff),
                           static_cast<char>(header_len >> 8)};
  TRY(out.Write(prefix, sizeof(prefix)));
  TRY(out.Write(header.data(), header.size()));
  TRY(out.Write(values, sizeof(float) * static_cast<size_t>(count)));
  TRY(out.Commit());
  return Status::Ok();
}

Result<NpyArray> ReadNpyF32(const std::string& path) {
  TRY_ASSIGN(MappedFile file, MappedFile::Open(path));
  const uint8_t* data = file.data();
  const size_t size = file.size_bytes();
  if (size < 10 || std::memcmp(data, "\x93NUMPY", 6) != 0) {
    return Error(ErrorCode::kMalformed, path + ": not a .npy file");
  }
  size_t header_len, header_start;
  if (data[6] == 1) {
    header_len = data[8] | (data[9] << 8);
    header_start = 10;
  } else {
    if (size < 12) return Error(ErrorCode::kMalformed, path + ": truncated header");
    header_len = data[8] | (data[9] << 8) | (data[10] << 16) | (static_cast<size_t>(data[11]) << 24);
    header_start = 12;
  }
  if (header_start + header_len > size) return Error(ErrorCode::kMalformed, path + ": truncated header");
  const std::string header(reinterpret_cast<const char*>(data + header_start), header_len);
  if (header.find("'<f4'") == std::string::npos || header.find("'fortran_order': False") == std::string::npos) {
    return Error(ErrorCode::kUnsupported, path + ": expected a C-order '<f4' array, header is " + header);
  }
  NpyArray array;
  const size_t open = header.find('(');
  const size_t close = header.find(')', open);
  if (open == std::string::npos || close == std::string::npos) {
    return Error(ErrorCode::kMalformed, path + ": no shape in header");
  }
  int64_t count = 1;
  std::string dims = header.substr(open + 1, close - open - 1);
  size_t pos = 0;
  while (pos < dims.size()) {
    size_t comma = dims.find(',', pos);
    if (comma == std::string::npos) comma = dims.size();
    std::string token = dims.substr(pos, comma - pos);
    if (token.find_first_not_of(' ') != std::string::npos) {
      array.shape.push_back(std::stoll(token));
      count *= array.shape.back();
    }
    pos = comma + 1;
  }
  const size_t payload = header_start + header_len;
  if (payload + static_cast<size_t>(count) * 4 > size) {
    return Error(ErrorCode::kMalformed, path + ": data shorter than its shape");
  }
  array.values.resize(static_cast<size_t>(count));
  std::memcpy(array.values.data(), data + payload, array.values.size() * 4);
  return array;
}

}  // namespace kiln
