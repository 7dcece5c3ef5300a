// The config stream from API servers to proxies (docs/fleet.md): one answer of GET /_trellis/v1/changes, the
// data plane's records changed after the revision a proxy holds, as JSON:
//   {"revision":N,"full":false,"deleted":[{"kind":K,"id":I}],"records":[{"kind":K,"id":I,"value":"<JSON text>"}],
//    "config":"<the API server's config file>"}          (config: only when the proxy's differs)
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "store/store.h"

namespace trellis::fleet {

struct ChangeBatch {
  int64_t revision = 0;  // the API server's store revision the batch brings a proxy to
  bool full = false;     // a whole copy: what a proxy holds and the batch does not is gone
  std::vector<store::RecordKey> deleted;  // apply before `records`
  std::vector<store::Record> records;     // kind, id and value (revisions are the batch's)
  // The API server's config file (identities, VPCs, instances...), when the proxy does not hold this one.
  std::optional<std::string> config;
};

std::string encodeChangeBatch(const ChangeBatch& batch);
// nullopt, with `error` saying what is wrong, for anything but a well-formed batch: a proxy applies all of one
// or nothing.
std::optional<ChangeBatch> decodeChangeBatch(std::string_view body, std::string& error);

// What a data-plane host sees of one target it health-checks (POST /_trellis/v1/health, docs/fleet.md).
struct TargetReport {
  std::string targetGroupId;
  std::string targetId;
  uint16_t port = 0;
  std::string status;  // HEALTHY, UNHEALTHY or INITIAL
  std::string reasonCode;
};
//   {"targets":[{"targetGroupId":G,"targetId":T,"port":P,"status":S,"reasonCode":R}]}
std::string encodeHealthReport(const std::vector<TargetReport>& targets);
std::optional<std::vector<TargetReport>> decodeHealthReport(std::string_view body, std::string& error);

// A hash of records' kinds, ids and values, whatever their order or revisions: equal on two hosts when they hold the
// same records, and so compile the same snapshot from the same config.
std::string contentDigest(const std::vector<store::Record>& records);
// What a proxy reports of the config it holds (the `config` query parameter): a hash of the file's text.
std::string configDigest(std::string_view text);

}  // namespace trellis::fleet
