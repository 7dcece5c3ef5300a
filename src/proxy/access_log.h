// Access logs: one JSON object per request, formatted and written on the writer's own
// thread. Workers hand over whole batches once per event-loop turn, so the request path only fills a
// struct. Destinations are the ARNs of the access-log subscriptions, mapped to local places:
//   CloudWatch Logs  arn:aws:logs:{region}:{acct}:log-group:{name}[:*]
//       → {dataDir}/access-logs/cloudwatch/{name, '/' and other reserved chars percent-encoded}.jsonl
//   S3               arn:aws:s3:::{bucket}[/{prefix}]
//       → {dataDir}/access-logs/s3/{bucket}/{prefix}/AWSLogs/{acct}/VpcLattice/AccessLogs/{region}/
//         {YYYY/MM/DD}/{resource-id}/{acct}_VpcLatticeAccessLogs_{region}_{resource-id}_{YYYYMMDDTHH00Z}_{hash}.json.gz
//         (one gzip file per hour and writer; each batch appends a gzip member)
//   Firehose         arn:aws:firehose:{region}:{acct}:deliverystream/{name}
//       → POSTed to the config's accessLogs.firehose.{name}.url (http, or https verified against its caFile or
//         the system trust store) in Firehose's HTTP endpoint delivery
//         format (FirehoseDelivery below); a stream the config does not name: dropped, counted, logged once.
// Fields: https://docs.aws.amazon.com/vpc-lattice/latest/ug/monitoring-access-logs.html
#pragma once
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
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
  // Auth (docs/architecture.md, "Auth on the data plane"); resolvedUser and authDeniedReason empty: null.
  std::string resolvedUser, authDeniedReason;
  std::string callerPrincipal, callerPrincipalOrgID;
  std::string callerPrincipalTags;  // a JSON object; empty: none
  std::vector<snapshot::AccessLogDestination> destinations;
};

// The JSON line for one entry (no trailing newline). Missing values are "-" as Lattice writes them.
std::string formatAccessLog(const AccessLogEntry& entry);

// The last 1,000 lines this process's writers formatted, for the console's live tail; filled on the writer's
// thread, once per batch, never on the request path. Lines numbered after `after`, oldest first.
struct RecentAccessLog {
  uint64_t sequence = 0;
  std::string line;
};
std::vector<RecentAccessLog> recentAccessLogs(uint64_t after);

// Delivers access-log records to Firehose HTTP endpoints (Firehose's "HTTP endpoint delivery request and
// response specifications", protocol 1.0) on its own thread, so a slow or failing endpoint never holds up
// the files. Records wait per delivery stream and leave in batches of up to 500 records (or 4 MiB) once the
// oldest has waited 1 s. A batch is retried with the same X-Amz-Firehose-Request-Id, backing off from
// 0.5 s to 30 s, until the endpoint answers 200 with that request id. A stream holds at most `maxBacklog`
// records: past that the oldest are dropped, counted and logged, so an endpoint down for long costs
// bounded memory.
class FirehoseDelivery {
 public:
  struct Options {
    size_t maxBatchRecords = 500;
    size_t maxBatchBytes = 4 << 20;  // of record data, before base64
    std::chrono::milliseconds maxBatchDelay{1000};
    size_t maxBacklog = 20000;
    std::chrono::milliseconds firstBackoff{500}, maxBackoff{30000};
    std::chrono::seconds timeout{30};  // per POST
  };

  FirehoseDelivery() : FirehoseDelivery(Options{}) {}
  explicit FirehoseDelivery(Options options);
  ~FirehoseDelivery();
  void start();
  // Makes one last attempt for every waiting record, then stops; what still fails is dropped and logged.
  void stop();
  // From any thread. `destination` carries the stream's endpoint; none configured: the record is dropped
  // (counted, logged once per destination).
  void enqueue(const snapshot::AccessLogDestination& destination, std::string record);
  std::string renderMetrics() const;

 private:
  struct Stream {
    std::string arn, url, accessKey, caFile;
    std::deque<std::string> waiting;
    std::chrono::steady_clock::time_point oldestSince;  // arrival of waiting.front()
    // The batch being delivered: kept as sent (same request id and body) until the endpoint takes it.
    std::string requestId, body;
    size_t batchRecords = 0;
    std::chrono::steady_clock::time_point retryAt;
    std::chrono::milliseconds backoff{0};
    uint64_t delivered = 0, failures = 0, dropped = 0, droppedThisOutage = 0;
    bool warnedUnconfigured = false;
  };

  void run();
  void takeBatch(Stream& stream, int64_t nowMillis);
  // POSTs `stream`'s batch; the error when the endpoint did not take it, empty when it did.
  static std::string post(const std::string& url, const std::string& accessKey, const std::string& caFile,
                          const std::string& arn, const std::string& requestId, const std::string& body,
                          std::chrono::seconds timeout);

  Options options_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::map<std::string, Stream> streams_;  // by destination ARN; never erased (node-stable)
  bool stopping_ = false;
  std::thread thread_;
};

class AccessLogWriter {
 public:
  AccessLogWriter(std::string dataDir, std::string region, std::string accountId);
  ~AccessLogWriter();
  void start();
  // Writes everything submitted so far, then stops.
  void stop();
  void submit(std::vector<AccessLogEntry>&& batch);
  // Prometheus text: Firehose delivery counters by destination.
  std::string renderMetrics() const { return firehose_.renderMetrics(); }

 private:
  void run();
  void write(std::vector<AccessLogEntry>& batch);

  std::string dataDir_, region_, accountId_, writerHash_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::vector<AccessLogEntry> pending_;
  bool stopping_ = false;
  bool warnedUnknown_ = false;
  FirehoseDelivery firehose_;
  std::thread thread_;
};

}  // namespace trellis::proxy
