#include "api/errors.h"

namespace trellis::api {

using nlohmann::json;

ApiError validationError(const std::string& message, const std::vector<FieldError>& fields,
                         const std::string& reason) {
  json members = {{"reason", reason}};
  if (!fields.empty()) {
    json list = json::array();
    for (const auto& f : fields) list.push_back({{"name", f.name}, {"message", f.message}});
    members["fieldList"] = std::move(list);
  }
  return ApiError(400, "ValidationException", message, std::move(members));
}

ApiError notFound(model::Kind kind, const std::string& resourceId) {
  std::string type(model::resourceType(kind));
  return notFound(type, resourceId, "The resource " + resourceId + " of type " + type + " could not be found.");
}

ApiError notFound(const std::string& resourceType, const std::string& resourceId, const std::string& message) {
  return ApiError(404, "ResourceNotFoundException", message,
                  {{"resourceId", resourceId}, {"resourceType", resourceType}});
}

ApiError conflict(const std::string& resourceType, const std::string& resourceId, const std::string& message) {
  return ApiError(409, "ConflictException", message, {{"resourceId", resourceId}, {"resourceType", resourceType}});
}

ApiError quotaExceeded(const std::string& resourceType, const std::string& quotaCode, const std::string& message,
                       const std::string& resourceId) {
  json members = {{"resourceType", resourceType}, {"serviceCode", "vpc-lattice"}, {"quotaCode", quotaCode}};
  if (!resourceId.empty()) members["resourceId"] = resourceId;
  return ApiError(402, "ServiceQuotaExceededException", message, std::move(members));
}

ApiError accessDenied(const std::string& message) { return ApiError(403, "AccessDeniedException", message); }

}  // namespace trellis::api
