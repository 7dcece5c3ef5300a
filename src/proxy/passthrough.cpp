#include "proxy/passthrough.h"

#include "proxy/auth.h"
#include "proxy/upstream/connect.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <memory>

#include "common/log.h"
#include "proxy/io/buffer.h"
#include "proxy/router.h"
#include "proxy/server/event_loop.h"

namespace trellis::proxy {
namespace {

class SpliceEnd;

// What both ends share; each end holds it, so it lives until the loop frees the second end.
struct Splice {
  EventLoop& loop;
  SpliceEnd* client = nullptr;
  SpliceEnd* target = nullptr;
  int64_t createdAt = 0, lastActive = 0;
  int64_t idleMs = 60000;
  int64_t lifetimeMs = 0;  // ConnectionDurationExceeded
  std::string description;  // "client → target" for logs
  explicit Splice(EventLoop& l) : loop(l) {}
  void close(const char* why);
};

class SpliceEnd : public Pollable {
 public:
  SpliceEnd(std::shared_ptr<Splice> splice, int fd, bool connected) : splice_(std::move(splice)), connected_(connected) {
    fd_ = fd;
  }
  SpliceEnd* other() const { return this == splice_->client ? splice_->target : splice_->client; }

  void onEvents(uint32_t events) override {
    Splice& s = *splice_;
    if (!connected_) {
      int err = 0;
      socklen_t len = sizeof err;
      getsockopt(fd_, SOL_SOCKET, SO_ERROR, &err, &len);
      if (err != 0 || (events & (EPOLLERR | EPOLLHUP))) return s.close("cannot connect to the target");
      if (!(events & EPOLLOUT)) return;
      connected_ = true;
    }
    if (events & EPOLLERR) return s.close("socket error");
    if ((events & (EPOLLIN | EPOLLHUP)) && !readEof_) readSome();
    if (dead()) return;
    if ((events & EPOLLHUP) && readEof_ && out_.empty()) {
      // Both directions of this socket are gone; whatever the other side still sends has nowhere to go.
      if (other()->readEof_ || other()->out_.empty()) return s.close(nullptr);
    }
    if (events & EPOLLOUT) flush();
    if (dead()) return;
    update();
    other()->update();
  }

  void onSweep(int64_t now, bool stopping) override {
    if (this != splice_->client) return;  // one end acts for the splice
    Splice& s = *splice_;
    if (stopping) return s.close(nullptr);
    if (!s.target->connected_ && now - s.createdAt > kConnectTimeoutMs) return s.close("connect timeout");
    if (now - s.lastActive > s.idleMs) return s.close(nullptr);
    // ConnectionDurationExceeded (10 minutes unless the config says otherwise).
    if (now - s.createdAt > s.lifetimeMs) return s.close(nullptr);
  }

  void readSome() {
    SpliceEnd* to = other();
    // Through a per-thread scratch area: growing out_ by kReadChunk first would zero 64 KiB per read.
    static thread_local char scratch[kReadChunk];
    while (to->out_.size() < kHighWater) {
      ssize_t n = ::read(fd_, scratch, kReadChunk);
      if (n > 0) {
        to->out_.append(scratch, static_cast<size_t>(n));
        splice_->lastActive = splice_->loop.nowMillis();
        continue;
      }
      if (n == 0) {
        readEof_ = true;
        break;
      }
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      if (errno == EINTR) continue;
      return splice_->close("read error");
    }
    to->flush();
  }

  // Writes out_; passes a half-close on once the other side's EOF and all its bytes went through.
  void flush() {
    if (!connected_ || dead()) return;
    size_t done = 0;
    while (done < out_.size()) {
      ssize_t n = ::send(fd_, out_.data() + done, out_.size() - done, MSG_NOSIGNAL);
      if (n > 0) {
        done += static_cast<size_t>(n);
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
      return splice_->close(nullptr);  // the peer is gone
    }
    out_.erase(0, done);
    if (out_.empty() && other()->readEof_ && !shutWr_) {
      shutWr_ = true;
      ::shutdown(fd_, SHUT_WR);
      if (other()->shutWr_) return splice_->close(nullptr);  // both directions finished
    }
  }

  void update() {
    if (dead()) return;
    uint32_t events = 0;
    if (!readEof_ && other()->out_.size() < kHighWater) events |= EPOLLIN;
    if (!connected_ || !out_.empty()) events |= EPOLLOUT;
    splice_->loop.setInterest(this, events);
  }

  std::shared_ptr<Splice> splice_;
  std::string out_;  // bytes for this end's socket
  bool connected_;
  bool readEof_ = false;  // this end's peer sent FIN
  bool shutWr_ = false;   // we sent FIN to this end's peer
};

void Splice::close(const char* why) {
  if (why) logDebug("proxy: passthrough ", description, " closed: ", why);
  if (client) loop.retire(client);
  if (target) loop.retire(target);
}

}  // namespace

bool startPassthrough(EventLoop& loop, RouterState& router, const snapshot::Snapshot& snap, int clientFd, const std::string& clientIpPort, const snapshot::Service& service,
                      const snapshot::Listener& listener, std::string firstBytes) {
  // Auth: Connect, anonymous, decided before any byte goes to a target.
  std::string sourceIp = clientIpPort.substr(0, clientIpPort.rfind(':'));
  if (sourceIp.size() > 2 && sourceIp.front() == '[') sourceIp = sourceIp.substr(1, sourceIp.size() - 2);
  snapshot::Prefix host;  // a bare address parses as a host prefix
  const snapshot::Vpc* vpc = snapshot::Prefix::parse(sourceIp, host) ? snap.sourceVpc(host.network) : nullptr;
  const snapshot::ServiceNetwork* network = vpc ? vpc->networkFor(service) : nullptr;
  std::string denial;
  if (!RequestAuthorizer::forThisThread().authorizeConnect({snap, service, network, vpc, listener.port, sourceIp},
                                                            denial)) {
    logInfo("proxy: passthrough for ", service.id, " from ", clientIpPort, " denied: ", denial);
    ::close(clientFd);
    return false;
  }
  // Only the default action, forwarding to TCP target groups by weight.
  const snapshot::Action& action = listener.defaultAction;
  const snapshot::WeightedTargetGroup* weighted =
      action.kind == snapshot::Action::Kind::Forward ? router.pickTargetGroup(action) : nullptr;
  const snapshot::Target* target =
      weighted && weighted->group ? router.pickTarget(*weighted->group) : nullptr;
  bool connected = false;
  int fd = target ? connectNonBlocking(target->socketAddress, connected) : -1;
  if (fd < 0) {
    logInfo("proxy: passthrough for ", service.id, " from ", clientIpPort, ": no target to connect to");
    ::close(clientFd);
    return false;
  }
  auto splice = std::make_shared<Splice>(loop);
  splice->createdAt = splice->lastActive = loop.nowMillis();
  splice->lifetimeMs = snap.connectionLifetimeMs;
  splice->idleMs = int64_t{service.idleTimeoutSeconds} * 1000;
  splice->description = clientIpPort + " → " + target->ipPort;
  splice->client = new SpliceEnd(splice, clientFd, true);
  splice->target = new SpliceEnd(splice, fd, connected);
  splice->target->out_ = std::move(firstBytes);
  loop.adopt(splice->client, EPOLLIN);
  loop.adopt(splice->target, EPOLLIN | EPOLLOUT);
  return true;
}

}  // namespace trellis::proxy
