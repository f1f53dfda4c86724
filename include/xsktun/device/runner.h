// The daemon's threads around a Device: N data-path workers, a handshake worker, timers.
// A worker owns a Lane (device.h): one TUN queue, one UDP side (a socket of an SO_REUSEPORT
// group, or an AF_XDP queue) and its counters; it reads both, runs the device's data path and
// writes to its own TUN queue and UDP side. Workers share no buffers and no I/O object, so they
// meet only where the protocol makes them: a peer's lock once per run of packets, a keypair's
// send counter and replay window once per run. Each loop reuses preallocated buffers; nothing
// is allocated per packet on the data path.
#pragma once

#include <atomic>
#include <functional>
#include <thread>
#include <vector>

#include "xsktun/device/device.h"

namespace xsktun::device {

class Runner {
 public:
  explicit Runner(Device& dev);
  // One worker on tun and udp, counting into the device's own counters (tests).
  Runner(Device& dev, io::TunIo& tun, io::UdpIo& udp);
  ~Runner();
  // A worker on its own TUN queue and UDP side, with counters of its own (Device::add_lane_counters)
  // unless `counters` is given. Returns its index. Call before start().
  size_t add_worker(io::TunIo& tun, io::UdpIo& udp, Counters* counters = nullptr);
  size_t worker_count() const { return workers_.size(); }
  // An extra receive side of worker w (the kernel socket in XDP mode, AF_XDP queues beyond the
  // workers): its datagrams go to Device::process_udp through w's lane, and back to it with
  // delivered(). With a ready_fd() the worker's single I/O thread serves it too (try_recv_batch);
  // without one it gets a thread of its own (recv_batch, ended by wake()). Call before start().
  void add_receiver(size_t w, io::UdpIo& rx);
  // Serve each worker's TUN queue and UDP side (and receivers) from one thread, polling all,
  // instead of a thread each. One thread saves the wakeups between them: on a host with 2 CPUs a TCP stream's
  // ACKs, written and read back by the same thread, cost no thread switch (docs/design.md). A thread each
  // runs both directions in parallel on bigger hosts. Needs ready_fd() on both sides and on every receiver,
  // else a thread each. Call before start().
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
  // io_loop: how often (in turns) a busy worker also asks the sources that came back empty.
  static constexpr unsigned kSweepEvery = 16;
  struct BufferPool;  // runner.cpp

 private:
  struct Receiver {
    io::UdpIo* rx;
    // Its own buffers (a socket copies into them; an AF_XDP queue points them into its UMEM and
    // may keep pointers to them until the next call).
    std::shared_ptr<BufferPool> pool;
  };
  struct Worker {
    Lane lane;
    std::vector<Receiver> receivers;
  };
  void tun_loop(Worker& w);
  void udp_loop(Worker& w);
  void io_loop(Worker& w);  // both sides, one thread
  void receiver_loop(Worker& w, size_t i);
  void handshake_loop();
  void timer_loop();
  void fail(const char* what, int err);
  // True if `n` (a count or -errno) is no error; else fail()s (unless stopping) and is false.
  bool check(int n, const char* what);

  Device& dev_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::atomic<bool> running_{false};
  std::atomic<bool> failed_{false};
  std::function<void()> on_failure_;
  std::vector<std::thread> threads_;
  // A batch from receiver r handed to the device: the count or -errno.
  int receiver_batch(Worker& w, Receiver& r, bool wait);
  bool want_single_io_ = false;
  bool single_io_ = false;
};

}  // namespace xsktun::device
