#include "api/api.h"
#include "api/validation.h"

namespace trellis::api {

void registerListenerOps(HandlerMap&) {}

}  // namespace trellis::api
