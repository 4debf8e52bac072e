// The chat page at /: its files are served (public, with their content types and the page's
// safety headers) from the copies embedded at build time, while the API keeps needing the key.
// The page's behaviour in a browser is tested by web_page_test.sh.
#include <fstream>
#include <sstream>

#include "server/web_page.h"
#include "server_fixture.h"

namespace kiln::server::testing {
namespace {

const httplib::Headers kKey = {{"Authorization", "Bearer secret"}};

class WebPageTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { StartBundledServer(LocalOptions(0, "secret"), &server_, &port_); }
  static void TearDownTestSuite() { delete server_; }

  // GET `path` with `headers`; the status of a failed connection is -1.
  static httplib::Response Get(const std::string& path, const httplib::Headers& headers = {}) {
    httplib::Client client("127.0.0.1", port_);
    httplib::Result result = client.Get(path.c_str(), headers);
    if (!result) return httplib::Response{};
    return *result;
  }

  static inline Server* server_ = nullptr;
  static inline int port_ = 0;
};

std::string ReadSource(std::string_view name) {
  std::ifstream in(std::string(KILN_SOURCE_DIR) + "/src/server/web/" + std::string(name), std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

TEST_F(WebPageTest, RootIsTheHtmlPageWithoutTheKey) {
  httplib::Response page = Get("/");
  ASSERT_EQ(page.status, 200) << page.body;
  EXPECT_EQ(page.get_header_value("Content-Type"), "text/html; charset=utf-8");
  EXPECT_NE(page.body.find(R"(<script src="chat.js")"), std::string::npos);
  EXPECT_NE(page.body.find(R"(<link rel="stylesheet" href="chat.css">)"), std::string::npos);
  EXPECT_EQ(page.get_header_value("Cache-Control"), "no-cache");
  EXPECT_EQ(page.get_header_value("X-Content-Type-Options"), "nosniff");
  EXPECT_NE(page.get_header_value("Content-Security-Policy").find("connect-src 'self'"), std::string::npos);
  EXPECT_EQ(Get("/index.html").body, page.body);
}

TEST_F(WebPageTest, ScriptAndStyleHaveTheirContentTypes) {
  httplib::Response script = Get("/chat.js");
  ASSERT_EQ(script.status, 200);
  EXPECT_EQ(script.get_header_value("Content-Type"), "application/javascript; charset=utf-8");
  httplib::Response style = Get("/chat.css");
  ASSERT_EQ(style.status, 200);
  EXPECT_EQ(style.get_header_value("Content-Type"), "text/css; charset=utf-8");
}

TEST_F(WebPageTest, ServedFilesEqualTheirSources) {
  // index.html, chat.js, chat.css: the embedded copies are byte for byte the files of web/.
  ASSERT_EQ(EmbeddedWebFiles().size(), 3u);
  for (const EmbeddedFile& file : EmbeddedWebFiles()) {
    const std::string source = ReadSource(file.name);
    ASSERT_FALSE(source.empty()) << file.name;
    EXPECT_EQ(file.bytes, source) << file.name;
    std::string path = "/";
    path += file.name;  // (not "/" + std::string: g++ 12 warns falsely on that, -Wrestrict)
    EXPECT_EQ(Get(path).body, source) << file.name;
  }
}

TEST_F(WebPageTest, UnknownStaticPathsAreNotFound) {
  // With the key: past authentication, no route.
  for (const char* path : {"/nope.js", "/chatXjs", "/chat.js.map", "/web/chat.js", "/index.htm"}) {
    httplib::Response missing = Get(path, kKey);
    EXPECT_EQ(missing.status, 404) << path;
    EXPECT_EQ(json::parse(missing.body, nullptr, false)["error"]["code"], "not_found") << path;
  }
  // Without it, only the page's own files are public: anything else is refused first.
  EXPECT_EQ(Get("/nope.js").status, 401);
}

TEST_F(WebPageTest, TheApiStillNeedsTheKey) {
  EXPECT_EQ(Get("/v1/models").status, 401);
  EXPECT_EQ(Get("/v1/models", kKey).status, 200);
  EXPECT_EQ(Send(port_, "POST", "/", "{}").status, 401);  // the page is public for GET only
}

TEST(WebPageLoadingTest, PageIsServedWhileTheModelLoads) {
  Server server(LocalOptions());
  auto port = server.Start();
  ASSERT_TRUE(port.has_value()) << port.error().message();
  EXPECT_EQ(Send(*port, "GET", "/").status, 200);
  EXPECT_EQ(Send(*port, "GET", "/v1/models").status, 503);  // the page then shows "Loading model"
}

}  // namespace
}  // namespace kiln::server::testing
