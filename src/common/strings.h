// Small string utilities shared by every subsystem.
#pragma once
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace trellis {

std::string toLower(std::string_view s);
bool iequals(std::string_view a, std::string_view b);
bool startsWith(std::string_view s, std::string_view prefix);
bool endsWith(std::string_view s, std::string_view suffix);
std::string_view trim(std::string_view s);
std::vector<std::string_view> split(std::string_view s, char sep);

// A hex digit's value; -1 when `c` is not one.
int hexValue(char c);
// Percent-decodes; nullopt on a malformed escape ("%4", "%zz").
std::optional<std::string> percentDecode(std::string_view s, bool plusIsSpace = false);
// RFC 3986 encoding of everything but unreserved characters (A-Z a-z 0-9 - _ . ~);
// keepSlash leaves '/' alone (SigV4 canonical paths).
std::string percentEncode(std::string_view s, bool keepSlash = false);

std::string hexEncode(std::string_view bytes);

// Parses a query string into (key, value) pairs in order, decoded. nullopt on bad escapes.
std::optional<std::vector<std::pair<std::string, std::string>>> parseQuery(std::string_view query);

}  // namespace trellis
