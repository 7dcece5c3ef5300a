// Lattice API errors (https://docs.aws.amazon.com/vpc-lattice/latest/APIReference/CommonErrors.html).
// Handlers throw ApiError; the server turns it into the restJson1 wire shape: status code,
// x-amzn-ErrorType header, JSON body with `message` and the shape's members.
#pragma once
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "model/ids.h"

namespace trellis::api {

struct ApiError : std::runtime_error {
  ApiError(int status_, std::string type_, const std::string& message, nlohmann::json members_ = nlohmann::json::object())
      : std::runtime_error(message), status(status_), type(std::move(type_)), members(std::move(members_)) {}
  int status;
  std::string type;        // e.g. "ValidationException"
  nlohmann::json members;  // shape members besides `message`
  std::string retryAfter;  // Retry-After header for Throttling/InternalServer, if any
};

struct FieldError {
  std::string name;
  std::string message;
};

ApiError validationError(const std::string& message, const std::vector<FieldError>& fields = {},
                         const std::string& reason = "fieldValidationFailed");
ApiError notFound(model::Kind kind, const std::string& resourceId);
ApiError notFound(const std::string& resourceType, const std::string& resourceId, const std::string& message);
ApiError conflict(const std::string& resourceType, const std::string& resourceId, const std::string& message);
ApiError quotaExceeded(const std::string& resourceType, const std::string& quotaCode, const std::string& message,
                       const std::string& resourceId = "");
ApiError accessDenied(const std::string& message);

}  // namespace trellis::api
