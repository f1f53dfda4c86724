# Install rules and the Debian package (cpack -G DEB in the build directory; scripts/package.sh
# builds, lints with lintian, installs and checks it).
include(GNUInstallDirs)
install(TARGETS xsktun RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(FILES ${CMAKE_SOURCE_DIR}/packaging/systemd/xsktun@.service DESTINATION lib/systemd/system)
install(FILES ${CMAKE_SOURCE_DIR}/packaging/systemd/wg-quick@.service.d/xsktun.conf
        DESTINATION lib/systemd/system/wg-quick@.service.d)
# Man page and Debian's changelog, compressed as Debian policy wants (gzip -9n: no timestamp).
set(XSKTUN_GZ ${CMAKE_BINARY_DIR}/packaging)
add_custom_command(OUTPUT ${XSKTUN_GZ}/xsktun.8.gz ${XSKTUN_GZ}/changelog.gz
  COMMAND ${CMAKE_COMMAND} -E make_directory ${XSKTUN_GZ}
  COMMAND sh -c "gzip -9nc \"$0\" > \"$1\"" ${CMAKE_SOURCE_DIR}/doc/xsktun.8 ${XSKTUN_GZ}/xsktun.8.gz
  COMMAND sh -c "gzip -9nc \"$0\" > \"$1\"" ${CMAKE_SOURCE_DIR}/packaging/changelog ${XSKTUN_GZ}/changelog.gz
  DEPENDS ${CMAKE_SOURCE_DIR}/doc/xsktun.8 ${CMAKE_SOURCE_DIR}/packaging/changelog
  VERBATIM)
add_custom_target(xsktun_docs ALL DEPENDS ${XSKTUN_GZ}/xsktun.8.gz ${XSKTUN_GZ}/changelog.gz)
install(FILES ${XSKTUN_GZ}/xsktun.8.gz DESTINATION ${CMAKE_INSTALL_MANDIR}/man8)
install(FILES ${CMAKE_SOURCE_DIR}/packaging/copyright DESTINATION ${CMAKE_INSTALL_DOCDIR})
install(FILES ${XSKTUN_GZ}/changelog.gz DESTINATION ${CMAKE_INSTALL_DOCDIR} RENAME changelog.gz)
install(FILES ${CMAKE_SOURCE_DIR}/README.md DESTINATION ${CMAKE_INSTALL_DOCDIR})

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME xsktun)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)
set(CPACK_PACKAGE_CONTACT "xsktun developers <xsktun@example.org>")
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)  # runtime libraries from the binary (dpkg-shlibdeps)
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "wireguard-tools")
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "bpftool, xdp-tools")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "WireGuard-compatible VPN data plane on XDP and AF_XDP")
set(CPACK_PACKAGE_DESCRIPTION "xsktun runs WireGuard tunnels that standard peers talk to unmodified.
Its data plane moves packets through AF_XDP sockets fed by an XDP program on
the underlay NIC, or through UDP sockets with GSO/GRO batching. It is
configured with wg(8) or wg-quick(8) and runs as the systemd unit
xsktun@IFNAME.service.")
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
include(CPack)
