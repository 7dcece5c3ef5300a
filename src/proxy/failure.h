// Why an exchange did not end as its target answered: one kind per cause, where the access log's
// failureReason, the status of a local answer and whether another target may be tried all come from.
// The reasons are Lattice's (docs/architecture.md, "Errors").
#pragma once
#include <cstdint>

namespace trellis::proxy {

enum class Failure : uint8_t {
  None,
  ClientConnectionClosed,  // the client went away (or reset the stream) before the response ended
  ClientProtocolError,     // the client broke HTTP, was too slow, or asked what its listener cannot carry
  ClientAccessDenied,      // an auth policy said no
  TargetConnectionError,   // no connection to a target: refused, timed out, TLS failed, limit reached
  TargetConnectionClosed,  // the target closed before its response ended
  TargetDataTimeout,       // the target was silent too long, or a rule's deadline passed
  TargetProtocolError,     // the target broke HTTP
};

// The access log's failureReason ("" for None).
const char* failureReason(Failure failure);

// After a failed attempt, which requests may go to a target again (RFC 9110 9.2.2: a request that may
// have been processed is repeated only when its method is idempotent, or its rule says it may be).
enum class Resend : uint8_t {
  Any,         // the target cannot have processed it: the connection never came up, the stream was refused
  Idempotent,  // it was sent and nothing came back
  No,          // a response had begun, or the target broke the protocol
};

// A failed attempt at a target: what happened, and whether the request may go again.
struct UpstreamFailure {
  Failure kind = Failure::TargetConnectionError;
  Resend resend = Resend::Any;
  int localStatus = 0;  // the client's answer when the target has its own (413: too large for a function)
  // The client's answer when nothing of the response went out yet: 504 for a timeout, else 502.
  int status() const { return localStatus ? localStatus : kind == Failure::TargetDataTimeout ? 504 : 502; }
  // Every failure but a timeout may come from the connection rather than the request, so even a rule
  // without a retry policy gets the proxy's one retry on another target for it.
  bool ofConnection() const { return kind != Failure::TargetDataTimeout; }
};

inline const char* failureReason(Failure failure) {
  switch (failure) {
    case Failure::None: return "";
    case Failure::ClientConnectionClosed: return "ClientConnectionClosed";
    case Failure::ClientProtocolError: return "ClientProtocolError";
    case Failure::ClientAccessDenied: return "ClientAccessDenied";
    case Failure::TargetConnectionError: return "TargetConnectionError";
    case Failure::TargetConnectionClosed: return "TargetConnectionClosed";
    case Failure::TargetDataTimeout: return "TargetDataTimeout";
    case Failure::TargetProtocolError: return "TargetProtocolError";
  }
  return "";
}

}  // namespace trellis::proxy
