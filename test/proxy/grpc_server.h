// A real gRPC server for tests: test/proxy/grpc_echo.py under Debian's python3-grpcio, on a free port,
// stopped by pid (and never outliving a test that died).
#pragma once
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>

namespace trellis::testing {

class GrpcServer {
 public:
  GrpcServer() {
    int fds[2];
    if (pipe(fds) != 0) return;
    pid_ = fork();
    if (pid_ == 0) {
      prctl(PR_SET_PDEATHSIG, SIGTERM);
      dup2(fds[1], 1);
      ::close(fds[0]);
      execl("/usr/bin/python3", "python3", TRELLIS_TEST_DIR "/grpc_echo.py", "serve", nullptr);
      _exit(127);
    }
    ::close(fds[1]);
    FILE* out = fdopen(fds[0], "r");
    char line[32] = {};
    if (out && fgets(line, sizeof line, out)) port_ = static_cast<uint16_t>(std::atoi(line));
    if (out) fclose(out);
  }
  ~GrpcServer() {
    if (pid_ <= 0) return;
    kill(pid_, SIGTERM);
    waitpid(pid_, nullptr, 0);
  }
  GrpcServer(const GrpcServer&) = delete;
  GrpcServer& operator=(const GrpcServer&) = delete;
  uint16_t port() const { return port_; }

 private:
  pid_t pid_ = -1;
  uint16_t port_ = 0;
};

}  // namespace trellis::testing
