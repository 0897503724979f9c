// Entry point: `keyrelay --headless ...` runs the proxy alone; plain `keyrelay` starts the tray app.
#include "descriptorlimit.h"
#include "headless.h"

#include <QCoreApplication>
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
    return keyrelay::runTrayApp(argc, argv, &setIdentity);
#else
    QCoreApplication app(argc, argv);
    setIdentity();
    std::fputs("keyrelay: this build has no GUI; run `keyrelay --headless` (see --help)\n", stderr);
    return 2;
#endif
}
