// Both data-path AEAD backends give identical bytes, open each other's output, and reject
// tampering. libsodium's own AEAD is pinned by the RFC 8439 vectors in crypto_test.cpp; the
// OpenSSL construction is pinned to libsodium here (and in fuzz_aead).
#include "xsktun/protocol/data_aead.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <random>
#include <vector>

#include "xsktun/protocol/crypto.h"

namespace xsktun::proto::aead {
namespace {

constexpr Backend kBoth[] = {Backend::kLibsodium, Backend::kOpenssl};

TEST(DataAead, OpensslBackendIsAvailableHere) {
  // Otherwise every "both backends" test below would compare libsodium with itself.
  EXPECT_TRUE(openssl_available());
}

TEST(DataAead, BackendsAgreeByteForByteAndInterOperate) {
  crypto::init();
  std::mt19937 rng(5);
  uint8_t key[32];
  for (auto& k : key) k = static_cast<uint8_t>(rng());
  for (size_t len :
       {0u, 1u, 15u, 16u, 17u, 63u, 64u, 65u, 255u, 1420u, 1440u, 9000u, 65535u, 65536u, 65537u}) {
    std::vector<uint8_t> plain(len);
    for (auto& b : plain) b = static_cast<uint8_t>(rng());
    uint64_t counter = (uint64_t{rng()} << 32) | rng();
    std::vector<uint8_t> a(len + 16), b(len + 16);
    seal_with(Backend::kLibsodium, a.data(), plain.data(), len, counter, key);
    seal_with(Backend::kOpenssl, b.data(), plain.data(), len, counter, key);
    ASSERT_EQ(a, b) << "len " << len;
    for (Backend be : kBoth) {
      std::vector<uint8_t> out(len);
      ASSERT_TRUE(open_with(be, out.data(), a.data(), a.size(), counter, key)) << name(be) << " " << len;
      EXPECT_EQ(out, plain);
      // In place.
      std::vector<uint8_t> buf = plain;
      buf.resize(len + 16);
      seal_with(be, buf.data(), buf.data(), len, counter, key);
      EXPECT_EQ(buf, a);
      ASSERT_TRUE(open_with(be, buf.data(), buf.data(), buf.size(), counter, key));
      EXPECT_TRUE(std::equal(plain.begin(), plain.end(), buf.begin()));
    }
  }
}

TEST(DataAead, EveryBackendRejectsTamperingWrongCounterAndShortInput) {
  uint8_t key[32] = {1, 2, 3};
  uint8_t plain[40] = {9};
  uint8_t sealed[56];
  for (Backend be : kBoth) {
    seal_with(be, sealed, plain, sizeof plain, 7, key);
    uint8_t out[56];
    for (size_t i = 0; i < sizeof sealed; ++i) {
      sealed[i] ^= 0x40;
      EXPECT_FALSE(open_with(be, out, sealed, sizeof sealed, 7, key)) << name(be) << " byte " << i;
      sealed[i] ^= 0x40;
    }
    EXPECT_FALSE(open_with(be, out, sealed, sizeof sealed, 8, key)) << name(be);
    EXPECT_TRUE(open_with(be, out, sealed, sizeof sealed, 7, key)) << name(be);
    for (size_t n = 0; n < 16; ++n) EXPECT_FALSE(open_with(be, out, sealed, n, 7, key)) << name(be);
  }
}

TEST(DataAead, BackendSwitchApplies) {
  Backend before = backend();
  set_backend(Backend::kLibsodium);
  EXPECT_EQ(backend(), Backend::kLibsodium);
  EXPECT_EQ(effective_backend(), Backend::kLibsodium);
  set_backend(Backend::kOpenssl);
  EXPECT_EQ(backend(), Backend::kOpenssl);
  EXPECT_EQ(effective_backend(), Backend::kOpenssl);  // available here (test above)
  set_backend(before);
}

// OpenSSL keeps the last key's schedule per thread: alternating keys must never reuse a stale one.
TEST(DataAead, AlternatingKeysNeverReuseAStaleKeySchedule) {
  uint8_t k1[32] = {1}, k2[32] = {2}, in[600] = {9}, a[616], b[616], out[600];
  for (int round = 0; round < 3; ++round) {
    for (const uint8_t* k : {k1, k2, k1, k1, k2}) {
      seal_with(Backend::kOpenssl, a, in, sizeof in, 3, k);
      seal_with(Backend::kLibsodium, b, in, sizeof in, 3, k);
      ASSERT_EQ(std::memcmp(a, b, sizeof a), 0);
      EXPECT_TRUE(open_with(Backend::kOpenssl, out, a, sizeof a, 3, k));
      EXPECT_FALSE(open_with(Backend::kOpenssl, out, a, sizeof a, 3, k == k1 ? k2 : k1));
    }
  }
}

// The OpenSSL backend composes RFC 8439 2.8 itself (one keystream call over block-rounded
// scratch): every length up to past the MTU crosses each block and pad16 boundary, so any slip
// in the key block, the slack or the Poly1305 trailer shows up as a byte or tag mismatch.
TEST(DataAead, OpensslConstructionMatchesLibsodiumAtEveryLength) {
  crypto::init();
  uint8_t key[32];
  for (size_t i = 0; i < sizeof key; ++i) key[i] = static_cast<uint8_t>(0xa0 + i);
  std::vector<uint8_t> plain(2100), a(2116), b(2116), out(2100);
  for (size_t i = 0; i < plain.size(); ++i) plain[i] = static_cast<uint8_t>(i * 31 + 7);
  for (size_t len = 0; len <= 2100; ++len) {
    uint64_t counter = len * 0x9e3779b97f4a7c15ULL;
    seal_with(Backend::kLibsodium, a.data(), plain.data(), len, counter, key);
    seal_with(Backend::kOpenssl, b.data(), plain.data(), len, counter, key);
    ASSERT_EQ(std::memcmp(a.data(), b.data(), len + 16), 0) << "len " << len;
    ASSERT_TRUE(open_with(Backend::kOpenssl, out.data(), a.data(), len + 16, counter, key)) << len;
    ASSERT_EQ(std::memcmp(out.data(), plain.data(), len), 0) << "len " << len;
    a[len / 2] ^= 0x01;  // a ciphertext byte, or the tag when len is 0
    ASSERT_FALSE(open_with(Backend::kOpenssl, out.data(), a.data(), len + 16, counter, key)) << len;
  }
}

// The OpenSSL backend hands a message to libsodium only on a provider failure or above 64 KiB,
// and counts it: without this, the agreement tests above would pass even if libsodium had
// quietly served every length (seal_with/open_with fall back with the same bytes).
TEST(DataAead, OpensslServesEverythingUpTo64KiBAndCountsWhatItHandsOn) {
  uint8_t key[32] = {9};
  std::vector<uint8_t> in(65537, 3), sealed(65537 + 16), out(65537);
  uint64_t before = openssl_fallbacks();
  for (size_t len : {0u, 1u, 1420u, 65535u, 65536u}) {
    seal_with(Backend::kOpenssl, sealed.data(), in.data(), len, 4, key);
    ASSERT_TRUE(open_with(Backend::kOpenssl, out.data(), sealed.data(), len + 16, 4, key)) << len;
    sealed[0] ^= 1;
    EXPECT_FALSE(open_with(Backend::kOpenssl, out.data(), sealed.data(), len + 16, 4, key)) << len;
  }
  EXPECT_EQ(openssl_fallbacks(), before);
  seal_with(Backend::kOpenssl, sealed.data(), in.data(), 65537, 4, key);
  EXPECT_TRUE(open_with(Backend::kOpenssl, out.data(), sealed.data(), sealed.size(), 4, key));
  EXPECT_EQ(openssl_fallbacks(), before + 2);
}

// A worker wipes its context's key before it blocks; the next packet loads the key again.
TEST(DataAead, ForgettingTheThreadKeyKeepsLaterPacketsRight) {
  uint8_t key[32] = {5}, in[600] = {1}, a[616], b[616], out[600];
  forget_thread_key();  // harmless before any use and when repeated
  for (int i = 0; i < 3; ++i) {
    seal_with(Backend::kOpenssl, a, in, sizeof in, 8, key);
    forget_thread_key();
    forget_thread_key();
    seal_with(Backend::kLibsodium, b, in, sizeof in, 8, key);
    ASSERT_EQ(std::memcmp(a, b, sizeof a), 0);
    forget_thread_key();
    EXPECT_TRUE(open_with(Backend::kOpenssl, out, a, sizeof a, 8, key));
  }
}

// A refused message leaves the output as it was (the tag is checked before anything is
// written), so unauthenticated plaintext never reaches a buffer, in place or not.
TEST(DataAead, OpensslRefusalLeavesTheBufferUntouched) {
  uint8_t key[32] = {4}, plain[1424] = {1, 2, 3};
  std::vector<uint8_t> sealed(sizeof plain + 16);
  seal_with(Backend::kOpenssl, sealed.data(), plain, sizeof plain, 11, key);
  sealed[100] ^= 0x80;
  std::vector<uint8_t> before = sealed;
  EXPECT_FALSE(open_with(Backend::kOpenssl, sealed.data(), sealed.data(), sealed.size(), 11, key));
  EXPECT_EQ(sealed, before);
}

}  // namespace
}  // namespace xsktun::proto::aead
