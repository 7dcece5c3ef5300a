// A real 3-member etcd cluster for tests: /usr/bin/etcd on free loopback ports, data in a temporary
// directory, members killed (SIGKILL) and restarted at will. Throws std::runtime_error when etcd is missing or
// does not become healthy: the tests need it (scripts/setup.sh --test installs etcd-server).
#pragma once
#include <arpa/inet.h>
#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "store/etcd/etcd.grpc.pb.h"

namespace trellis::test {

class EtcdCluster {
 public:
  static constexpr const char* kEtcd = "/usr/bin/etcd";

  // With `tlsDir`, clients must speak TLS with a certificate from its ca.pem; the members present server.pem
  // (server.key). Peers and /health (on a separate port) stay plain.
  explicit EtcdCluster(int members = 3, std::string tlsDir = {}) : tlsDir_(std::move(tlsDir)) {
    if (access(kEtcd, X_OK) != 0)
      throw std::runtime_error(std::string(kEtcd) + " is missing: run scripts/setup.sh --test (etcd-server)");
    std::string tmpl = (std::filesystem::temp_directory_path() / "trellis-etcd-XXXXXX").string();
    if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
    root_ = tmpl;
    for (int i = 0; i < members; ++i)
      members_.push_back({"m" + std::to_string(i), freePort(), freePort(), freePort(), -1});
    for (size_t i = 0; i < members_.size(); ++i) start(i);
    waitHealthy();
  }
  ~EtcdCluster() {
    for (size_t i = 0; i < members_.size(); ++i) kill(i);
    std::error_code ec;
    std::filesystem::remove_all(root_, ec);
  }
  EtcdCluster(const EtcdCluster&) = delete;
  EtcdCluster& operator=(const EtcdCluster&) = delete;

  std::vector<std::string> endpoints() const {
    std::vector<std::string> out;
    for (const auto& m : members_) out.push_back("127.0.0.1:" + std::to_string(m.clientPort));
    return out;
  }
  size_t size() const { return members_.size(); }

  // The member that leads now, by asking each running one (plain clusters only); throws when none knows one.
  size_t leader() const {
    for (size_t i = 0; i < members_.size(); ++i) {
      if (members_[i].pid <= 0) continue;
      auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(members_[i].clientPort),
                                         grpc::InsecureChannelCredentials());
      auto maintenance = etcdserverpb::Maintenance::NewStub(channel);
      grpc::ClientContext context;
      context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
      etcdserverpb::StatusResponse status;
      if (maintenance->Status(&context, {}, &status).ok() && status.leader() != 0 &&
          status.leader() == status.header().member_id())
        return i;
    }
    throw std::runtime_error("no etcd member leads");
  }

  void kill(size_t i) {
    auto& m = members_[i];
    if (m.pid <= 0) return;
    ::kill(m.pid, SIGKILL);
    waitpid(m.pid, nullptr, 0);
    m.pid = -1;
  }

  // Restarts a killed member on its ports and data (a restart, not a new member).
  void start(size_t i) {
    auto& m = members_[i];
    if (m.pid > 0) return;
    std::string cluster;
    for (const auto& other : members_)
      cluster += (cluster.empty() ? "" : ",") + other.name + "=http://127.0.0.1:" + std::to_string(other.peerPort);
    std::string client = (tlsDir_.empty() ? "http://127.0.0.1:" : "https://127.0.0.1:") + std::to_string(m.clientPort);
    std::string peer = "http://127.0.0.1:" + std::to_string(m.peerPort);
    std::vector<std::string> args = {kEtcd,
                                     "--name=" + m.name,
                                     "--data-dir=" + root_ + "/" + m.name,
                                     "--listen-client-urls=" + client,
                                     "--advertise-client-urls=" + client,
                                     "--listen-peer-urls=" + peer,
                                     "--initial-advertise-peer-urls=" + peer,
                                     "--initial-cluster=" + cluster,
                                     "--initial-cluster-state=new",
                                     "--initial-cluster-token=" + root_,
                                     "--listen-metrics-urls=http://127.0.0.1:" + std::to_string(m.healthPort),
                                     "--logger=zap",
                                     "--log-outputs=stderr"};
    if (!tlsDir_.empty()) {
      args.push_back("--cert-file=" + tlsDir_ + "/server.pem");
      args.push_back("--key-file=" + tlsDir_ + "/server.key");
      args.push_back("--trusted-ca-file=" + tlsDir_ + "/ca.pem");
      args.push_back("--client-cert-auth");
    }
    std::string log = root_ + "/" + m.name + ".log";
    pid_t pid = fork();
    if (pid < 0) throw std::runtime_error("fork failed");
    if (pid == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);  // a crashed test leaves no etcd behind
      int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
      if (fd >= 0) {
        dup2(fd, STDOUT_FILENO);
        dup2(fd, STDERR_FILENO);
      }
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(kEtcd, argv.data());
      _exit(127);
    }
    m.pid = pid;
  }

  // Every running member answers /health with a leader, or throws after `timeout`.
  void waitHealthy(std::chrono::seconds timeout = std::chrono::seconds(30)) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (const auto& m : members_) {
      if (m.pid <= 0) continue;
      while (httpGet(m.healthPort, "/health").find("\"health\":\"true\"") == std::string::npos) {
        if (std::chrono::steady_clock::now() > deadline)
          throw std::runtime_error("etcd member " + m.name + " is not healthy; see " + root_ + "/" + m.name + ".log");
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
    }
  }

 private:
  struct Member {
    std::string name;
    int clientPort;
    int peerPort;
    int healthPort;
    pid_t pid;
  };

  // A port the kernel handed out and released: free unless someone takes it in between.
  static int freePort() {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof address;
    if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
        getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0)
      throw std::runtime_error("cannot find a free port");
    close(fd);
    return ntohs(address.sin_port);
  }

  static std::string httpGet(int port, const std::string& path) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return {};
    timeval timeout{1, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(static_cast<uint16_t>(port));
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    std::string response;
    if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0) {
      std::string request = "GET " + path + " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
      if (write(fd, request.data(), request.size()) == static_cast<ssize_t>(request.size())) {
        char buffer[1024];
        ssize_t n;
        while ((n = read(fd, buffer, sizeof buffer)) > 0) response.append(buffer, static_cast<size_t>(n));
      }
    }
    close(fd);
    return response;
  }

  std::string tlsDir_;
  std::string root_;
  std::vector<Member> members_;
};

}  // namespace trellis::test
