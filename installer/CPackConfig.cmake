# Packaging: `cpack -G DEB` (or TGZ) from the build folder. .ci/package-check.sh builds, lints, installs and
# removes the .deb. Files installed: app/ (the binary), resources/ (man page, systemd unit, desktop integration).
set(CPACK_PACKAGE_NAME "keyrelay")
set(CPACK_PACKAGE_VENDOR "KeyRelay")
set(CPACK_PACKAGE_CONTACT "KeyRelay developers <dev@keyrelay.invalid>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "${PROJECT_DESCRIPTION}")
set(CPACK_GENERATOR "DEB;TGZ")

set(CPACK_DEBIAN_PACKAGE_MAINTAINER "${CPACK_PACKAGE_CONTACT}")
set(CPACK_DEBIAN_PACKAGE_RELEASE 1) # Debian revision; must match installer/debian/changelog
set(CPACK_DEBIAN_PACKAGE_SECTION "net")
set(CPACK_DEBIAN_PACKAGE_PRIORITY "optional")
set(CPACK_DEBIAN_PACKAGE_HOMEPAGE "${PROJECT_HOMEPAGE_URL}")
# The extended description (the synopsis line is CPACK_PACKAGE_DESCRIPTION_SUMMARY); "." is an empty line.
set(CPACK_DEBIAN_PACKAGE_DESCRIPTION "KeyRelay is a local proxy for OpenAI-compatible APIs. Chat clients and SDKs
(BetterChatGPT, NextChat, ChatBox, Open WebUI, the openai libraries, curl) are
pointed at http://127.0.0.1:9000/v1 and KeyRelay forwards every request to the
chosen upstream with the user's own API keys: rotated round-robin, skipped when
one fails, never shown to the client nor written whole to a log. Streamed
answers arrive chunk by chunk, with no total time limit.
.
The package contains the tray application (keys, live request log, settings)
and a headless mode with a systemd user unit for servers, which share one
settings file and key store.")
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
# Loaded at run time, so shlibdeps cannot see them: the Qt platform plugins (tray app), the SQLite driver
# plugin (usage statistics) and the libsecret that QtKeychain dlopen()s (key store). libqt6keychain1 itself is
# linked, so shlibdeps adds it.
set(CPACK_DEBIAN_PACKAGE_DEPENDS "qt6-qpa-plugins, libqt6sql6-sqlite, libsecret-1-0")
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
# Stripped binaries. No -dbgsym package: CPack 3.25's (CPACK_DEBIAN_DEBUGINFO_PACKAGE) lists absolute build
# paths in its md5sums and has no copyright or changelog (three lintian errors); the unstripped binary stays in
# the build folder.
set(CPACK_STRIP_FILES ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
include(CPack)
