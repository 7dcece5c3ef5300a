// Wall-clock helpers: RFC 3339 timestamps for the API and SigV4's basic ISO 8601 form.
#pragma once
#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace trellis {

using SystemTime = std::chrono::system_clock::time_point;

SystemTime systemNow();
// "2024-01-02T03:04:05Z", or with milliseconds "2024-01-02T03:04:05.123Z".
std::string formatRfc3339(SystemTime t, bool millis = false);
// SigV4's "20240102T030405Z".
std::string formatAmzDate(SystemTime t);
std::optional<SystemTime> parseAmzDate(std::string_view text);
// Accepts "YYYY-MM-DDTHH:MM:SS[.fff](Z|+hh:mm)".
std::optional<SystemTime> parseRfc3339(std::string_view text);

}  // namespace trellis
