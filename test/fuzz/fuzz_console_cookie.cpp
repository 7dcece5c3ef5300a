// Fuzzes the console's Cookie header parser and its session lookup: any header gives pairs whose names are
// non-empty and contain neither ';' nor '=', and no cookie names a session that was never made.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "console/session.h"

using namespace trellis;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string header(reinterpret_cast<const char*>(data), size);
  for (const auto& [name, value] : console::parseCookieHeader(header)) {
    if (name.empty() || name.find(';') != std::string::npos || name.find('=') != std::string::npos) std::abort();
    if (value.find(';') != std::string::npos) std::abort();
  }
  static model::Config config = [] {
    model::Config c;
    model::Identity admin;
    admin.arn = "arn:aws:iam::111122223333:role/admin";
    admin.accessKeyId = "AKIAADMIN";
    admin.secretAccessKey = "secret";
    c.identities.push_back(admin);
    return c;
  }();
  static console::SessionStore sessions;
  auto cookie = console::findCookie({{"cookie", header}}, console::kSessionCookie);
  if (cookie && sessions.resolve(config, *cookie) != nullptr) std::abort();
  return 0;
}
