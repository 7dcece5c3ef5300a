// latency_probe: serial (c=1) HTTP/1.1 keep-alive latency, raw percentiles. wrk's latency figures
// include its coordinated-omission correction, which turns the VM's rare multi-ms stalls into hundreds
// of synthetic samples at c=1; this measures every request as it happened and nothing else.
//
// usage: latency_probe PORT SECONDS [MAX_REQUESTS]
//   → n=… rps=… p50=… p90=… p99=… p999=… max=…   (microseconds; one line, for run.sh)
// Each request is "GET / HTTP/1.1" to 127.0.0.1:PORT; a response is complete when its head and
// Content-Length bytes of body have arrived (anything else is an error: the bench origin always
// sends Content-Length).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

// Content-Length of a response head (case-insensitive name), or -1.
long contentLength(std::string_view head) {
  constexpr std::string_view kName = "\r\ncontent-length:";
  for (size_t i = 0; i + kName.size() <= head.size(); ++i) {
    bool match = true;
    for (size_t j = 0; j < kName.size() && match; ++j) {
      char c = head[i + j];
      if (c >= 'A' && c <= 'Z') c = static_cast<char>(c + 32);
      match = c == kName[j];
    }
    if (match) return std::strtol(head.data() + i + kName.size(), nullptr, 10);
  }
  return -1;
}

int fail(const char* what) {
  std::perror(what);
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: latency_probe PORT SECONDS [MAX_REQUESTS]\n");
    return 2;
  }
  int port = std::atoi(argv[1]);
  double seconds = std::atof(argv[2]);
  size_t maxRequests = argc > 3 ? std::strtoull(argv[3], nullptr, 10) : SIZE_MAX;

  int fd = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  inet_pton(AF_INET, "127.0.0.1", &address.sin_addr);
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) return fail("connect");

  std::string request = "GET / HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(port) + "\r\n\r\n";
  std::vector<double> latencies;
  latencies.reserve(1 << 20);
  std::vector<char> buffer(1 << 16);
  Clock::time_point start = Clock::now();
  Clock::time_point end = start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  while (latencies.size() < maxRequests) {
    Clock::time_point sent = Clock::now();
    if (sent >= end) break;
    if (write(fd, request.data(), request.size()) != static_cast<ssize_t>(request.size())) return fail("write");
    size_t got = 0;
    long wanted = -1;  // total response bytes, once the head is in
    while (wanted < 0 || got < static_cast<size_t>(wanted)) {
      ssize_t n = read(fd, buffer.data() + got, buffer.size() - got);
      if (n <= 0) return fail("read");
      got += static_cast<size_t>(n);
      if (wanted < 0) {
        std::string_view seen(buffer.data(), got);
        size_t headEnd = seen.find("\r\n\r\n");
        if (headEnd == std::string_view::npos) continue;
        long length = contentLength(seen.substr(0, headEnd + 2));
        if (length < 0) {
          std::fprintf(stderr, "latency_probe: response without Content-Length\n");
          return 1;
        }
        wanted = static_cast<long>(headEnd + 4) + length;
        if (static_cast<size_t>(wanted) > buffer.size()) buffer.resize(static_cast<size_t>(wanted));
      }
    }
    if (got != static_cast<size_t>(wanted)) {
      std::fprintf(stderr, "latency_probe: unexpected bytes after the response\n");
      return 1;
    }
    latencies.push_back(std::chrono::duration<double, std::micro>(Clock::now() - sent).count());
  }
  double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  if (latencies.empty()) return 1;
  std::sort(latencies.begin(), latencies.end());
  auto at = [&](double q) { return latencies[static_cast<size_t>(q * static_cast<double>(latencies.size() - 1))]; };
  std::printf("n=%zu rps=%.0f p50=%.1f p90=%.1f p99=%.1f p999=%.1f max=%.1f\n", latencies.size(),
              static_cast<double>(latencies.size()) / elapsed, at(0.5), at(0.9), at(0.99), at(0.999),
              latencies.back());
  return 0;
}
