#include "common/log.h"

#include <atomic>
#include <cstdio>
#include <mutex>

#include "common/time.h"

namespace trellis {
namespace {
std::atomic<int> g_level{static_cast<int>(LogLevel::Info)};
std::mutex g_mutex;
const char* name(LogLevel level) {
  switch (level) {
    case LogLevel::Debug: return "debug";
    case LogLevel::Info: return "info";
    case LogLevel::Warn: return "warn";
    case LogLevel::Error: return "error";
  }
  return "?";
}
}  // namespace

void setLogLevel(LogLevel level) { g_level = static_cast<int>(level); }
LogLevel logLevel() { return static_cast<LogLevel>(g_level.load(std::memory_order_relaxed)); }

bool parseLogLevel(std::string_view text, LogLevel& out) {
  for (auto level : {LogLevel::Debug, LogLevel::Info, LogLevel::Warn, LogLevel::Error}) {
    if (text == name(level)) {
      out = level;
      return true;
    }
  }
  return false;
}

void logLine(LogLevel level, std::string_view message) {
  std::string line = formatRfc3339(systemNow(), true) + " " + name(level) + " " + std::string(message) + "\n";
  std::lock_guard lock(g_mutex);
  std::fwrite(line.data(), 1, line.size(), stderr);
}

}  // namespace trellis
