// trellis: a kubectl-style CLI for a Trellis control plane, signing its requests with SigV4.
#include <cstdlib>
#include <iostream>

#include "cli/commands.h"

int main(int argc, char** argv) {
  using namespace trellis::cli;
  Options options;
  int code = parseArgs(std::vector<std::string>(argv, argv + argc), options, std::cout, std::cerr);
  if (code >= 0) return code;
  auto env = [](const char* name) { return std::getenv(name); };
  if (isLocalCommand(options)) return runLocal(options, env, std::cout, std::cerr);
  Settings settings;
  std::string error;
  if (!resolveSettings(options, [](const char* name) { return std::getenv(name); }, settings, error)) {
    std::cerr << "trellis: " << error << "\n";
    return 2;
  }
  return run(options, settings, std::cout, std::cerr);
}
