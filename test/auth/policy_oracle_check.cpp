// Differential test, part 2: replays the cases policy_oracle.cjs generated and had @cloud-copilot/iam-simulate
// decide, through our engine, and fails on any disagreement (per layer and combined).
//
// Usage: policy_oracle_check cases.json [minimum-cases]
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>

#include "auth/policy.h"

using namespace trellis::auth;
using nlohmann::json;

namespace {

std::string effectName(Effect effect) {
  switch (effect) {
    case Effect::Allow: return "Allow";
    case Effect::ExplicitDeny: return "ExplicitDeny";
    case Effect::ImplicitDeny: return "ImplicitDeny";
  }
  return "?";
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: policy_oracle_check cases.json [minimum-cases]\n";
    return 2;
  }
  std::ifstream in(argv[1]);
  json cases = json::parse(in, nullptr, false);
  if (cases.is_discarded() || !cases.is_array()) {
    std::cerr << argv[1] << ": not a JSON list of cases (did the oracle run?)\n";
    return 1;
  }
  size_t minimum = argc > 2 ? std::stoul(argv[2]) : 1000;
  if (cases.size() < minimum) {
    std::cerr << "only " << cases.size() << " cases, expected at least " << minimum << "\n";
    return 1;
  }

  size_t layers = 0, combined = 0, rejected = 0, mismatches = 0;
  std::map<std::string, size_t> outcomes;
  for (size_t i = 0; i < cases.size(); ++i) {
    const json& c = cases[i];
    const json& r = c["request"];
    RequestContext ctx;  // views into `c`
    ctx.principal = r["principal"].get_ref<const std::string&>();
    ctx.action = r["action"].get_ref<const std::string&>();
    ctx.resource = r["resource"].get_ref<const std::string&>();
    for (const auto& key : r["keys"])
      ctx.add(key["name"].get_ref<const std::string&>(), key["value"].get_ref<const std::string&>(),
              key["multi"].get<bool>());

    auto report = [&](const std::string& what, const std::string& ours, const std::string& oracle) {
      if (++mismatches <= 25)
        std::cerr << "case " << i << " " << what << ": ours " << ours << ", oracle " << oracle << "\n"
                  << c.dump() << "\n";
    };

    const json& expected = c["expected"];
    std::optional<Policy> policies[3];
    const char* names[3] = {"identity", "network", "service"};
    bool anyInvalid = false;
    for (int layer = 0; layer < 3; ++layer) {
      if (!c.contains(names[layer])) continue;
      auto parsed = parsePolicy(c[names[layer]].dump(), layer == 0 ? PolicyKind::Identity : PolicyKind::Resource);
      std::string want = expected[names[layer]];
      ++layers;
      if (want == "Invalid") {
        anyInvalid = true;
        ++rejected;
        if (!std::holds_alternative<PolicyError>(parsed)) report(names[layer], "accepted", "rejected");
        continue;
      }
      if (auto* error = std::get_if<PolicyError>(&parsed)) {
        report(names[layer], "rejected (" + error->message + ")", want);
        anyInvalid = true;
        continue;
      }
      policies[layer] = std::get<Policy>(parsed);
      std::string ours = effectName(evaluate(*policies[layer], ctx).effect);
      ++outcomes[std::string(names[layer]) + " " + want];
      if (ours != want) report(names[layer], ours, want);
    }
    if (anyInvalid) continue;

    LatticeAuthPolicies input;
    input.identity = policies[0] ? &*policies[0] : nullptr;
    input.networkUsesIam = c["networkUsesIam"];
    input.network = policies[1] ? &*policies[1] : nullptr;
    input.serviceUsesIam = c["serviceUsesIam"];
    input.service = policies[2] ? &*policies[2] : nullptr;
    LatticeDecision decision = authorizeLattice(input, ctx);
    const json& want = expected["combined"];
    json ours = decision.allowed ? json{{"allowed", true}}
                                 : json{{"allowed", false},
                                        {"deniedBy", std::string(authLayerName(decision.deniedBy))},
                                        {"explicitDeny", decision.explicitDeny}};
    ++combined;
    ++outcomes[std::string("combined ") + (decision.allowed ? "allowed" : "denied")];
    if (ours != want) report("combined", ours.dump(), want.dump());
  }

  std::printf(
      "%zu cases: %zu policy evaluations (%zu rejected as invalid by both), %zu combined decisions, "
      "%zu disagreements\n",
      cases.size(), layers, rejected, combined, mismatches);
  for (const auto& [outcome, count] : outcomes) std::printf("  %-28s %zu\n", outcome.c_str(), count);
  return mismatches == 0 ? 0 : 1;
}
