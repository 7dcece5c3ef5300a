// HTTP messages as the proxy handles them, whatever the protocol on either side: the heads both codecs
// produce and both encoders take, and the rules on fields that hold for every hop.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace trellis::proxy {

using Headers = std::vector<std::pair<std::string, std::string>>;  // names lower-case, arrival order
// Name and value views, for fields copied or encoded right away.
using HeaderView = std::pair<std::string_view, std::string_view>;

struct RequestHead {
  std::string method;
  std::string target;  // request-target as received (path + query)
  std::string host;    // lower-case, port stripped (Host header)
  int versionMinor = 1;
  Headers headers;
  bool chunked = false;
  bool hasContentLength = false;
  uint64_t contentLength = 0;
  bool keepAlive = true;
  size_t headerBytes = 0;

  std::string_view path() const;  // target without the query
  const std::string* header(std::string_view lowerName) const;
  bool hasBody() const { return chunked || (hasContentLength && contentLength > 0); }
};

struct ResponseHead {
  int status = 0;
  std::string reason;
  int versionMinor = 1;
  Headers headers;
  bool chunked = false;
  bool hasContentLength = false;
  uint64_t contentLength = 0;
  bool keepAlive = true;
  bool bodyless = false;  // HEAD, 1xx, 204, 304: no body follows whatever the headers say
};

// Header names that never cross the proxy (RFC 9110 7.6.1), plus any named in `connection`.
bool isHopByHop(std::string_view lowerName);
std::string_view reasonPhrase(int status);

}  // namespace trellis::proxy
