#include "proxy/access_log.h"

#include <zlib.h>

#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "common/http_client.h"
#include "common/crypto.h"
#include "common/log.h"
#include "common/thread_name.h"
#include "common/strings.h"
#include "common/time.h"

namespace trellis::proxy {
namespace {

nlohmann::json orDash(const std::string& s) { return s.empty() ? nlohmann::json("-") : nlohmann::json(s); }
nlohmann::json orDash(int64_t v) { return v < 0 ? nlohmann::json("-") : nlohmann::json(v); }

std::string utcFormat(int64_t seconds, const char* format) {
  time_t t = static_cast<time_t>(seconds);
  tm parts{};
  gmtime_r(&t, &parts);
  char buf[64];
  strftime(buf, sizeof buf, format, &parts);
  return buf;
}

}  // namespace

std::string formatAccessLog(const AccessLogEntry& e) {
  nlohmann::ordered_json j;
  j["startTime"] = utcFormat(e.startTimeSeconds, "%Y-%m-%dT%H:%M:%SZ");
  j["serviceNetworkArn"] = orDash(e.serviceNetworkArn);
  j["serviceArn"] = orDash(e.serviceArn);
  j["targetGroupArn"] = orDash(e.targetGroupArn);
  j["sourceVpcArn"] = orDash(e.sourceVpcArn);
  j["sourceVpcId"] = orDash(e.sourceVpcId);
  j["destinationVpcId"] = orDash(e.destinationVpcId);
  j["sourceIpPort"] = orDash(e.sourceIpPort);
  j["targetIpPort"] = orDash(e.targetIpPort);
  j["listenerId"] = "-";
  j["listenerType"] = "-";
  j["requestMethod"] = orDash(e.requestMethod);
  j["requestPath"] = orDash(e.requestPath);
  j["protocol"] = e.protocol;
  j["hostHeader"] = orDash(e.hostHeader);
  j["userAgent"] = orDash(e.userAgent);
  j["serverNameIndication"] = orDash(e.serverNameIndication);
  j["tlsVersion"] = orDash(e.tlsVersion);
  j["sslCipher"] = orDash(e.sslCipher);
  j["responseCode"] = e.responseCode;
  if (e.grpcResponseCode >= 0) j["grpcResponseCode"] = e.grpcResponseCode;
  j["bytesReceived"] = e.bytesReceived;
  j["bytesSent"] = e.bytesSent;
  j["duration"] = e.durationMs;
  j["requestToTargetDuration"] = orDash(e.requestToTargetDurationMs);
  j["responseFromTargetDuration"] = orDash(e.responseFromTargetDurationMs);
  j["requestId"] = orDash(e.requestId);
  auto orNull = [](const std::string& s) { return s.empty() ? nlohmann::json(nullptr) : nlohmann::json(s); };
  j["resolvedUser"] = orNull(e.resolvedUser);
  j["authDeniedReason"] = orNull(e.authDeniedReason);
  j["callerPrincipal"] = orDash(e.callerPrincipal);
  j["callerPrincipalOrgID"] = orDash(e.callerPrincipalOrgID);
  auto tags = nlohmann::json::parse(e.callerPrincipalTags, nullptr, false);
  j["callerPrincipalTags"] = tags.is_object() ? tags : nlohmann::json("-");
  j["callerX509SubjectCN"] = "-";
  j["callerX509IssuerOU"] = "-";
  j["callerX509SANNameCN"] = "-";
  j["callerX509SANDNS"] = "-";
  j["callerX509SANURI"] = "-";
  j["failureReason"] = orDash(e.failureReason);
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

namespace {

int64_t unixMillis() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Prometheus label values: backslash, quote and newline escaped.
std::string labelValue(std::string_view value) {
  std::string out;
  for (char c : value) {
    if (c == '\\' || c == '"' || c == '\n') out += '\\';
    out += c == '\n' ? 'n' : c;
  }
  return out;
}

}  // namespace

FirehoseDelivery::FirehoseDelivery(Options options) : options_(options) {}

FirehoseDelivery::~FirehoseDelivery() { stop(); }

void FirehoseDelivery::start() {
  thread_ = std::thread([this] {
    nameThisThread("firehose");
    run();
  });
}

void FirehoseDelivery::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void FirehoseDelivery::enqueue(const snapshot::AccessLogDestination& destination, std::string record) {
  bool wake = false;
  {
    std::lock_guard lock(mutex_);
    Stream& stream = streams_[destination.destinationArn];
    if (stream.arn.empty()) stream.arn = destination.destinationArn;
    if (destination.firehoseUrl.empty()) {
      ++stream.dropped;
      if (!stream.warnedUnconfigured) {
        stream.warnedUnconfigured = true;
        logWarn("access logs: no endpoint for ", destination.destinationArn,
                " in the config (accessLogs.firehose); its records are dropped");
      }
      return;
    }
    stream.warnedUnconfigured = false;  // configured now: warn again should it go away
    stream.url = destination.firehoseUrl;
    stream.accessKey = destination.firehoseAccessKey;
    stream.caFile = destination.firehoseCaFile;
    if (stream.waiting.empty()) stream.oldestSince = std::chrono::steady_clock::now();
    stream.waiting.push_back(std::move(record));
    if (stream.waiting.size() > options_.maxBacklog) {
      stream.waiting.pop_front();
      ++stream.dropped;
      if (stream.droppedThisOutage++ == 0) {
        logWarn("access logs: ", stream.arn, " holds ", options_.maxBacklog,
                " undelivered records; dropping the oldest until its endpoint takes records again");
      }
    }
    // The first waiting record sets a deadline the thread must learn of; a full batch goes right away.
    wake = stream.waiting.size() == 1 || stream.waiting.size() >= options_.maxBatchRecords;
  }
  if (wake) wake_.notify_one();
}

void FirehoseDelivery::takeBatch(Stream& stream, int64_t nowMillis) {
  stream.requestId = randomUuid();
  std::string records;
  size_t bytes = 0, count = 0;
  while (!stream.waiting.empty() && count < options_.maxBatchRecords &&
         (count == 0 || bytes + stream.waiting.front().size() <= options_.maxBatchBytes)) {
    bytes += stream.waiting.front().size();
    records += (count++ ? ",{\"data\":\"" : "{\"data\":\"") + base64Encode(stream.waiting.front()) + "\"}";
    stream.waiting.pop_front();
  }
  stream.oldestSince = std::chrono::steady_clock::now();  // the rest has waited at most this long: close enough
  stream.batchRecords = count;
  stream.body = "{\"requestId\":\"" + stream.requestId + "\",\"timestamp\":" + std::to_string(nowMillis) +
                ",\"records\":[" + records + "]}";
  stream.retryAt = {};
  stream.backoff = std::chrono::milliseconds(0);
}

std::string FirehoseDelivery::post(const std::string& url, const std::string& accessKey, const std::string& caFile,
                                   const std::string& arn, const std::string& requestId, const std::string& body,
                                   std::chrono::seconds timeout) {
  std::string error;
  auto endpoint = parseEndpoint(url, error);
  if (!endpoint) return error;
  endpoint->caFile = caFile;
  HeaderList headers{{"content-type", "application/json"},
                     {"x-amz-firehose-protocol-version", "1.0"},
                     {"x-amz-firehose-request-id", requestId},
                     {"x-amz-firehose-source-arn", arn}};
  if (!accessKey.empty()) headers.emplace_back("x-amz-firehose-access-key", accessKey);
  try {
    std::string target = endpoint->basePath.empty() ? "/" : endpoint->basePath;
    auto response = httpExchange(*endpoint, "POST", target, headers, body, timeout);
    if (response.status != 200) return "HTTP " + std::to_string(response.status);
    // The spec's success: 200 with a JSON body echoing the request id.
    auto answer = nlohmann::json::parse(response.body, nullptr, false);
    if (!answer.is_object() || answer.value("requestId", "") != requestId)
      return "HTTP 200 without this requestId in a JSON body";
    return {};
  } catch (const std::exception& e) {
    return e.what();
  }
}

void FirehoseDelivery::run() {
  using Clock = std::chrono::steady_clock;
  std::unique_lock lock(mutex_);
  bool lastRound = false;
  while (true) {
    auto now = Clock::now();
    Clock::time_point next = now + std::chrono::seconds(60);
    Stream* due = nullptr;
    for (auto& [arn, stream] : streams_) {
      if (stream.body.empty() && !stream.waiting.empty() &&
          (lastRound || stream.waiting.size() >= options_.maxBatchRecords ||
           now - stream.oldestSince >= options_.maxBatchDelay)) {
        takeBatch(stream, unixMillis());
      }
      if (!stream.body.empty()) {
        if (lastRound || stream.retryAt <= now) {
          due = &stream;
          break;
        }
        next = std::min(next, stream.retryAt);
      } else if (!stream.waiting.empty()) {
        next = std::min(next, stream.oldestSince + options_.maxBatchDelay);
      }
    }
    if (due) {
      // Only this thread touches a stream's batch, and streams are never erased: post without the lock.
      Stream& stream = *due;
      std::string url = stream.url, accessKey = stream.accessKey, caFile = stream.caFile;
      lock.unlock();
      std::string error = post(url, accessKey, caFile, stream.arn, stream.requestId, stream.body, options_.timeout);
      lock.lock();
      if (error.empty()) {
        stream.delivered += stream.batchRecords;
        if (stream.backoff.count() > 0 || stream.droppedThisOutage > 0) {
          logInfo("access logs: ", stream.arn, " delivers again (", stream.droppedThisOutage,
                  " records dropped meanwhile)");
        }
        stream.droppedThisOutage = 0;
        stream.body.clear();
        stream.batchRecords = 0;
        continue;
      }
      ++stream.failures;
      if (lastRound) {
        stream.dropped += stream.batchRecords + stream.waiting.size();
        logWarn("access logs: stopping; ", stream.batchRecords + stream.waiting.size(), " records for ", stream.arn,
                " could not be delivered: ", error);
        stream.waiting.clear();
        stream.body.clear();
        continue;
      }
      if (stream.backoff.count() == 0) logWarn("access logs: delivery to ", stream.arn, " failed, retrying: ", error);
      stream.backoff = stream.backoff.count() == 0 ? options_.firstBackoff
                                                   : std::min(stream.backoff * 2, options_.maxBackoff);
      stream.retryAt = Clock::now() + stream.backoff;
      continue;
    }
    if (lastRound) return;
    if (stopping_) {
      lastRound = true;  // one more pass: flush what waits, one attempt each
      continue;
    }
    wake_.wait_until(lock, next);
  }
}

std::string FirehoseDelivery::renderMetrics() const {
  std::lock_guard lock(mutex_);
  if (streams_.empty()) return {};
  std::string out =
      "# HELP trellis_access_log_firehose_records_delivered_total Access-log records a Firehose endpoint took.\n"
      "# TYPE trellis_access_log_firehose_records_delivered_total counter\n";
  auto each = [&](const char* name, auto value) {
    for (const auto& [arn, stream] : streams_)
      out += std::string(name) + "{destination=\"" + labelValue(arn) + "\"} " + std::to_string(value(stream)) + "\n";
  };
  each("trellis_access_log_firehose_records_delivered_total", [](const Stream& s) { return s.delivered; });
  out += "# HELP trellis_access_log_firehose_failures_total Firehose deliveries that failed (each retried).\n"
         "# TYPE trellis_access_log_firehose_failures_total counter\n";
  each("trellis_access_log_firehose_failures_total", [](const Stream& s) { return s.failures; });
  out += "# HELP trellis_access_log_firehose_records_dropped_total Records dropped: no endpoint configured, backlog "
         "full, or undeliverable at stop.\n"
         "# TYPE trellis_access_log_firehose_records_dropped_total counter\n";
  each("trellis_access_log_firehose_records_dropped_total", [](const Stream& s) { return s.dropped; });
  out += "# HELP trellis_access_log_firehose_backlog Records waiting for delivery.\n"
         "# TYPE trellis_access_log_firehose_backlog gauge\n";
  each("trellis_access_log_firehose_backlog",
       [](const Stream& s) { return static_cast<uint64_t>(s.waiting.size() + s.batchRecords); });
  return out;
}

namespace {

struct RecentLines {
  static constexpr size_t kKept = 1000;
  std::mutex mutex;
  std::deque<RecentAccessLog> lines;
  uint64_t last = 0;
};

RecentLines& recentLines() {
  static RecentLines recent;
  return recent;
}

}  // namespace

std::vector<RecentAccessLog> recentAccessLogs(uint64_t after) {
  auto& recent = recentLines();
  std::lock_guard lock(recent.mutex);
  std::vector<RecentAccessLog> out;
  for (const auto& line : recent.lines)
    if (line.sequence > after) out.push_back(line);
  return out;
}

AccessLogWriter::AccessLogWriter(std::string dataDir, std::string region, std::string accountId)
    : dataDir_(std::move(dataDir)), region_(std::move(region)), accountId_(std::move(accountId)),
      writerHash_(randomHex(8)) {}

AccessLogWriter::~AccessLogWriter() { stop(); }

void AccessLogWriter::start() {
  firehose_.start();
  thread_ = std::thread([this] {
    nameThisThread("access-logs");
    run();
  });
}

void AccessLogWriter::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
  firehose_.stop();  // after the writer: it may still hand over records
}

void AccessLogWriter::submit(std::vector<AccessLogEntry>&& batch) {
  if (batch.empty()) return;
  {
    std::lock_guard lock(mutex_);
    if (pending_.empty()) {
      pending_ = std::move(batch);
    } else {
      for (auto& e : batch) pending_.push_back(std::move(e));
    }
    batch.clear();
  }
  wake_.notify_one();
}

void AccessLogWriter::run() {
  std::unique_lock lock(mutex_);
  while (true) {
    wake_.wait(lock, [&] { return stopping_ || !pending_.empty(); });
    std::vector<AccessLogEntry> batch = std::move(pending_);
    pending_.clear();
    bool done = stopping_;
    lock.unlock();
    write(batch);
    lock.lock();
    if (done && pending_.empty()) return;
  }
}

void AccessLogWriter::write(std::vector<AccessLogEntry>& batch) {
  namespace fs = std::filesystem;
  // Group the formatted lines by destination file so each file is opened once per batch.
  std::map<std::string, std::string> cloudwatch, s3;
  std::vector<std::string> formatted;
  for (const auto& entry : batch) {
    if (entry.destinations.empty()) continue;
    std::string line = formatAccessLog(entry);
    formatted.push_back(line);
    line.push_back('\n');
    for (const auto& d : entry.destinations) {
      const std::string& arn = d.destinationArn;
      if (arn.find(":logs:") != std::string::npos) {
        auto at = arn.find(":log-group:");
        if (at == std::string::npos) continue;
        std::string group = arn.substr(at + 11);
        if (endsWith(group, ":*")) group.resize(group.size() - 2);
        cloudwatch[(fs::path(dataDir_) / "access-logs" / "cloudwatch" / (percentEncode(group) + ".jsonl")).string()] +=
            line;
      } else if (arn.rfind("arn:", 0) == 0 && arn.find(":s3:::") != std::string::npos) {
        std::string bucketAndPrefix = arn.substr(arn.find(":s3:::") + 6);
        std::string hour = utcFormat(entry.startTimeSeconds, "%Y%m%dT%H00Z");
        fs::path dir = fs::path(dataDir_) / "access-logs" / "s3" / bucketAndPrefix / "AWSLogs" / accountId_ /
                       "VpcLattice" / "AccessLogs" / region_ / utcFormat(entry.startTimeSeconds, "%Y/%m/%d") /
                       d.resourceId;
        std::string name = accountId_ + "_VpcLatticeAccessLogs_" + region_ + "_" + d.resourceId + "_" + hour + "_" +
                           writerHash_ + ".json.gz";
        s3[(dir / name).string()] += line;
      } else if (arn.find(":firehose:") != std::string::npos) {
        line.pop_back();  // one record per entry, without the JSON-lines newline
        firehose_.enqueue(d, line);
        line.push_back('\n');
      } else if (!warnedUnknown_) {
        warnedUnknown_ = true;
        logWarn("access logs: destination ", arn,
                " is not a log group, bucket or delivery stream; entries for it are dropped");
      }
    }
  }
  if (!formatted.empty()) {
    auto& recent = recentLines();
    std::lock_guard lock(recent.mutex);
    for (auto& line : formatted) {
      recent.lines.push_back({++recent.last, std::move(line)});
      if (recent.lines.size() > RecentLines::kKept) recent.lines.pop_front();
    }
  }
  std::error_code ec;
  for (const auto& [path, text] : cloudwatch) {
    fs::create_directories(fs::path(path).parent_path(), ec);
    std::ofstream out(path, std::ios::app | std::ios::binary);
    out << text;
    if (!out) logWarn("access logs: cannot write ", path);
  }
  for (const auto& [path, text] : s3) {
    fs::create_directories(fs::path(path).parent_path(), ec);
    gzFile file = gzopen(path.c_str(), "ab");
    if (!file || gzwrite(file, text.data(), static_cast<unsigned>(text.size())) != static_cast<int>(text.size())) {
      logWarn("access logs: cannot write ", path);
    }
    if (file) gzclose(file);
  }
}

}  // namespace trellis::proxy
