#include "api/api.h"
#include "api/validation.h"

namespace trellis::api {

void registerTagOps(HandlerMap&) {}

}  // namespace trellis::api
