#include "proxy/http/message.h"

namespace trellis::proxy {

std::string_view RequestHead::path() const {
  std::string_view t = target;
  return t.substr(0, t.find('?'));
}

const std::string* RequestHead::header(std::string_view lowerName) const {
  for (const auto& [name, value] : headers) {
    if (name == lowerName) return &value;
  }
  return nullptr;
}

bool isHopByHop(std::string_view name) {
  // By length first: asked for every header of every message, and most names have no candidate.
  switch (name.size()) {
    case 2: return name == "te";
    case 7: return name == "upgrade" || name == "trailer";
    case 10: return name == "connection" || name == "keep-alive";
    case 16: return name == "proxy-connection";
    case 17: return name == "transfer-encoding";
    case 18: return name == "proxy-authenticate";
    case 19: return name == "proxy-authorization";
    default: return false;
  }
}

std::string_view reasonPhrase(int status) {
  switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 408: return "Request Timeout";
    case 421: return "Misdirected Request";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "Unknown";
  }
}

}  // namespace trellis::proxy
