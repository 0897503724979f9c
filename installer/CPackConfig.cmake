# Packaging: `cpack -G DEB` from the build folder.
set(CPACK_PACKAGE_NAME "keyrelay")
set(CPACK_PACKAGE_VENDOR "KeyRelay")
set(CPACK_PACKAGE_CONTACT "KeyRelay developers <dev@keyrelay.invalid>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "${PROJECT_DESCRIPTION}")
set(CPACK_GENERATOR "DEB;TGZ")
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_SECTION "net")
# Loaded at run time, so shlibdeps cannot see them.
set(CPACK_DEBIAN_PACKAGE_DEPENDS "qt6-qpa-plugins, libqt6sql6-sqlite")
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
include(CPack)
