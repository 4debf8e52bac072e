#include "server/web_page.h"

#include <string>

namespace kiln::server {

namespace {

// httplib's route pattern for a file: "/" + its name as a regular expression (dots escaped, so
// that "/chat.js" does not also answer "/chatXjs"). Names are plain: [A-Za-z0-9_.-].
std::string PatternOf(const EmbeddedFile& file) {
  std::string pattern = "/";
  for (char c : file.name) {
    if (c == '.') pattern += '\\';
    pattern += c;
  }
  return pattern;
}

const char* ContentTypeOf(std::string_view name) {
  if (name.ends_with(".html")) return "text/html; charset=utf-8";
  if (name.ends_with(".js")) return "application/javascript; charset=utf-8";
  if (name.ends_with(".css")) return "text/css; charset=utf-8";
  return "application/octet-stream";
}

// 'self' only: the page cannot load or send anything elsewhere, even if a model's reply were
// rendered as markup by mistake. data: is for the empty favicon in index.html.
constexpr char kContentSecurityPolicy[] =
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src data:; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

}  // namespace

bool IsWebPagePath(std::string_view path) {
  if (path == "/") return true;
  for (const EmbeddedFile& file : EmbeddedWebFiles()) {
    if (path.size() == file.name.size() + 1 && path.starts_with('/') && path.substr(1) == file.name) return true;
  }
  return false;
}

void AddWebPageRoutes(httplib::Server& http) {
  for (const EmbeddedFile& file : EmbeddedWebFiles()) {
    httplib::Server::Handler handler = [&file](const httplib::Request&, httplib::Response& response) {
      response.set_header("Cache-Control", "no-cache");
      response.set_header("X-Content-Type-Options", "nosniff");
      response.set_header("Content-Security-Policy", kContentSecurityPolicy);
      response.set_content(file.bytes.data(), file.bytes.size(), ContentTypeOf(file.name));
    };
    http.Get(PatternOf(file), handler);
    if (file.name == "index.html") http.Get("/", handler);
  }
}

}  // namespace kiln::server
