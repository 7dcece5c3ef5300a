// Invariants. A broken one is a bug in Trellis, and going on would serve traffic from corrupt state, so the
// process stops and says where (docs/architecture.md, "Errors"). Bad input and failing peers are never
// asserted on: those are values the caller handles.
#pragma once
#include <cstdio>
#include <cstdlib>

#define TRELLIS_ASSERT(condition)                                                     \
  do {                                                                                \
    if (!(condition)) ::trellis::assertionFailed(#condition, __FILE__, __LINE__);     \
  } while (false)

namespace trellis {

[[noreturn]] inline void assertionFailed(const char* condition, const char* file, int line) {
  std::fprintf(stderr, "trellis: invariant broken at %s:%d: %s\n", file, line, condition);
  std::abort();
}

}  // namespace trellis
