// The workers' selection state (smooth weighted round robin, round robin over targets) across snapshot
// swaps: snapshots from the real compiler, brought forward change by change as trellisd does.
#include <gtest/gtest.h>

#include <map>

#include "compile/compiler.h"
#include "compile/store_fixture.h"
#include "proxy/router.h"

namespace trellis::testing {
namespace {

const std::string kSvc = "svc-0123456789abcdef0";
const std::string kOther = "svc-0123456789abcdef1";
const std::string kCanary = "tg-0000000000000000a";
const std::string kStable = "tg-0000000000000000b";

class RouterStateAcrossSnapshots : public ::testing::Test {
 protected:
  RouterStateAcrossSnapshots() {
    store_.service(kSvc, "shop");
    store_.service(kOther, "other");
    store_.targetGroup(kCanary, 80, {{"10.0.0.1"}});
    store_.targetGroup(kStable, 80, {{"10.0.0.2"}, {"10.0.0.3"}, {"10.0.0.4"}});
    store_.listener("listener-1", kSvc, 80, StoreFixture::forward({{kCanary, 1}, {kStable, 99}}));
    snap_ = compiler_.compile(store_.contents(), {});
  }

  // What trellisd does for every commit: the change feed into the compiler, the worker onto the result.
  void commitUnrelatedChange(int n) {
    store_.service(kOther, "other-" + std::to_string(n));
    snap_ = compiler_.update(store_.changesSince(snap_->revision));
    state_.snapshotChanged();
  }
  const snapshot::Action& action() const { return snap_->services.at(kSvc)->listeners[0].defaultAction; }

  StoreFixture store_;
  compile::SnapshotCompiler compiler_;
  std::shared_ptr<const snapshot::Snapshot> snap_;
  proxy::RouterState state_;
};

TEST_F(RouterStateAcrossSnapshots, ACanaryKeepsItsShareWhileOtherServicesChange) {
  std::map<std::string, int> picks;
  for (int i = 0; i < 1000; ++i) {
    ++picks[state_.pickTargetGroup(action())->id];
    commitUnrelatedChange(i);  // a new snapshot between every two requests
  }
  // Smooth weighted round robin is exact over each cycle of 100 picks; restarting it on every snapshot
  // would send all 1,000 to the stable group.
  EXPECT_EQ(picks[kCanary], 10);
  EXPECT_EQ(picks[kStable], 990);
}

TEST_F(RouterStateAcrossSnapshots, AQuietCanaryKeepsItsShareThroughManySnapshots) {
  std::map<std::string, int> picks;
  for (int i = 0; i < 100; ++i) {
    ++picks[state_.pickTargetGroup(action())->id];
    for (int j = 0; j < 66; ++j) commitUnrelatedChange(i * 100 + j);  // a quiet service: a request now and then
  }
  EXPECT_EQ(picks[kCanary], 1);
  EXPECT_EQ(picks[kStable], 99);
}

TEST_F(RouterStateAcrossSnapshots, TargetsKeepTheirRotationWhileOtherServicesChange) {
  std::map<std::string, int> picks;
  for (int i = 0; i < 300; ++i) {
    const auto& group = *snap_->targetGroups.at(kStable);
    ++picks[state_.pickTarget(group)->id];
    commitUnrelatedChange(i);
  }
  EXPECT_EQ(picks["10.0.0.2"], 100);
  EXPECT_EQ(picks["10.0.0.3"], 100);
  EXPECT_EQ(picks["10.0.0.4"], 100);
}

TEST_F(RouterStateAcrossSnapshots, AChangedSplitTakesEffectAtOnce) {
  for (int i = 0; i < 37; ++i) state_.pickTargetGroup(action());
  store_.listener("listener-1", kSvc, 80, StoreFixture::forward({{kCanary, 50}, {kStable, 50}}));
  snap_ = compiler_.update(store_.changesSince(snap_->revision));
  state_.snapshotChanged();
  std::map<std::string, int> picks;
  for (int i = 0; i < 100; ++i) ++picks[state_.pickTargetGroup(action())->id];
  EXPECT_EQ(picks[kCanary], 50);
  EXPECT_EQ(picks[kStable], 50);
}

}  // namespace
}  // namespace trellis::testing
