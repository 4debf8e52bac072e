// Decoders: turn token strings back into text (HF tokenizers "decoder" semantics), whole or
// streamed.
//
//   Decoder d;   // Gemma: Replace("▁"," "), ByteFallback, Fuse
//   std::string text = d.Decode({"▁Hello", "<0xF0>", "<0x9F>", "<0x98>", "<0x81>"});  // " Hello😁"
//
// Kinds: Replace (String pattern), ByteFallback, Fuse, Strip, ByteLevel, Metaspace; Sequence is
// flattened into `steps`. Decode() reproduces HF exactly, including its repair of invalid bytes:
// ByteLevel uses from_utf8_lossy over all bytes; ByteFallback turns a run of <0xXX> tokens that is
// not valid UTF-8 into one U+FFFD per byte.
//
// Streaming (StreamingDecoder in tokenizer.h) needs each token's bytes on its own: TokenBytes()
// gives them when CanStream() (every supported chain of per-token steps, an optional Fuse, then
// an optional leading Strip). The stream then equals Decode() whenever the decoded bytes are valid
// UTF-8; an invalid byte run is repaired per maximal subpart instead of per byte.
// Thread-safety: const methods are safe concurrently.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace kiln::tokenizer {

enum class DecoderKind { kReplace, kByteFallback, kFuse, kStrip, kByteLevel, kMetaspace };

struct DecoderStep {
  DecoderKind kind = DecoderKind::kFuse;
  std::string pattern;  // kReplace
  std::string content;  // kReplace: replacement; kStrip: the character stripped (one char)
  size_t strip_start = 0, strip_stop = 0;  // kStrip
  std::string replacement = "\xE2\x96\x81";  // kMetaspace
  bool prepend = true;                       // kMetaspace: prepend scheme is not "never"
};

struct Decoder {
  std::vector<DecoderStep> steps;  // empty: tokens joined with " " (HF without a decoder)

  std::string Decode(std::vector<std::string> tokens) const;

  bool CanStream() const;
  // Appends the bytes of one token (index = its position in the stream) to `out`.
  // Only meaningful when CanStream().
  void TokenBytes(std::string_view token, size_t index, std::string* out) const;
  // Characters stripped from the very start of the stream: (char, max count).
  std::pair<std::string, size_t> LeadingStrip() const;
};

}  // namespace kiln::tokenizer
