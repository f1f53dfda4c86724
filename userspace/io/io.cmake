# The real and fake batched packet I/O (include/xsktun/io/), included from userspace/cmake.inc.
add_library(xsktun_iolib STATIC
  ${CMAKE_SOURCE_DIR}/userspace/io/tun.cpp
  ${CMAKE_SOURCE_DIR}/userspace/io/offload.cpp
  ${CMAKE_SOURCE_DIR}/userspace/io/udp_socket.cpp
  ${CMAKE_SOURCE_DIR}/userspace/io/udp_group.cpp
  ${CMAKE_SOURCE_DIR}/userspace/io/fakes.cpp)
target_link_libraries(xsktun_iolib PUBLIC xsktun_core)
