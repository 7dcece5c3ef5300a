#include "api/api.h"
#include "api/validation.h"

namespace trellis::api {

void registerTargetGroupOps(HandlerMap&) {}

}  // namespace trellis::api
