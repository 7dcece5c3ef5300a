#include "proxy/exchange/forwarded_headers.h"

#include <algorithm>
#include <cstring>
#include <initializer_list>

#include "common/strings.h"
#include "proxy/downstream/stream.h"

namespace trellis::proxy {
namespace {

// `out` = the pieces, sized once (these values are composed for every request).
void assignJoined(std::string& out, std::initializer_list<std::string_view> pieces) {
  size_t size = 0;
  for (std::string_view piece : pieces) size += piece.size();
  out.resize(size);
  char* p = out.data();
  for (std::string_view piece : pieces) {
    std::memcpy(p, piece.data(), piece.size());
    p += piece.size();
  }
}

}  // namespace

bool ownedByProxy(std::string_view name) {
  if (name.size() < 15 || name[0] != 'x') return false;  // asked for every request field: most are not ours
  return name == "x-forwarded-for" || name == "x-forwarded-port" || name == "x-forwarded-proto" ||
         name == "x-amzn-lattice-identity" || name == "x-amzn-lattice-identity-tags" ||
         name == "x-amzn-lattice-network" || name == "x-amzn-lattice-target" || name == "x-amzn-source-vpc" ||
         name == "x-amzn-requestid";
}

void ForwardedHeaders::dropNamedByConnection(const RequestHead& head) {
  connectionTokens_.clear();
  for (const auto& [name, value] : head.headers) {
    if (name != "connection") continue;
    for (auto token : split(value, ',')) {
      if (!trim(token).empty()) connectionTokens_.push_back(trim(token));
    }
  }
  std::erase_if(fields_, [&](const HeaderView& field) {
    return std::any_of(connectionTokens_.begin(), connectionTokens_.end(),
                       [&](std::string_view token) { return iequals(token, field.first); });
  });
}

void ForwardedHeaders::copyClientFields(const RequestHead& head, bool http2, bool keepLength) {
  fields_.clear();
  bool named = false;  // a Connection field names others to drop
  for (const auto& [name, value] : head.headers) {
    if (isHopByHop(name)) {
      named = named || name == "connection";
      if (!(http2 && name == "te")) continue;
    }
    if ((!keepLength && name == "content-length") || ownedByProxy(name)) continue;
    fields_.emplace_back(name, value);
  }
  if (named) dropNamedByConnection(head);
}

const std::vector<HeaderView>& ForwardedHeaders::buildForFunction(const RequestHead& head, const ForwardedFor& to) {
  copyClientFields(head, false, true);
  fields_.emplace_back("x-forwarded-for", to.client.ip);
  return fields_;
}

const std::vector<HeaderView>& ForwardedHeaders::build(const RequestHead& head, const ForwardedFor& to, bool http2) {
  copyClientFields(head, http2, http2);
  fields_.emplace_back("x-forwarded-for", to.client.ip);
  fields_.emplace_back("x-forwarded-port", to.client.portText);
  fields_.emplace_back("x-forwarded-proto", to.client.transport.tls() ? "https" : "http");
  fields_.emplace_back("x-amzn-requestid", to.requestId);
  assignJoined(target_, {"ServiceArn=", to.service.arn, "; ServiceNetworkArn=", to.network ? to.network->arn : "",
                         "; TargetGroupArn=", to.group.arn});
  fields_.emplace_back("x-amzn-lattice-target", target_);
  if (to.vpc) {
    assignJoined(network_, {"SourceVpcArn=", to.vpc->arn});
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
