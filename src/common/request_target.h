// The one form of a request-target that routing, auth, rewrites, access logs and the target all see
// (docs/request-paths.md says what is changed and what is refused, and why).
//
// HTTP/1.1 absolute-form (RFC 9112 3.2.2) becomes origin-form, its authority replacing the Host header;
// the path is normalized as RFC 3986 6.2.2 and 5.2.4 describe, plus merged slashes:
//   %-escapes of unreserved characters decoded ("/%61dmin" -> "/admin"), other escapes upper-cased;
//   "." and ".." segments removed ("/a/../admin" -> "/admin", never above "/"); "//" -> "/".
// Refused (the caller answers 400): a fragment, a control character, a malformed escape, an escaped NUL,
// userinfo or another scheme than http(s) in absolute-form, and (unless EncodedSlashes::Keep) "%2F", "%5C"
// and "\", which targets disagree about. The query is left as it came.
#pragma once
#include <string>
#include <string_view>

namespace trellis {

enum class EncodedSlashes {
  Reject,  // 400: a target that decodes them would see another path than the rules did
  Keep,    // left as "%2F" / "%5C" (raw "\" too): rules match them as those three characters
};

// Rewrites `target` in place (untouched when already normal: no allocation on the common path). Returns
// nullptr, or why the target is refused. `authority` gets absolute-form's "host[:port]", else is cleared.
// `absoluteFormAllowed`: an HTTP/1 request line may carry it, an HTTP/2 :path may not (RFC 9113 8.3.1).
// "*" is allowed for OPTIONS only.
const char* normalizeRequestTarget(std::string& target, std::string_view method, bool absoluteFormAllowed,
                                   EncodedSlashes slashes, std::string& authority);

// The path part alone (no query), for rule values compiled from the store: nullptr, or why it is refused.
const char* normalizePath(std::string_view path, EncodedSlashes slashes, std::string& out);

// The host of an authority or Host value: port and surrounding whitespace stripped, "[v6]" kept whole.
// Not lower-cased.
std::string_view hostOfAuthority(std::string_view authority);

}  // namespace trellis
