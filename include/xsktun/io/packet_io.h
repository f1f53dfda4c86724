// The small batched I/O interfaces the device runs on. Real implementations (TUN, UDP socket,
// later AF_XDP) and in-memory fakes implement them, so two full devices can run in one test
// process without root.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "xsktun/common/ip.h"

namespace xsktun::io {

// One packet buffer of a batch. `data` points at `cap` bytes owned by the caller; `len` is the
// payload length (set by the reader, read by the writer).
struct PacketBuf {
  uint8_t* data = nullptr;
  size_t len = 0;
  size_t cap = 0;
  Endpoint endpoint;  // UDP: source on receive, destination on send; unused for TUN
  // Set by the device on receive when the datagram authenticated as a data message; handed back
  // to the receiving UdpIo through delivered(). The AF_XDP receiver learns the return path (MACs,
  // local address) only from such frames.
  bool authenticated = false;
};

// The inner side: a TUN device (or a fake). Whole IP packets, no link-layer header.
class TunIo {
 public:
  virtual ~TunIo() = default;
  // Reads up to bufs.size() packets; blocks until at least one is ready or wake() is called.
  // Returns the number read (>= 0), or -errno on a fatal error.
  virtual int read_batch(std::span<PacketBuf> bufs) = 0;
  // Writes packets; returns the number written or -errno. A packet the kernel rejects is skipped.
  virtual int write_batch(std::span<PacketBuf> bufs) = 0;
  virtual size_t mtu() const = 0;
  // Makes a blocked read_batch return 0 (for shutdown).
  virtual void wake() = 0;
  // For a Runner that serves both sides from one thread: a descriptor that polls readable when
  // new input is waiting (or after wake()), or -1 if this implementation has none (the Runner
  // then gives each side its own thread). Input already taken in (segments of a super-packet
  // not yet handed out) does not make it readable: call try_read_batch until it returns 0
  // before polling. Implementations that return a descriptor also override try_read_batch.
  virtual int ready_fd() const { return -1; }
  // read_batch without the wait: 0 at once when nothing is ready.
  virtual int try_read_batch(std::span<PacketBuf> bufs) { return read_batch(bufs); }
};

// The outer side: UDP datagrams to and from peers' endpoints.
class UdpIo {
 public:
  virtual ~UdpIo() = default;
  // Receives up to bufs.size() datagrams with their source endpoints; blocks like TunIo.
  // An implementation may point a buffer's `data` (and `cap`) at writable memory of its own
  // instead of copying into the caller's (a GRO super-datagram's segment, an AF_XDP frame):
  // the caller resets its buffers before each call and uses them only until the next one.
  virtual int recv_batch(std::span<PacketBuf> bufs) = 0;
  // Sends each buffer to its endpoint; returns how many were sent or -errno.
  virtual int send_batch(std::span<PacketBuf> bufs) = 0;
  // The bound port (host order). Rebinding to `port` (0 = any) for live listen-port changes.
  virtual uint16_t port() const = 0;
  virtual int rebind(uint16_t port) = 0;
  virtual void set_fwmark(uint32_t mark) = 0;
  virtual void wake() = 0;
  // As TunIo::ready_fd / try_read_batch. The descriptor stays the same across rebind().
  virtual int ready_fd() const { return -1; }
  virtual int try_recv_batch(std::span<PacketBuf> bufs) { return recv_batch(bufs); }
  // After the device processed a batch this side received (the same buffers, in order, with
  // `authenticated` set on those that proved their sender): what the I/O may learn from it.
  // Called before the next receive. Default: nothing.
  virtual void delivered(std::span<const PacketBuf> bufs) { (void)bufs; }
  // Transmit memory lent for the next sends (XDP mode: UMEM frames, so a packet read from the
  // TUN into one is sealed and transmitted where it lies, with no copy): points up to
  // bufs.size() buffers at it, each with `headroom` bytes before `data` for the caller and
  // room for the outer headers before those; returns how many. Lent memory not passed to
  // send_batch comes back with reclaim_lent(), which the borrower calls when done with the
  // batch; until then nothing else uses it. Default: nothing to lend.
  virtual size_t lend(std::span<PacketBuf> bufs, size_t headroom) {
    (void)bufs;
    (void)headroom;
    return 0;
  }
  virtual void reclaim_lent() {}
};

}  // namespace xsktun::io
