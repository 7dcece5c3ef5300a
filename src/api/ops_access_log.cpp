#include "api/api.h"
#include "api/validation.h"

namespace trellis::api {

void registerAccessLogOps(HandlerMap&) {}

}  // namespace trellis::api
