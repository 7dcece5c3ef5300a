// libFuzzer target for the downstream HTTP/1 request path: the strict codec plus routing over a
// small compiled snapshot, fed in arbitrary splits (the first byte picks the split size) so
// state carried across reads is exercised too.
#include <cstddef>
#include <cstdint>
#include <string>

#include "common/request_target.h"
#include "common/strings.h"
#include "compile/compiler.h"
#include "proxy/http/http1_codec.h"
#include "proxy/router.h"

namespace {

using namespace trellis;

const snapshot::Snapshot& fuzzSnapshot() {
  static snapshot::SnapshotPtr snap = [] {
    store::StoreContents contents;
    contents.revision = 1;
    auto add = [&](const char* kind, const char* id, const char* doc) { contents.records.push_back({kind, id, doc, 1, 1}); };
    add("service", "svc-1", R"({"id":"svc-1","arn":"arn:svc","dnsEntry":{"domainName":"a.example"}})");
    add("targetgroup", "tg-1", R"({"id":"tg-1","config":{"port":80},"targets":[{"id":"10.0.0.1"},{"id":"fd00::1"}]})");
    add("listener", "listener-1",
        R"({"id":"listener-1","serviceId":"svc-1","port":80,"protocol":"HTTP","defaultAction":{"forward":{"targetGroups":[{"targetGroupIdentifier":"tg-1","weight":3}]}}})");
    add("rule", "rule-1",
        R"({"id":"rule-1","listenerId":"listener-1","priority":1,"match":{"httpMatch":{"method":"POST","pathMatch":{"match":{"prefix":"/a"}},"headerMatches":[{"name":"x","match":{"contains":"y"}}]}},"action":{"fixedResponse":{"statusCode":404}}})");
    // Reachable from the fuzz client's VPC, so routing goes past the host lookup.
    add("servicenetwork", "sn-1", R"({"id":"sn-1","arn":"arn:sn"})");
    add("servicenetworkserviceassociation", "snsa-1",
        R"({"id":"snsa-1","serviceId":"svc-1","serviceNetworkId":"sn-1"})");
    add("servicenetworkvpcassociation", "snva-1", R"({"id":"snva-1","vpcId":"vpc-1","serviceNetworkId":"sn-1"})");
    model::Config config;
    config.vpcs.push_back({"vpc-1", {"10.0.0.0/8"}});
    return compile::compileSnapshot(contents, config);
  }();
  return *snap;
}

class Sink : public proxy::Http1RequestHandler {
 public:
  void onRequestHead(proxy::RequestHead& head) override {
    // As the exchange does: one normalized target before routing.
    std::string authority;
    if (normalizeRequestTarget(head.target, head.method, true, EncodedSlashes::Reject, authority)) return;
    if (!authority.empty()) head.host = toLower(hostOfAuthority(authority));
    proxy::RouteResult r = proxy::route(fuzzSnapshot(), &fuzzSnapshot().vpcs.at("vpc-1"), 80, head);
    if (r.action && !r.action->targetGroups.empty()) {
      const auto* weighted = state.pickTargetGroup(*r.action);
      if (weighted->group) state.pickTarget(*weighted->group);
    }
    framed.clear();
  }
  void onBody(std::string_view data) override { proxy::appendChunk(framed, data); }
  void onTrailers(proxy::Headers& trailers) override { proxy::appendLastChunk(framed, trailers); }
  void onComplete() override {}
  proxy::RouterState state;
  std::string framed;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  size_t split = 1 + data[0] % 64;
  const char* p = reinterpret_cast<const char*>(data + 1);
  size_t left = size - 1;
  Sink sink;
  proxy::Http1RequestParser parser(sink);
  while (left > 0) {
    size_t n = std::min(split, left), consumed = 0;
    proxy::ParseStatus status = parser.parse(p, n, consumed);
    if (status == proxy::ParseStatus::Error) return 0;
    if (consumed > n) __builtin_trap();
    if (status == proxy::ParseStatus::Paused) parser.resume();
    p += consumed;
    left -= consumed;
  }
  parser.finish();
  return 0;
}
