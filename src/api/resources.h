// What the VPC-resources operations share (docs/vpc-resources.md): resource configuration identifiers, and the resource
// endpoint associations that the config's VPC endpoints of type Resource make.
#pragma once
#include <string>
#include <string_view>
#include <vector>

#include "api/api.h"

namespace trellis::api {

// StringRule::check for a resource configuration id-or-ARN member.
std::string checkResourceConfigurationIdentifier(std::string_view v);

// The live resource endpoint associations of resource configuration `configuration` (its document), in id order: one
// per VPC endpoint of type Resource in the config that targets its ARN and whose association was not deleted.
std::vector<json> resourceEndpointAssociations(Resources& r, const json& configuration);
// Adds to `tx` the removal of the deletion markers of `configuration`'s endpoint associations (it is being deleted).
void forgetEndpointAssociations(Resources& r, Tx& tx, const json& configuration);

// How many resource configurations are associated with service network `networkId`.
size_t resourceAssociations(Resources& r, const std::string& networkId);

}  // namespace trellis::api
