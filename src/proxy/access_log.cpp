#include "proxy/access_log.h"

#include <zlib.h>

#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "common/crypto.h"
#include "common/log.h"
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

AccessLogWriter::AccessLogWriter(std::string dataDir, std::string region, std::string accountId)
    : dataDir_(std::move(dataDir)), region_(std::move(region)), accountId_(std::move(accountId)),
      writerHash_(randomHex(8)) {}

AccessLogWriter::~AccessLogWriter() { stop(); }

void AccessLogWriter::start() { thread_ = std::thread([this] { run(); }); }

void AccessLogWriter::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
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
  for (const auto& entry : batch) {
    if (entry.destinations.empty()) continue;
    std::string line = formatAccessLog(entry);
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
      } else if (!warnedFirehose_) {
        warnedFirehose_ = true;
        logWarn("access logs: destination ", arn, " is not supported yet; entries for it are dropped");
      }
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
