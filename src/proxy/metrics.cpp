#include "proxy/metrics.h"

#include <sstream>

namespace trellis::proxy {

void RequestCounters::record(int status, double ms) {
  ++total;
  if (status >= 200 && status < 600) ++byClass[status / 100 - 2];
  for (size_t i = 0; i < kRequestTimeBucketsMs.size(); ++i) {
    if (ms <= kRequestTimeBucketsMs[i]) {
      ++timeBuckets[i];
      break;  // stored per bucket; rendering makes them cumulative
    }
  }
  timeSumMs += ms;
}

void RequestCounters::add(const RequestCounters& o) {
  total += o.total;
  for (int i = 0; i < 4; ++i) byClass[i] += o.byClass[i];
  timeouts += o.timeouts;
  for (size_t i = 0; i < kRequestTimeBucketsMs.size(); ++i) timeBuckets[i] += o.timeBuckets[i];
  timeSumMs += o.timeSumMs;
  active += o.active;
}

void TargetGroupCounters::add(const TargetGroupCounters& o) {
  requests.add(o.requests);
  totalConnections += o.totalConnections;
  activeConnections += o.activeConnections;
  connectionErrors += o.connectionErrors;
  connectionTimeouts += o.connectionTimeouts;
  retries += o.retries;
  receivedBytes += o.receivedBytes;
  sentBytes += o.sentBytes;
}

void WorkerMetrics::add(const WorkerMetrics& o) {
  for (const auto& [id, c] : o.services) services[id].add(c);
  for (const auto& [id, c] : o.targetGroups) targetGroups[id].add(c);
  downstreamConnections += o.downstreamConnections;
  activeDownstreamConnections += o.activeDownstreamConnections;
  badRequests += o.badRequests;
  unknownHost += o.unknownHost;
  unreachableService += o.unreachableService;
  deniedNoVpc += o.deniedNoVpc;
  acceptPaused += o.acceptPaused;
  headTimeouts += o.headTimeouts;
  bodyTooSlow += o.bodyTooSlow;
  http2Terminated += o.http2Terminated;
  targetConnectionLimit += o.targetConnectionLimit;
  deniedSecurityGroup += o.deniedSecurityGroup;
}

namespace {

struct Family {
  std::string name, type, help;
  std::ostringstream series;
};

void requestSeries(std::unordered_map<std::string, Family>& f, const std::string& labels, const RequestCounters& c) {
  f["TotalRequestCount"].series << "TotalRequestCount{" << labels << "} " << c.total << "\n";
  f["ActiveRequestCount"].series << "ActiveRequestCount{" << labels << "} " << c.active << "\n";
  f["RequestTimeoutCount"].series << "RequestTimeoutCount{" << labels << "} " << c.timeouts << "\n";
  const char* classes[] = {"HTTPCode_2XX_Count", "HTTPCode_3XX_Count", "HTTPCode_4XX_Count", "HTTPCode_5XX_Count"};
  for (int i = 0; i < 4; ++i) f[classes[i]].series << classes[i] << "{" << labels << "} " << c.byClass[i] << "\n";
  auto& time = f["RequestTime"].series;
  uint64_t cumulative = 0;
  for (size_t i = 0; i < kRequestTimeBucketsMs.size(); ++i) {
    cumulative += c.timeBuckets[i];
    time << "RequestTime_bucket{" << labels << ",le=\"" << kRequestTimeBucketsMs[i] << "\"} " << cumulative << "\n";
  }
  time << "RequestTime_bucket{" << labels << ",le=\"+Inf\"} " << c.total << "\n"
       << "RequestTime_sum{" << labels << "} " << c.timeSumMs << "\n"
       << "RequestTime_count{" << labels << "} " << c.total << "\n";
}

}  // namespace

std::string renderPrometheus(const WorkerMetrics& m) {
  std::unordered_map<std::string, Family> families;
  auto declare = [&](const char* name, const char* type, const char* help) {
    families[name].name = name;
    families[name].type = type;
    families[name].help = help;
  };
  declare("TotalRequestCount", "counter", "Requests received (by service) or sent to targets (by target group).");
  declare("ActiveRequestCount", "gauge", "Requests in flight.");
  declare("RequestTimeoutCount", "counter", "Requests that timed out waiting for a target.");
  declare("HTTPCode_2XX_Count", "counter", "Responses with a 2xx status.");
  declare("HTTPCode_3XX_Count", "counter", "Responses with a 3xx status.");
  declare("HTTPCode_4XX_Count", "counter", "Responses with a 4xx status.");
  declare("HTTPCode_5XX_Count", "counter", "Responses with a 5xx status.");
  declare("RequestTime", "histogram", "Milliseconds from request start to the last response byte.");
  declare("TotalConnectionCount", "counter", "Connections opened to targets.");
  declare("ActiveConnectionCount", "gauge", "Open connections to targets.");
  declare("ConnectionErrorCount", "counter", "Failed connection attempts to targets.");
  declare("ConnectionTimeoutCount", "counter", "Connection attempts to targets that timed out.");
  declare("TotalReceivedConnectionBytes", "counter", "Bytes received from targets.");
  declare("TotalSentConnectionBytes", "counter", "Bytes sent to targets.");
  declare("trellis_proxy_retries_total", "counter", "Requests tried again on a target (a Trellis extension).");
  for (const auto& [id, c] : m.services) requestSeries(families, "service=\"" + id + "\"", c);
  for (const auto& [id, c] : m.targetGroups) {
    std::string labels = "target_group=\"" + id + "\"";
    requestSeries(families, labels, c.requests);
    families["TotalConnectionCount"].series << "TotalConnectionCount{" << labels << "} " << c.totalConnections << "\n";
    families["ActiveConnectionCount"].series << "ActiveConnectionCount{" << labels << "} " << c.activeConnections
                                             << "\n";
    families["ConnectionErrorCount"].series << "ConnectionErrorCount{" << labels << "} " << c.connectionErrors << "\n";
    families["ConnectionTimeoutCount"].series << "ConnectionTimeoutCount{" << labels << "} " << c.connectionTimeouts
                                              << "\n";
    families["TotalReceivedConnectionBytes"].series << "TotalReceivedConnectionBytes{" << labels << "} "
                                                    << c.receivedBytes << "\n";
    families["TotalSentConnectionBytes"].series << "TotalSentConnectionBytes{" << labels << "} " << c.sentBytes
                                                << "\n";
    families["trellis_proxy_retries_total"].series << "trellis_proxy_retries_total{" << labels << "} " << c.retries
                                                   << "\n";
  }
  std::ostringstream out;
  const char* order[] = {"TotalRequestCount",  "ActiveRequestCount",    "RequestTimeoutCount",
                         "HTTPCode_2XX_Count", "HTTPCode_3XX_Count",    "HTTPCode_4XX_Count",
                         "HTTPCode_5XX_Count", "RequestTime",           "TotalConnectionCount",
                         "ActiveConnectionCount", "ConnectionErrorCount", "ConnectionTimeoutCount",
                         "TotalReceivedConnectionBytes", "TotalSentConnectionBytes", "trellis_proxy_retries_total"};
  for (const char* name : order) {
    auto& f = families[name];
    out << "# HELP " << f.name << " " << f.help << "\n# TYPE " << f.name << " " << f.type << "\n" << f.series.str();
  }
  out << "# HELP trellis_proxy_downstream_connections_total Client connections accepted.\n"
      << "# TYPE trellis_proxy_downstream_connections_total counter\n"
      << "trellis_proxy_downstream_connections_total " << m.downstreamConnections << "\n"
      << "# TYPE trellis_proxy_downstream_connections_active gauge\n"
      << "trellis_proxy_downstream_connections_active " << m.activeDownstreamConnections << "\n"
      << "# TYPE trellis_proxy_bad_requests_total counter\n"
      << "trellis_proxy_bad_requests_total " << m.badRequests << "\n"
      << "# TYPE trellis_proxy_unknown_host_total counter\n"
      << "trellis_proxy_unknown_host_total " << m.unknownHost << "\n"
      << "# HELP trellis_proxy_unreachable_service_total Requests answered 404 because the client's VPC is not "
         "associated with a network of the service.\n"
      << "# TYPE trellis_proxy_unreachable_service_total counter\n"
      << "trellis_proxy_unreachable_service_total " << m.unreachableService << "\n"
      << "# HELP trellis_proxy_connections_denied_total Client connections closed at accept, by reason.\n"
      << "# TYPE trellis_proxy_connections_denied_total counter\n"
      << "trellis_proxy_connections_denied_total{reason=\"no_vpc\"} " << m.deniedNoVpc << "\n"
      << "trellis_proxy_connections_denied_total{reason=\"security_group\"} " << m.deniedSecurityGroup << "\n"
      << "# HELP trellis_proxy_accept_paused_total Times accepting stopped for 100 ms at the descriptor limit.\n"
      << "# TYPE trellis_proxy_accept_paused_total counter\n"
      << "trellis_proxy_accept_paused_total " << m.acceptPaused << "\n"
      << "# HELP trellis_proxy_client_timeouts_total Requests ended because the client sent too slowly.\n"
      << "# TYPE trellis_proxy_client_timeouts_total counter\n"
      << "trellis_proxy_client_timeouts_total{phase=\"head\"} " << m.headTimeouts << "\n"
      << "trellis_proxy_client_timeouts_total{phase=\"body\"} " << m.bodyTooSlow << "\n"
      << "# HELP trellis_proxy_http2_terminated_total HTTP/2 connections ended with GOAWAY ENHANCE_YOUR_CALM.\n"
      << "# TYPE trellis_proxy_http2_terminated_total counter\n"
      << "trellis_proxy_http2_terminated_total " << m.http2Terminated << "\n"
      << "# HELP trellis_proxy_target_connection_limit_total Requests answered 503 at maxConnectionsPerTarget.\n"
      << "# TYPE trellis_proxy_target_connection_limit_total counter\n"
      << "trellis_proxy_target_connection_limit_total " << m.targetConnectionLimit << "\n";
  return out.str();
}

}  // namespace trellis::proxy
