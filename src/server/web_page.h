// The chat page that `kiln serve` shows at /: static files (src/server/web/) embedded in the
// binary at build time, so the page works from any install location with nothing to fetch.
//
//   AddWebPageRoutes(http);                 // GET /, /index.html, /chat.js, /chat.css
//   if (IsWebPagePath(request.path)) ...    // public: no API key needed, as for /health
//
// The page itself calls the API (GET /v1/models, POST /v1/chat/completions) with the key the
// user pastes in, so serving it without the key gives nothing away. Every file is sent with
// Cache-Control: no-cache (a new kiln binary is seen at once), X-Content-Type-Options: nosniff,
// and a Content-Security-Policy that lets the page load and call only its own origin.
#pragma once

#include <span>
#include <string_view>

#include <httplib.h>

namespace kiln::server {

// One embedded file: its name under src/server/web/ ("chat.js") and its bytes. The bytes live
// in static storage for the whole program.
struct EmbeddedFile {
  std::string_view name;
  std::string_view bytes;
};

// Every file of src/server/web/, in the order CMake lists them. Defined in the source file
// that CMake generates from them (embed_web.cmake), rebuilt when one of them changes.
std::span<const EmbeddedFile> EmbeddedWebFiles();

// True for the paths the page's files are served at ("/" is index.html). Such a GET needs
// no API key.
bool IsWebPagePath(std::string_view path);

// Registers GET for each of those paths on `http`: 200 with the file and its Content-Type
// (text/html, application/javascript, text/css; charset=utf-8).
void AddWebPageRoutes(httplib::Server& http);

}  // namespace kiln::server
