#include "common/request_target.h"

#include <vector>

#include "common/strings.h"

namespace trellis {
namespace {

bool unreserved(unsigned char c) {  // RFC 3986 2.3
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
         c == '_' || c == '~';
}

bool control(unsigned char c) { return c <= 0x20 || c == 0x7f; }

// Whether `path` needs no change: no escape, backslash, empty or dot segment. One pass, no allocation.
bool alreadyNormal(std::string_view path) {
  for (size_t i = 0; i < path.size(); ++i) {
    auto c = static_cast<unsigned char>(path[i]);
    if (c == '%' || c == '\\' || c == '#' || control(c)) return false;
    if (c == '/' && i + 1 < path.size() && (path[i + 1] == '/' || path[i + 1] == '.')) return false;
  }
  return true;
}

}  // namespace

const char* normalizePath(std::string_view path, EncodedSlashes slashes, std::string& out) {
  if (path.empty() || path.front() != '/') return "path does not start with /";
  // Escapes first, so an escaped dot is a dot when segments are judged below.
  std::string decoded;
  decoded.reserve(path.size());
  for (size_t i = 0; i < path.size(); ++i) {
    auto c = static_cast<unsigned char>(path[i]);
    if (c == '#') return "fragment in request-target";
    if (control(c)) return "control character in path";
    if (c == '\\' && slashes == EncodedSlashes::Reject) return "backslash in path";
    if (c != '%') {
      decoded.push_back(static_cast<char>(c));
      continue;
    }
    int high = i + 2 < path.size() ? hexValue(path[i + 1]) : -1;
    int low = high >= 0 ? hexValue(path[i + 2]) : -1;
    if (low < 0) return "malformed percent-encoding in path";
    auto value = static_cast<unsigned char>(high * 16 + low);
    i += 2;
    if (value == 0) return "escaped NUL in path";
    if ((value == '/' || value == '\\') && slashes == EncodedSlashes::Reject) return "escaped slash in path";
    if (unreserved(value)) {
      decoded.push_back(static_cast<char>(value));
    } else {
      static constexpr char kHex[] = "0123456789ABCDEF";
      decoded.push_back('%');
      decoded.push_back(kHex[value >> 4]);
      decoded.push_back(kHex[value & 15]);
    }
  }
  // RFC 3986 5.2.4, segment by segment; empty segments are dropped too, so "//" is "/".
  out.clear();
  out.reserve(decoded.size());
  std::vector<size_t> starts;  // where each kept segment's "/" is in `out`
  bool endsWithSlash = false;
  for (size_t i = 1;;) {
    size_t end = decoded.find('/', i);
    std::string_view segment = std::string_view(decoded).substr(i, end == std::string::npos ? end : end - i);
    endsWithSlash = false;
    if (segment == "..") {
      if (!starts.empty()) {
        out.resize(starts.back());
        starts.pop_back();
      }
      endsWithSlash = true;
    } else if (segment.empty() || segment == ".") {
      endsWithSlash = true;
    } else {
      starts.push_back(out.size());
      out.push_back('/');
      out.append(segment);
    }
    if (end == std::string::npos) break;
    i = end + 1;
  }
  if (endsWithSlash || out.empty()) out.push_back('/');
  return nullptr;
}

const char* normalizeRequestTarget(std::string& target, std::string_view method, bool absoluteFormAllowed,
                                   EncodedSlashes slashes, std::string& authority) {
  authority.clear();
  if (target == "*") return method == "OPTIONS" ? nullptr : "asterisk-form outside OPTIONS";
  size_t pathStart = 0;
  if (target.empty() || target.front() != '/') {
    // absolute-form: scheme "://" authority path-abempty [ "?" query ]
    size_t colon = target.find("://");
    if (!absoluteFormAllowed || colon == std::string::npos) return "request-target is not origin-form";
    std::string_view scheme = std::string_view(target).substr(0, colon);
    if (!iequals(scheme, "http") && !iequals(scheme, "https")) return "absolute-form with another scheme";
    size_t authorityStart = colon + 3;
    size_t authorityEnd = target.find_first_of("/?#", authorityStart);
    if (authorityEnd == std::string::npos) authorityEnd = target.size();
    std::string_view found = std::string_view(target).substr(authorityStart, authorityEnd - authorityStart);
    if (found.find('@') != std::string_view::npos) return "userinfo in request-target";
    if (hostOfAuthority(found).empty()) return "no host in request-target";
    for (char c : found) {
      if (control(static_cast<unsigned char>(c))) return "control character in authority";
    }
    authority.assign(found);
    pathStart = authorityEnd;
  }
  size_t queryStart = target.find('?', pathStart);
  if (queryStart == std::string::npos) queryStart = target.size();
  std::string_view path = std::string_view(target).substr(pathStart, queryStart - pathStart);
  std::string_view query = std::string_view(target).substr(queryStart);
  for (char c : query) {
    if (c == '#') return "fragment in request-target";
    if (control(static_cast<unsigned char>(c))) return "control character in query";
  }
  if (pathStart == 0 && alreadyNormal(path)) return nullptr;
  std::string normal;
  if (path.empty()) {
    normal = "/";  // RFC 9112 3.2.1: an empty path is sent as "/"
  } else if (const char* error = normalizePath(path, slashes, normal)) {
    return error;
  }
  normal.append(query);
  target = std::move(normal);
  return nullptr;
}

std::string_view hostOfAuthority(std::string_view authority) {
  std::string_view host = trim(authority);
  if (!host.empty() && host.front() == '[') return host.substr(0, host.find(']') + 1);
  return host.substr(0, host.find(':'));
}

}  // namespace trellis
