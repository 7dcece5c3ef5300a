// Names the calling thread, as `top -H`, `perf` and /proc/PID/task/*/comm show it (at most 15 bytes: the
// kernel cuts the rest).
#pragma once
#include <pthread.h>

#include <string>

namespace trellis {

inline void nameThisThread(const std::string& name) { pthread_setname_np(pthread_self(), name.substr(0, 15).c_str()); }

}  // namespace trellis
