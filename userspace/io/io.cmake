# The real batched packet I/O (include/xsktun/io/), included from userspace/cmake.inc. The
# in-memory fakes are test support (tests/support/), not part of the daemon.
add_library(xsktun_iolib STATIC
  ${CMAKE_SOURCE_DIR}/userspace/io/tun.cpp
  ${CMAKE_SOURCE_DIR}/userspace/io/offload.cpp
  ${CMAKE_SOURCE_DIR}/userspace/io/udp_socket.cpp
  ${CMAKE_SOURCE_DIR}/userspace/io/udp_group.cpp)
target_link_libraries(xsktun_iolib PUBLIC xsktun_core)
