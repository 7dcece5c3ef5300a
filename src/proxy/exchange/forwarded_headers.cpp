#include "proxy/exchange/forwarded_headers.h"

#include <algorithm>

#include "common/strings.h"
#include "proxy/downstream/stream.h"

namespace trellis::proxy {

bool ownedByProxy(std::string_view name) {
  if (name.size() < 15 || name[0] != 'x') return false;  // asked for every request field: most are not ours
  return name == "x-forwarded-for" || name == "x-forwarded-port" || name == "x-forwarded-proto" ||
         name == "x-amzn-lattice-identity" || name == "x-amzn-lattice-identity-tags" ||
         name == "x-amzn-lattice-network" || name == "x-amzn-lattice-target" || name == "x-amzn-source-vpc" ||
         name == "x-amzn-requestid";
}

const std::vector<HeaderView>& ForwardedHeaders::build(const RequestHead& head, const ForwardedFor& to, bool http2) {
  fields_.clear();
  connectionTokens_.clear();
  for (const auto& [name, value] : head.headers) {
    if (name != "connection") continue;
    for (auto token : split(value, ',')) {
      if (!trim(token).empty()) connectionTokens_.push_back(trim(token));
    }
  }
  auto namedByConnection = [&](std::string_view name) {
    return std::any_of(connectionTokens_.begin(), connectionTokens_.end(),
                       [&](std::string_view token) { return iequals(token, name); });
  };
  for (const auto& [name, value] : head.headers) {
    if (isHopByHop(name) && !(http2 && name == "te")) continue;
    if ((!http2 && name == "content-length") || ownedByProxy(name)) continue;
    if (!connectionTokens_.empty() && namedByConnection(name)) continue;
    fields_.emplace_back(name, value);
  }
  fields_.emplace_back("x-forwarded-for", to.client.ip);
  fields_.emplace_back("x-forwarded-port", to.client.portText);
  fields_.emplace_back("x-forwarded-proto", to.client.transport.tls() ? "https" : "http");
  fields_.emplace_back("x-amzn-requestid", to.requestId);
  target_.assign("ServiceArn=").append(to.service.arn);
  target_.append("; ServiceNetworkArn=").append(to.network ? to.network->arn : "");
  target_.append("; TargetGroupArn=").append(to.group.arn);
  fields_.emplace_back("x-amzn-lattice-target", target_);
  if (to.vpc) {
    network_.assign("SourceVpcArn=").append(to.vpc->arn);
    fields_.emplace_back("x-amzn-lattice-network", network_);
    fields_.emplace_back("x-amzn-source-vpc", to.vpc->id);
  }
  if (to.caller) {
    fields_.emplace_back("x-amzn-lattice-identity", to.caller->identityHeader);
    fields_.emplace_back("x-amzn-lattice-identity-tags", to.caller->identityTagsHeader);
  }
  return fields_;
}

}  // namespace trellis::proxy
