// A batch of caller-owned packet buffers for the real-I/O tests (io_real_test, udp_offload_test).
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <utility>
#include <vector>

#include "xsktun/io/packet_io.h"

namespace xsktun::io::test_util {

using Bytes = std::vector<uint8_t>;

struct Batch {
  explicit Batch(size_t n, size_t cap = 2048) : arena(n * cap), bufs(n), cap(cap) { reset(); }
  // Like the runner before every receive: recv_batch may have pointed buffers at the socket's
  // own memory (UdpIo contract).
  void reset() {
    for (size_t i = 0; i < bufs.size(); ++i) bufs[i] = PacketBuf{&arena[i * cap], 0, cap, {}};
  }
  bool owns(const uint8_t* p) const { return p >= arena.data() && p < arena.data() + arena.size(); }
  void set(size_t i, const Bytes& b, const Endpoint& to = {}) {
    std::copy(b.begin(), b.end(), bufs[i].data);
    bufs[i].len = b.size();
    bufs[i].endpoint = to;
  }
  Bytes get(size_t i) const { return Bytes(bufs[i].data, bufs[i].data + bufs[i].len); }
  std::vector<uint8_t> arena;
  std::vector<PacketBuf> bufs;
  size_t cap;
};

// Receives until `want` datagrams arrived (loopback queues them synchronously, but a batch may
// still come back in several calls), `batch` buffers per call.
template <typename Socket>
std::vector<std::pair<Endpoint, Bytes>> recv_n(Socket& s, size_t want, size_t batch = 64) {
  std::vector<std::pair<Endpoint, Bytes>> got;
  Batch in(batch);
  while (got.size() < want) {
    in.reset();
    int n = s.recv_batch(in.bufs);
    if (n <= 0) {
      ADD_FAILURE() << "recv_batch returned " << n;
      break;
    }
    for (int i = 0; i < n; ++i) got.emplace_back(in.bufs[i].endpoint, in.get(i));
  }
  return got;
}

}  // namespace xsktun::io::test_util
