// Lattice's CloudWatch metrics as Prometheus series. Each worker owns a WorkerMetrics and
// bumps it without atomics or locks; a scrape asks every worker for a copy (on its own thread) and
// merges them, so the request path never synchronises for stats.
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

namespace trellis::proxy {

// RequestTime histogram bounds, milliseconds.
inline constexpr std::array<double, 12> kRequestTimeBucketsMs = {1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 5000, 30000};

struct RequestCounters {
  uint64_t total = 0;
  uint64_t byClass[4] = {};  // 2xx, 3xx, 4xx, 5xx
  uint64_t timeouts = 0;     // RequestTimeoutCount
  uint64_t timeBuckets[kRequestTimeBucketsMs.size()] = {};
  double timeSumMs = 0;
  uint64_t active = 0;  // ActiveRequestCount (gauge)

  void record(int status, double ms);
  void add(const RequestCounters& other);
};

struct TargetGroupCounters {
  RequestCounters requests;
  uint64_t totalConnections = 0;
  int64_t activeConnections = 0;
  uint64_t connectionErrors = 0;
  uint64_t connectionTimeouts = 0;
  uint64_t retries = 0;        // requests tried again (rule retry policies, the retry after a failed connect)
  uint64_t receivedBytes = 0;  // from targets
  uint64_t sentBytes = 0;      // to targets

  void add(const TargetGroupCounters& other);
};

struct WorkerMetrics {
  std::unordered_map<std::string, RequestCounters> services;  // by service id
  std::unordered_map<std::string, TargetGroupCounters> targetGroups;  // by target group id
  uint64_t downstreamConnections = 0;
  int64_t activeDownstreamConnections = 0;
  uint64_t badRequests = 0;  // 400s for malformed or over-limit requests
  uint64_t unknownHost = 0;
  uint64_t unreachableService = 0;  // 404s for a known service the client's VPC is not associated with
  // Connections closed at accept, before any byte is read.
  uint64_t deniedNoVpc = 0;          // the client's address is in no VPC (and there is no defaultVpc)
  uint64_t deniedSecurityGroup = 0;  // the VPC association's security groups allow no rule for it
  // Hostile or slow clients, and the proxy's own limits (docs/architecture.md, "Limits").
  uint64_t acceptPaused = 0;          // accept stopped for a moment at the process's descriptor limit
  uint64_t headTimeouts = 0;          // 408: a request head not whole within requestHeadTimeoutSeconds
  uint64_t bodyTooSlow = 0;           // a request body below requestBodyMinBytesPerSecond
  uint64_t http2Terminated = 0;       // HTTP/2 connections sent GOAWAY ENHANCE_YOUR_CALM
  uint64_t targetConnectionLimit = 0;  // 503: a target at maxConnectionsPerTarget

  void add(const WorkerMetrics& other);
};

// Prometheus text exposition of merged counters. Series carry `service` or `target_group` labels.
std::string renderPrometheus(const WorkerMetrics& merged);

}  // namespace trellis::proxy
