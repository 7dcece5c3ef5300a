#include "api/api.h"
#include "api/validation.h"

namespace trellis::api {

void registerRuleOps(HandlerMap&) {}

}  // namespace trellis::api
