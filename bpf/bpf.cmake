# The XDP program: bpf/xsktun.bpf.c -> ${CMAKE_BINARY_DIR}/bpf/xsktun.bpf.o -> xsktun.skel.h, and
# the userspace wrapper library `xsktun_bpf` (userspace/xdp/xdp_object.cpp) that opens the skeleton.
# Included from the top-level CMakeLists.txt after the xsktun_core target exists.

find_program(XSKTUN_CLANG NAMES clang clang-14 REQUIRED)
find_program(XSKTUN_BPFTOOL NAMES bpftool PATHS /usr/sbin /sbin REQUIRED)

# BPF programs include UAPI headers (<linux/bpf.h> pulls in <asm/types.h>), which Debian keeps
# under the multiarch directory that the host compiler searches but clang -target bpf does not.
if(CMAKE_LIBRARY_ARCHITECTURE)
  set(XSKTUN_MULTIARCH ${CMAKE_LIBRARY_ARCHITECTURE})
else()
  execute_process(COMMAND ${CMAKE_C_COMPILER} -print-multiarch
    OUTPUT_VARIABLE XSKTUN_MULTIARCH OUTPUT_STRIP_TRAILING_WHITESPACE)
endif()
if(CMAKE_SYSTEM_PROCESSOR MATCHES "x86_64|amd64|AMD64")
  set(XSKTUN_BPF_ARCH x86)
elseif(CMAKE_SYSTEM_PROCESSOR MATCHES "aarch64|arm64")
  set(XSKTUN_BPF_ARCH arm64)
else()
  set(XSKTUN_BPF_ARCH ${CMAKE_SYSTEM_PROCESSOR})
endif()

set(XSKTUN_BPF_OUT ${CMAKE_BINARY_DIR}/bpf)
set(XSKTUN_BPF_SRC ${CMAKE_SOURCE_DIR}/bpf/xsktun.bpf.c)
set(XSKTUN_BPF_SHARED ${CMAKE_SOURCE_DIR}/bpf/xsktun_shared.h)
set(XSKTUN_BPF_OBJ ${XSKTUN_BPF_OUT}/xsktun.bpf.o)
set(XSKTUN_BPF_SKEL ${XSKTUN_BPF_OUT}/xsktun.skel.h)

add_custom_command(
  OUTPUT ${XSKTUN_BPF_OBJ}
  COMMAND ${CMAKE_COMMAND} -E make_directory ${XSKTUN_BPF_OUT}
  COMMAND ${XSKTUN_CLANG} -target bpf -O2 -g -Wall -Werror -D__TARGET_ARCH_${XSKTUN_BPF_ARCH}
          -I/usr/include/${XSKTUN_MULTIARCH} -I${CMAKE_SOURCE_DIR}/bpf
          -c ${XSKTUN_BPF_SRC} -o ${XSKTUN_BPF_OBJ}
  DEPENDS ${XSKTUN_BPF_SRC} ${XSKTUN_BPF_SHARED} ${CMAKE_SOURCE_DIR}/bpf/xsktun_parse.h
  COMMENT "Compiling BPF object xsktun.bpf.o"
  VERBATIM)

# Write to a temporary file first so a failing bpftool never leaves a truncated header behind.
add_custom_command(
  OUTPUT ${XSKTUN_BPF_SKEL}
  COMMAND sh -c
          "'${XSKTUN_BPFTOOL}' gen skeleton '${XSKTUN_BPF_OBJ}' name xsktun_bpf > '${XSKTUN_BPF_SKEL}.tmp'"
  COMMAND ${CMAKE_COMMAND} -E rename ${XSKTUN_BPF_SKEL}.tmp ${XSKTUN_BPF_SKEL}
  DEPENDS ${XSKTUN_BPF_OBJ}
  COMMENT "Generating BPF skeleton xsktun.skel.h"
  VERBATIM)

add_custom_target(xsktun_bpf_skel DEPENDS ${XSKTUN_BPF_OBJ} ${XSKTUN_BPF_SKEL})

add_library(xsktun_bpf STATIC ${CMAKE_SOURCE_DIR}/userspace/xdp/xdp_object.cpp ${XSKTUN_BPF_SKEL})
add_dependencies(xsktun_bpf xsktun_bpf_skel)
target_include_directories(xsktun_bpf PUBLIC ${XSKTUN_BPF_OUT} ${CMAKE_SOURCE_DIR}/bpf)
target_link_libraries(xsktun_bpf PUBLIC PkgConfig::LIBBPF PkgConfig::LIBXDP xsktun_core)

# The unit-test loop in the top-level CMakeLists.txt runs after this file and links only the
# common libraries; link the BPF wrapper into its test once every target exists.
function(xsktun_bpf_link_tests)
  if(TARGET xdp_prog_test)
    target_link_libraries(xdp_prog_test PRIVATE xsktun_bpf)
  endif()
endfunction()
cmake_language(DEFER DIRECTORY ${CMAKE_SOURCE_DIR} CALL xsktun_bpf_link_tests)
