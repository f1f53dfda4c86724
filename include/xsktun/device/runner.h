// The daemon's threads around a Device: TUN reader, UDP receiver, handshake worker, timers.
// Each loop reuses preallocated buffers; nothing is allocated per packet on the data path.
#pragma once

#include <atomic>
#include <functional>
#include <thread>
#include <vector>

#include "xsktun/device/device.h"

namespace xsktun::device {

class Runner {
 public:
  Runner(Device& dev, io::TunIo& tun, io::UdpIo& udp);
  ~Runner();
  // An extra receive side (one per AF_XDP queue): recv(bufs, timeout_ms) fills bufs and returns
  // a count, 0 on timeout/wake, or -errno; timeout 0 must not block. Its datagrams go to
  // Device::process_udp. With a ready_fd (readable while recv has something) the single I/O
  // thread serves it too; without one it gets a thread of its own. Call before start().
  using RecvFn = std::function<int(std::span<io::PacketBuf>, int timeout_ms)>;
  void add_receiver(RecvFn recv, int ready_fd = -1);
  // Serve the TUN and the UDP side (and the receivers) from one thread, polling all, instead of
  // a thread each. One thread saves the wakeups between them: on a host with 2 CPUs a TCP stream's ACKs,
  // written and read back by the same thread, cost no thread switch (README, Design). A thread
  // each runs both directions in parallel on bigger hosts. Needs ready_fd() on both sides and
  // on every receiver, else a thread each. Call before start().
  void set_single_io_thread(bool on) { want_single_io_ = on; }
  // Whether start() chose one thread for both sides.
  bool single_io_thread() const { return single_io_; }
  void start();
  // Stops and joins every thread (idempotent).
  void stop();
  // Set when a loop hit a fatal I/O error (e.g. the TUN was deleted): the daemon should exit.
  bool failed() const { return failed_.load(); }
  void set_on_failure(std::function<void()> f) { on_failure_ = std::move(f); }

  static constexpr size_t kBatch = 64;

 private:
  void tun_loop();
  void udp_loop();
  void io_loop();  // both sides, one thread
  void receiver_loop(size_t i);
  void handshake_loop();
  void timer_loop();
  void fail(const char* what, int err);
  // True if `n` (a count or -errno) is no error; else fail()s (unless stopping) and is false.
  bool check(int n, const char* what);

  Device& dev_;
  io::TunIo& tun_;
  io::UdpIo& udp_;
  std::atomic<bool> running_{false};
  std::atomic<bool> failed_{false};
  std::function<void()> on_failure_;
  std::vector<std::thread> threads_;
  struct Receiver {
    RecvFn recv;
    int ready_fd;
    std::vector<io::PacketBuf> bufs;  // its own: recv may keep pointers to them until the next call
  };
  // A batch from receiver r handed to the device: the count or -errno.
  int receiver_batch(Receiver& r, int timeout_ms);
  std::vector<Receiver> receivers_;
  bool want_single_io_ = false;
  bool single_io_ = false;
};

}  // namespace xsktun::device
