#include "proxy/downstream/http2_stream.h"

#include <charconv>

#include "common/log.h"
#include "proxy/io/buffer.h"
#include "proxy/server/worker_context.h"

namespace trellis::proxy {

void Http2Stream::routedTo(const snapshot::Service& service) { h2_.c_.routedTo(service); }

void Http2Stream::sendHead(const ResponseHead& head, const RequestHead&, std::string_view requestId) {
  std::vector<HeaderView>& headers = h2_.headScratch_;  // views into `head`: nothing copied twice
  headers.clear();
  for (const auto& [name, value] : head.headers) {
    if (isHopByHop(name) || name == "x-amzn-requestid" || name == "content-length") continue;
    headers.emplace_back(name, value);
  }
  headers.emplace_back("x-amzn-requestid", requestId);
  char length[24];
  if (head.hasContentLength && head.status >= 200 && head.status != 204) {
    char* end = std::to_chars(length, length + sizeof length, head.contentLength).ptr;
    headers.emplace_back("content-length", std::string_view(length, static_cast<size_t>(end - length)));
  }
  ended_ = head.bodyless;
  h2_.session_.submitResponse(id_, head.status, headers, head.bodyless);
}

void Http2Stream::sendBody(std::string_view data) {
  if (ended_) return;
  if (exchange_) exchange_->countSent(data.size());
  h2_.session_.sendData(id_, data);
}

void Http2Stream::sendEnd(const Headers& trailers) {
  if (!ended_) h2_.session_.endStream(id_, trailers);
  ended_ = true;
}

size_t Http2Stream::bufferedBytes() const {
  // The connection's own unsent bytes count too: frames are pulled only while the socket keeps up.
  size_t unsent = h2_.c_.unsentBytes();
  return h2_.session_.bufferedBytes(id_) + (unsent >= kHighWater ? unsent : 0);
}

void Http2Stream::resumeRequestBody() {
  h2_.session_.consume(id_, SIZE_MAX);  // everything received and held back so far
  h2_.c_.flush();
}

void Http2Stream::abortStream(Failure failure) {
  if (!exchange_) return;
  h2_.session_.resetStream(id_, NGHTTP2_INTERNAL_ERROR);
  exchange_->abort(failure);  // destroys it
  h2_.c_.flush();
}

void Http2Stream::flushOutput() { h2_.c_.flush(); }

void Http2Stream::exchangeDone() {
  exchange_.reset();
  h2_.c_.flush();  // the response's last frames
}

Exchange* Http2Downstream::exchangeOf(int32_t id) const {
  auto it = streams_.find(id);
  return it == streams_.end() ? nullptr : it->second->exchange_.get();
}

Http2Stream& Http2Downstream::newStream(int32_t id) {
  auto& stream = streams_[id];
  stream = std::make_unique<Http2Stream>(*this, id);
  stream->exchange_ = std::make_unique<Exchange>(c_.worker(), c_.client(), *stream);
  return *stream;
}

void Http2Downstream::onRequestHead(int32_t id, RequestHead& head) {
  c_.streamActivity();
  Http2Stream& stream = newStream(id);
  stream.exchange_->start(std::move(head));
  if (stream.exchange_ && stream.exchange_->awaitingStart()) opened_.push_back(id);
}

void Http2Downstream::startUpstreams() {
  for (size_t i = 0; i < opened_.size() && !c_.closed(); ++i) {
    Exchange* e = exchangeOf(opened_[i]);
    if (e && e->awaitingStart()) e->startDeferred();
  }
  opened_.clear();
}

void Http2Downstream::onMalformedRequest(int32_t id, std::string_view reason) {
  ++c_.worker().stats().badRequests;
  logDebug("proxy: 400 from ", c_.client().ipPort, " (HTTP/2 stream ", id, "): ", reason);
  newStream(id).exchange_->reject(400);
}

void Http2Downstream::onBody(int32_t id, std::string_view data) {
  Exchange* e = exchangeOf(id);
  if (e) e->requestBody(data);
  // Acknowledged now unless the target is behind; then when it drains (resumeRequestBody).
  e = exchangeOf(id);
  if (!e || !e->bodyBlocked()) session_.consume(id, data.size());
}

void Http2Downstream::onTrailers(int32_t id, Headers& trailers) {
  if (Exchange* e = exchangeOf(id)) e->requestTrailers(std::move(trailers));
}

void Http2Downstream::onComplete(int32_t id) {
  if (Exchange* e = exchangeOf(id)) e->requestComplete();
}

void Http2Downstream::onStreamClosed(int32_t id, uint32_t errorCode) {
  auto it = streams_.find(id);
  if (it == streams_.end()) return;
  std::unique_ptr<Http2Stream> stream = std::move(it->second);
  streams_.erase(it);
  if (Exchange* e = stream->exchange_.get()) {
    // Reset by the client, or the connection went: whatever the exchange was doing ends here.
    if (e->responseDone() && errorCode == NGHTTP2_NO_ERROR) {
      e->finish();
    } else {
      e->abort(Failure::ClientConnectionClosed);
    }
  }
  c_.streamActivity();
}

void Http2Downstream::onStreamDrained(int32_t id) {
  if (Exchange* e = exchangeOf(id)) e->downstreamDrained();
}

void Http2Downstream::drained() {
  for (const auto& [id, stream] : streams_) {
    if (stream->exchange_) stream->exchange_->downstreamDrained();
  }
}

void Http2Downstream::abortAll(Failure failure) {
  std::vector<int32_t> ids;
  for (const auto& [id, stream] : streams_) ids.push_back(id);
  for (int32_t id : ids) {
    if (Exchange* e = exchangeOf(id)) e->abort(failure);
  }
}

void Http2Downstream::dropUpstreams() {
  for (auto& [id, stream] : streams_) {
    if (stream->exchange_) stream->exchange_->dropUpstream();
  }
}

}  // namespace trellis::proxy
