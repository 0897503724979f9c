// Entry point: `keyrelay --headless ...` runs the proxy alone; plain `keyrelay` starts the tray app.
#include "descriptorlimit.h"
#include "headless.h"

#include <QByteArray>
#include <QCoreApplication>
#include <QList>

#include <cstdio>
#include <cstring>

#ifdef KEYRELAY_WITH_GUI
#include "trayapp.h"
#endif

namespace {
bool wantsHeadless(int argc, char **argv)
{
    for (int i = 1; i < argc; ++i) {
        const char *arg = argv[i];
        if (std::strcmp(arg, "--headless") == 0 || std::strcmp(arg, "-headless") == 0
            || std::strcmp(arg, "--help") == 0 || std::strcmp(arg, "-h") == 0
            || std::strcmp(arg, "--version") == 0 || std::strcmp(arg, "-v") == 0) {
            return true;
        }
    }
    return false;
}

#ifdef KEYRELAY_WITH_GUI
/// Whether the tray app can have a display. Without one, Qt aborts inside QApplication (exit 134) with a
/// message about platform plugins; this decides first, from what Qt itself would look at. An explicit
/// -platform argument or a platform other than xcb/wayland (offscreen, vnc, eglfs...) is left to Qt.
bool displayAvailable(int argc, char **argv)
{
    for (int i = 1; i < argc; ++i) {
        if (std::strcmp(argv[i], "-platform") == 0 || std::strcmp(argv[i], "--platform") == 0)
            return true;
    }
    const bool x11 = !qEnvironmentVariableIsEmpty("DISPLAY");
    const bool wayland = !qEnvironmentVariableIsEmpty("WAYLAND_DISPLAY");
    const QByteArray platforms = qgetenv("QT_QPA_PLATFORM");
    if (platforms.trimmed().isEmpty())
        return x11 || wayland;
    // "wayland;xcb" tries each in turn; "xcb:option=value" carries options.
    for (const QByteArray &entry : platforms.split(';')) {
        const QByteArray name = entry.split(':').constFirst().trimmed();
        if (name == "xcb") {
            if (x11)
                return true;
        } else if (name.startsWith("wayland")) {
            if (wayland)
                return true;
        } else if (!name.isEmpty()) {
            return true;
        }
    }
    return false;
}
#endif

void setIdentity()
{
    QCoreApplication::setOrganizationName(QStringLiteral("KeyRelay"));
    QCoreApplication::setApplicationName(QStringLiteral("KeyRelay"));
    QCoreApplication::setApplicationVersion(QStringLiteral(KEYRELAY_VERSION));
}
} // namespace

int main(int argc, char **argv)
{
    // Many concurrent streams need many descriptors: use what the hard limit allows (the proxy sizes
    // its connection budget from the result and logs it).
    keyrelay::DescriptorLimit::raiseSoftLimit();
    if (wantsHeadless(argc, argv)) {
        QCoreApplication app(argc, argv);
        setIdentity();
        return keyrelay::runHeadless(app);
    }
#ifdef KEYRELAY_WITH_GUI
    if (!displayAvailable(argc, argv)) {
        std::fputs(
            "keyrelay: no graphical display found (no usable DISPLAY or WAYLAND_DISPLAY), so the tray app "
            "cannot start; run `keyrelay --headless` for the proxy alone (see keyrelay --help)\n",
            stderr);
        return 1;
    }
    return keyrelay::runTrayApp(argc, argv, &setIdentity);
#else
    QCoreApplication app(argc, argv);
    setIdentity();
    std::fputs("keyrelay: this build has no GUI; run `keyrelay --headless` (see --help)\n", stderr);
    return 2;
#endif
}
