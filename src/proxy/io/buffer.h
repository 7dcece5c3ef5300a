// Socket buffers and the sizes every connection of the data plane reads and writes in.
#pragma once
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <string>

namespace trellis::proxy {

constexpr size_t kReadChunk = 64 * 1024;   // one read(); also what a codec is fed at a time
constexpr size_t kHighWater = 256 * 1024;  // stop reading the other side above this much unsent data
constexpr size_t kLowWater = 64 * 1024;    // ... and resume below this

// Bytes appended at the tail and consumed from the front, without moving the rest on every consume.
class Buffer {
 public:
  size_t size() const { return data_.size() - offset_; }
  bool empty() const { return size() == 0; }
  const char* data() const { return data_.data() + offset_; }
  std::string_view view() const { return {data(), size()}; }
  std::string& tail() { return data_; }  // append here
  void consume(size_t n) {
    offset_ += n;
    if (offset_ == data_.size()) {
      data_.clear();
      offset_ = 0;
    } else if (offset_ >= kReadChunk && offset_ * 2 >= data_.size()) {
      data_.erase(0, offset_);
      offset_ = 0;
    }
  }
  void clear() {
    data_.clear();
    offset_ = 0;
  }

 private:
  std::string data_;
  size_t offset_ = 0;
};

// Reads once into `buffer`; returns bytes read, 0 on EOF, -1 on EAGAIN, -2 on error.
inline ssize_t readInto(int fd, Buffer& buffer) {
  // Through a per-thread scratch area: growing the string by kReadChunk first would zero 64 KiB per
  // read (the profile's top item), while copying what arrived costs only its size.
  static thread_local char scratch[kReadChunk];
  ssize_t n = ::read(fd, scratch, kReadChunk);
  if (n > 0) buffer.tail().append(scratch, static_cast<size_t>(n));
  if (n >= 0) return n;
  return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? -1 : -2;
}

// Writes as much as the socket takes; false on a hard error.
inline bool writeFrom(int fd, Buffer& buffer, uint64_t* counter = nullptr) {
  while (!buffer.empty()) {
    ssize_t n = ::send(fd, buffer.data(), buffer.size(), MSG_NOSIGNAL);
    if (n > 0) {
      buffer.consume(static_cast<size_t>(n));
      if (counter) *counter += static_cast<uint64_t>(n);
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;
    if (n < 0 && errno == EINTR) continue;
    return false;
  }
  return true;
}

}  // namespace trellis::proxy
