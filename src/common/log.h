// Leveled logging to stderr. One line per message, safe from any thread.
#pragma once
#include <sstream>
#include <string>
#include <string_view>

namespace trellis {

enum class LogLevel { Debug = 0, Info = 1, Warn = 2, Error = 3 };

void setLogLevel(LogLevel level);
LogLevel logLevel();
// Parses "debug", "info", "warn", "error"; returns false for anything else.
bool parseLogLevel(std::string_view text, LogLevel& out);
void logLine(LogLevel level, std::string_view message);

namespace detail {
template <typename... Args>
std::string concat(const Args&... args) {
  std::ostringstream out;
  (out << ... << args);
  return out.str();
}
}  // namespace detail

template <typename... Args>
void logAt(LogLevel level, const Args&... args) {
  if (level >= logLevel()) logLine(level, detail::concat(args...));
}
template <typename... Args> void logDebug(const Args&... a) { logAt(LogLevel::Debug, a...); }
template <typename... Args> void logInfo(const Args&... a) { logAt(LogLevel::Info, a...); }
template <typename... Args> void logWarn(const Args&... a) { logAt(LogLevel::Warn, a...); }
template <typename... Args> void logError(const Args&... a) { logAt(LogLevel::Error, a...); }

}  // namespace trellis
