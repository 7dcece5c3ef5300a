// What ListTargets reports of a target's health, as the data plane's prober sees it (health.h).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace trellis::proxy {

// ListTargets' view of a target: status INITIAL | HEALTHY | UNHEALTHY | UNAVAILABLE | UNUSED |
// DRAINING, and an ELB-style reasonCode (empty when HEALTHY).
// https://docs.aws.amazon.com/vpc-lattice/latest/APIReference/API_TargetSummary.html
struct TargetHealth {
  std::string status;
  std::string reasonCode;
};

// One target this data plane health-checks, and what it sees of it (HEALTHY, UNHEALTHY or INITIAL).
struct CheckedTarget {
  std::string targetGroupId;
  std::string targetId;
  uint16_t port = 0;
  TargetHealth health;
};

class TargetHealthView {
 public:
  virtual ~TargetHealthView() = default;
  // Every target whose checks run here (in use, checks enabled, not draining, resolvable): what a data-plane
  // host reports to the API servers (docs/fleet.md).
  virtual std::vector<CheckedTarget> checked() const = 0;
  // `port` is the target's traffic port (the target group's port when the target has none).
  // Unknown targets read as INITIAL until the data plane has seen a snapshot with them.
  virtual TargetHealth status(const std::string& targetGroupId, const std::string& targetId, uint16_t port) const = 0;
};

}  // namespace trellis::proxy
