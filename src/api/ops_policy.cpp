#include "api/api.h"
#include "api/validation.h"

namespace trellis::api {

void registerPolicyOps(HandlerMap&) {}

}  // namespace trellis::api
