// Where the tokenizer tests find their inputs.
//
// Goldens (small, committed): tests/tokenizer/goldens/, compiled in as KILN_TOKENIZER_GOLDENS_DIR.
// Real tokenizers (big, fetched by scripts/fetch-tokenizer-assets.sh): $KILN_ASSET_DIR, else
// $HOME/.cache/kiln-assets. A test that needs a missing asset calls GTEST_SKIP() with the reason.
#pragma once

#include <optional>
#include <string>

#include <nlohmann/json.hpp>

namespace kiln::tokenizer::testing {

std::string GoldensDir();
std::string AssetDir();
// Full path of `relative` in the asset cache, or nullopt when it is not there.
std::optional<std::string> FindAsset(const std::string& relative);
// Parses a golden JSON file (ordered, so object key order is kept); aborts the test on error.
nlohmann::ordered_json LoadGolden(const std::string& name);
// Bytes from "61 80 62"-style hex.
std::string FromHex(const std::string& hex);

}  // namespace kiln::tokenizer::testing
