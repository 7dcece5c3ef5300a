#include "proxy/upstream/lambda_upstream.h"

#include <chrono>

#include "auth/sigv4.h"
#include "common/log.h"
#include "common/strings.h"
#include "common/time.h"

namespace trellis::proxy {
namespace {

// The Invoke API's path and query for a function ARN (arn:aws:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER]):
// the name in the path, a version or alias as ?Qualifier=, as the AWS SDKs send them.
void invokePath(std::string_view arn, std::string_view prefix, std::string& path, std::string& query) {
  size_t at = arn.find(":function:");
  std::string_view rest = at == std::string_view::npos ? arn : arn.substr(at + 10);
  size_t colon = rest.find(':');
  path = std::string(prefix) + "/2015-03-31/functions/" + percentEncode(rest.substr(0, colon)) + "/invocations";
  query = colon == std::string_view::npos ? "" : "Qualifier=" + percentEncode(rest.substr(colon + 1));
}

// Nothing reached the function: the client hears 413 Content Too Large (RFC 9110 15.5.14).
UpstreamFailure tooLarge() {
  UpstreamFailure failure{Failure::ClientProtocolError, Resend::No};
  failure.localStatus = 413;
  return failure;
}

int64_t epochMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

LambdaInvocation::LambdaInvocation(LambdaPool& pool, const UpstreamRequest& request, UpstreamStreamSink& sink)
    : pool_(pool),
      sink_(&sink),
      group_(request.group),
      target_(request.target),
      stats_(request.stats),
      method_(request.head.method),
      path_(request.head.target),
      headOnly_(request.head.method == "HEAD") {
  // The request's views live only as long as this call: copied.
  fields_.reserve(request.fields.size());
  for (const auto& [name, value] : request.fields) fields_.emplace_back(name, value);
  if (request.service) serviceArn_ = request.service->arn;
  if (request.network) networkArn_ = request.network->arn;
  if (request.sourceVpc) vpcArn_ = request.sourceVpc->arn;
  event_.v2 = group_.lambdaEventV2;
  event_.caller = request.caller ? &request.caller->identity : nullptr;
}

void LambdaInvocation::sendBody(std::string_view data) {
  if (!sink_ || invoked_ || failing_) return;
  if (body_.size() + data.size() > kMaxLambdaRequestBody) return failLater(tooLarge(), "request body above 6 MB");
  body_.append(data);
}

void LambdaInvocation::sendEnd(const Headers&) {
  if (!sink_ || invoked_ || failing_) return;
  UpstreamFailure failure;
  if (!invoke(failure)) failLater(failure, "no connection to the Lambda endpoint");
}

bool LambdaInvocation::invoke(UpstreamFailure& failure) {
  invoked_ = true;
  const snapshot::LambdaEndpoint& endpoint = *group_.lambda;
  deadline_ = pool_.loop_.nowMillis() + int64_t{endpoint.settings.timeoutSeconds} * 1000;
  event_.method = method_;
  event_.target = path_;
  event_.headers.clear();
  for (const auto& [name, value] : fields_) event_.headers.emplace_back(name, value);
  event_.body = body_;
  event_.serviceNetworkArn = networkArn_;
  event_.serviceArn = serviceArn_;
  event_.targetGroupArn = group_.arn;
  event_.sourceVpcArn = vpcArn_;
  event_.region = endpoint.region;
  event_.timeEpochMicros = epochMicros();
  std::string payload = lambdaEvent(event_);
  body_.clear();
  body_.shrink_to_fit();

  std::string path, query;
  invokePath(target_.id, endpoint.pathPrefix, path, query);
  HeaderList headers{
      {"host", endpoint.host}, {"content-type", "application/json"}, {"x-amz-invocation-type", "RequestResponse"}};
  const model::LambdaSettings& settings = endpoint.settings;
  if (!settings.accessKeyId.empty()) {
    auth::signRequest("POST", endpoint.host, path, query, headers, payload,
                      {settings.accessKeyId, settings.secretAccessKey, settings.sessionToken}, endpoint.region,
                      "lambda", systemNow());
  }
  RequestHead head;
  head.method = "POST";
  head.target = query.empty() ? path : path + "?" + query;
  head.hasContentLength = true;
  head.contentLength = payload.size();
  std::vector<HeaderView> fields(headers.begin(), headers.end());
  const snapshot::TargetGroup& server = *endpoint.server;
  UpstreamRequest call{server, server.targets[0], head, fields, stats_, true, nullptr, nullptr, nullptr, nullptr};
  UpstreamPool::Opened opened = pool_.http1_.open(call, *this, pool_.clientTls_, pool_.maxConnections_);
  if (!opened.stream) {
    failure = opened.atLimit ? UpstreamFailure{Failure::TargetConnectionError, Resend::Any} : opened.failure;
    return false;
  }
  call_ = opened.stream;
  call_->sendBody(payload);
  call_->sendEnd({});
  return true;
}

void LambdaInvocation::failLater(UpstreamFailure failure, const std::string& why) {
  logInfo("proxy: lambda ", target_.id, ": ", why);
  failing_ = true;
  if (call_) {
    UpstreamStream* call = call_;
    call_ = nullptr;
    call->cancel();
  }
  // A cancel() meanwhile clears sink_; a retired invocation is freed only after this turn's deferred tasks.
  pool_.loop_.defer([this, failure] {
    if (dead() || !sink_) return;
    UpstreamStreamSink* sink = sink_;
    end();
    sink->onUpstreamFailed(failure);
  });
}

void LambdaInvocation::end() {
  sink_ = nullptr;
  if (call_) {
    UpstreamStream* call = call_;
    call_ = nullptr;
    call->cancel();
  }
  pool_.live_.erase(this);
  pool_.loop_.retire(this);
}

void LambdaInvocation::cancel() { end(); }

void LambdaInvocation::onUpstreamHead(ResponseHead& head) {
  if (head.status < 200) return;
  invokeStatus_ = head.status;
  for (const auto& [name, value] : head.headers)
    if (name == "x-amz-function-error") functionError_ = value;
}

void LambdaInvocation::onUpstreamBody(std::string_view data) {
  if (failing_) return;
  if (answer_.size() + data.size() > kMaxLambdaResponse) {
    // Lambda itself refuses a larger answer; a server that sends one gets the same verdict as a bad answer.
    return failLater({Failure::TargetProtocolError, Resend::No}, "answer above 6 MB");
  }
  answer_.append(data);
}

void LambdaInvocation::onUpstreamFailed(UpstreamFailure failure) {
  call_ = nullptr;
  if (!sink_) return;
  UpstreamStreamSink* sink = sink_;
  end();
  sink->onUpstreamFailed(failure);
}

void LambdaInvocation::onUpstreamComplete() {
  call_ = nullptr;
  if (!sink_ || failing_) return;
  // Called from inside the endpoint connection's read: the answer goes to the exchange at the end of
  // the turn, once that connection is back in its pool.
  pool_.loop_.defer([this] {
    if (!dead() && sink_) deliver();
  });
}

void LambdaInvocation::deliver() {
  std::string why;
  LambdaResponse response;
  if (invokeStatus_ != 200) {
    // The Invoke call itself failed (no such function, throttled, refused signature): the type is in
    // x-amzn-errortype or the body.
    why = "Invoke answered " + std::to_string(invokeStatus_) + ": " + answer_.substr(0, 200);
  } else if (!functionError_.empty()) {
    why = "function error (" + functionError_ + "): " + answer_.substr(0, 200);
  } else if (!parseLambdaResponse(answer_, response, why)) {
    // `why` says what is wrong with the answer.
  }
  if (!why.empty()) {
    logInfo("proxy: lambda ", target_.id, ": ", why);
    UpstreamStreamSink* sink = sink_;
    end();
    return sink->onUpstreamFailed({Failure::TargetProtocolError, Resend::No});
  }
  ResponseHead head;
  head.status = response.status;
  head.headers = std::move(response.headers);
  // HEAD: the length the body would have; 204 and 304 have none (RFC 9110 8.6).
  bool noContent = response.status == 204 || response.status == 304;
  head.bodyless = headOnly_ || noContent;
  head.hasContentLength = !noContent;
  head.contentLength = noContent ? 0 : response.body.size();
  if (headOnly_ && !noContent) head.headers.emplace_back("content-length", std::to_string(head.contentLength));
  UpstreamStreamSink* sink = sink_;
  sink->onUpstreamActive();
  sink->onUpstreamHead(head);
  if (dead()) return;  // the exchange let go (a rule retrying this status)
  if (!head.bodyless && !response.body.empty()) sink->onUpstreamBody(response.body);
  if (dead()) return;
  sink->onUpstreamReadDone();
  end();
  sink->onUpstreamComplete();
}

UpstreamPool::Opened LambdaPool::open(const UpstreamRequest& request, UpstreamStreamSink& sink, SSL_CTX* clientTls,
                                      int maxConnections) {
  if (!request.group.lambda) return {nullptr, false, {Failure::TargetConnectionError, Resend::Any}};
  clientTls_ = clientTls;
  maxConnections_ = maxConnections;
  auto* invocation = new LambdaInvocation(*this, request, sink);
  live_.insert(invocation);
  const RequestHead& head = request.head;
  if (head.hasContentLength && head.contentLength > kMaxLambdaRequestBody) {
    invocation->failLater(tooLarge(), "request body above 6 MB");
  } else if (const std::string* expect = head.header("expect"); expect && iequals(*expect, "100-continue")) {
    // The function cannot say "go on" itself (RFC 9110 10.1.1): the proxy does, once the exchange has this stream.
    loop_.defer([invocation] {
      if (invocation->dead() || !invocation->sink_ || invocation->failing_) return;
      ResponseHead proceed;
      proceed.status = 100;
      invocation->sink_->onUpstreamHead(proceed);
      invocation->sink_->onUpstreamReadDone();  // sent now, not with the answer
    });
  } else if (!head.hasBody()) {
    UpstreamFailure failure;
    if (!invocation->invoke(failure)) {
      invocation->sink_ = nullptr;
      invocation->end();
      return {nullptr, false, failure};
    }
  }
  return {invocation, false, {}};
}

LambdaPool::~LambdaPool() {
  for (auto* invocation : live_) delete invocation;  // ended ones are the loop's to free, and not in live_
}

void LambdaPool::sweep(int64_t now) {
  std::vector<LambdaInvocation*> late;
  for (auto* invocation : live_)
    if (invocation->deadline_ != 0 && now > invocation->deadline_) late.push_back(invocation);
  for (auto* invocation : late) {
    if (invocation->dead() || !invocation->sink_ || invocation->failing_) continue;
    UpstreamStreamSink* sink = invocation->sink_;
    invocation->end();
    logInfo("proxy: lambda ", invocation->target_.id, ": no answer within ",
            invocation->group_.lambda->settings.timeoutSeconds, " s");
    sink->onUpstreamFailed({Failure::TargetDataTimeout, Resend::No});
  }
}

}  // namespace trellis::proxy
