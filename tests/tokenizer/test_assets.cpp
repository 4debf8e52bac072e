#include "test_assets.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace kiln::tokenizer::testing {

std::string GoldensDir() { return KILN_TOKENIZER_GOLDENS_DIR; }

std::string AssetDir() {
  if (const char* dir = std::getenv("KILN_ASSET_DIR"); dir != nullptr && *dir != '\0') return dir;
  const char* home = std::getenv("HOME");
  return std::string(home != nullptr ? home : "/root") + "/.cache/kiln-assets";
}

std::optional<std::string> FindAsset(const std::string& relative) {
  const std::string path = AssetDir() + "/" + relative;
  std::error_code ec;
  if (std::filesystem::is_regular_file(path, ec)) return path;
  return std::nullopt;
}

nlohmann::ordered_json LoadGolden(const std::string& name) {
  std::ifstream in(GoldensDir() + "/" + name);
  std::stringstream ss;
  ss << in.rdbuf();
  return nlohmann::ordered_json::parse(ss.str());
}

std::string FromHex(const std::string& hex) {
  std::string out;
  std::istringstream in(hex);
  std::string byte;
  while (in >> byte) out.push_back(static_cast<char>(std::stoi(byte, nullptr, 16)));
  return out;
}

}  // namespace kiln::tokenizer::testing
