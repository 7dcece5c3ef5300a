// Access logs (spec 6.1): one JSON object per request, formatted and written on the writer's own
// thread. Workers hand over whole batches once per event-loop turn, so the request path only fills a
// struct. Destinations are the ARNs of the access-log subscriptions, mapped to local places:
//   CloudWatch Logs  arn:aws:logs:{region}:{acct}:log-group:{name}[:*]
//       → {dataDir}/access-logs/cloudwatch/{name, '/' and other reserved chars percent-encoded}.jsonl
//   S3               arn:aws:s3:::{bucket}[/{prefix}]
//       → {dataDir}/access-logs/s3/{bucket}/{prefix}/AWSLogs/{acct}/VpcLattice/AccessLogs/{region}/
//         {YYYY/MM/DD}/{resource-id}/{acct}_VpcLatticeAccessLogs_{region}_{resource-id}_{YYYYMMDDTHH00Z}_{hash}.json.gz
//         (one gzip file per hour and writer; each batch appends a gzip member)
//   Firehose         not delivered yet (logged once).
#pragma once
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "snapshot/snapshot.h"

namespace trellis::proxy {

struct AccessLogEntry {
  int64_t startTimeSeconds = 0;  // unix
  std::string serviceNetworkArn, serviceArn, targetGroupArn;
  std::string sourceVpcArn, sourceVpcId, destinationVpcId;
  std::string sourceIpPort, targetIpPort;
  std::string requestMethod, requestPath, protocol = "HTTP/1.1";
  std::string hostHeader, userAgent;
  std::string serverNameIndication, tlsVersion, sslCipher;  // HTTPS only
  int grpcResponseCode = -1;                                // gRPC only
  int responseCode = 0;
  uint64_t bytesReceived = 0, bytesSent = 0;
  int64_t durationMs = 0, requestToTargetDurationMs = -1, responseFromTargetDurationMs = -1;
  std::string requestId;
  std::string failureReason;
  // Auth (spec 5.6); resolvedUser and authDeniedReason empty: null.
  std::string resolvedUser, authDeniedReason;
  std::string callerPrincipal, callerPrincipalOrgID;
  std::string callerPrincipalTags;  // a JSON object; empty: none
  std::vector<snapshot::AccessLogDestination> destinations;
};

// The JSON line for one entry (no trailing newline). Missing values are "-" as Lattice writes them.
std::string formatAccessLog(const AccessLogEntry& entry);

class AccessLogWriter {
 public:
  AccessLogWriter(std::string dataDir, std::string region, std::string accountId);
  ~AccessLogWriter();
  void start();
  // Writes everything submitted so far, then stops.
  void stop();
  void submit(std::vector<AccessLogEntry>&& batch);

 private:
  void run();
  void write(std::vector<AccessLogEntry>& batch);

  std::string dataDir_, region_, accountId_, writerHash_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::vector<AccessLogEntry> pending_;
  bool stopping_ = false;
  bool warnedFirehose_ = false;
  std::thread thread_;
};

}  // namespace trellis::proxy
