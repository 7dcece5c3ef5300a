// The event loop on its own, with a pipe for a descriptor: what runs when, and what retiring does.
#include <gtest/gtest.h>

#include <sys/epoll.h>
#include <unistd.h>

#include <string>
#include <thread>
#include <vector>

#include "proxy/server/event_loop.h"

namespace trellis::proxy {
namespace {

// The read end of a pipe, recording what happens to it in `log`.
class PipeEnd : public Pollable {
 public:
  PipeEnd(int fd, std::vector<std::string>& log) : log_(log) { fd_ = fd; }
  ~PipeEnd() override { log_.push_back("freed"); }
  void onEvents(uint32_t events) override {
    char c;
    if ((events & EPOLLIN) && ::read(fd_, &c, 1) == 1) log_.push_back(std::string("read ") + c);
  }
  void onEndOfTurn() override { log_.push_back("end of turn"); }
  void onRetire() override { log_.push_back(fd_ >= 0 ? "retired, open" : "retired, closed"); }

 private:
  std::vector<std::string>& log_;
};

TEST(EventLoop, EventsThenDeferredWorkThenFreeing) {
  EventLoop loop;
  std::vector<std::string> log;
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  auto* end = new PipeEnd(fds[0], log);
  ASSERT_TRUE(loop.watch(end, EPOLLIN));
  ASSERT_EQ(write(fds[1], "x", 1), 1);

  loop.wait(1000);
  loop.dispatch();
  EXPECT_EQ(log, (std::vector<std::string>{"read x"}));

  loop.atEndOfTurn(end);
  loop.defer([&] {
    log.push_back("deferred");
    loop.defer([&] { log.push_back("deferred by deferred"); });  // the same turn's end runs it too
  });
  loop.runEndOfTurn();
  EXPECT_EQ(log, (std::vector<std::string>{"read x", "deferred", "end of turn", "deferred by deferred"}));

  log.clear();
  loop.retire(end);
  EXPECT_TRUE(end->dead());
  EXPECT_EQ(end->fd(), -1);  // closed at once
  loop.retire(end);          // twice is once
  EXPECT_EQ(log, (std::vector<std::string>{"retired, open"}));
  loop.freeRetired();
  EXPECT_EQ(log, (std::vector<std::string>{"retired, open", "freed"}));
  close(fds[1]);
}

TEST(EventLoop, PostedTasksWakeTheLoopFromAnotherThread) {
  EventLoop loop;
  bool ran = false;
  std::thread poster([&] { loop.post([&] { ran = true; }); });
  poster.join();
  loop.wait(5000);  // woken by the post, long before the timeout
  loop.dispatch();
  EXPECT_TRUE(ran);
}

}  // namespace
}  // namespace trellis::proxy
