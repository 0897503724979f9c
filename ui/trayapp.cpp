#include "trayapp.h"

#include "logging.h"

#include "autostartmanager.h"
#include "icons.h"
#include "keypool.h"
#include "keyspage.h"
#include "mainwindow.h"
#include "noticebanner.h"
#include "providerkeys.h"
#include "proxycredentials.h"
#include "proxyservice.h"
#include "proxystack.h"
#include "settingsregistry.h"
#include "singleinstance.h"
#include "storagewarnings.h"
#include "trayicon.h"
#include "uilogging.h"
#include "usagestore.h"
#include "userconfig.h"
#include "userstores.h"

#include <QApplication>
#include <QClipboard>
#include <QLibraryInfo>
#include <QLocale>
#include <QMessageBox>
#include <QScopeGuard>
#include <QTextStream>
#include <QTranslator>

namespace keyrelay {

namespace {
void installTranslators(QApplication &app, QTranslator *own, QTranslator *qt)
{
    const QLocale locale = QLocale::system();
    if (own->load(locale, QStringLiteral("keyrelay"), QStringLiteral("_"), QStringLiteral(":/keyrelay/i18n")))
        app.installTranslator(own);
    if (qt->load(locale, QStringLiteral("qtbase"), QStringLiteral("_"),
                 QLibraryInfo::path(QLibraryInfo::TranslationsPath)))
        app.installTranslator(qt);
}

/// The lock is held by a KeyRelay without a window (`keyrelay --headless`, usually the systemd user service):
/// say so on stderr and, where someone can see it, in a dialog.
void reportServiceRunning(const QString &settingsFile, qint64 pid)
{
    const QString pidText = pid > 0 ? QStringLiteral(" (pid %1)").arg(pid) : QString();
    const QString message
        = QObject::tr("KeyRelay already runs in the background with the settings in %1%2, as "
                      "\"keyrelay --headless\" or the keyrelay service. Stop it first "
                      "(systemctl --user stop keyrelay), then start the tray app again.")
              .arg(settingsFile, pidText);
    QTextStream(stderr) << "keyrelay: " << message << Qt::endl;
    const QString platform = QGuiApplication::platformName();
    if (platform != QLatin1String("offscreen") && platform != QLatin1String("minimal"))
        QMessageBox::warning(nullptr, QObject::tr("KeyRelay"), message);
}
} // namespace

int runTrayApp(int argc, char **argv, void (*setIdentity)())
{
    QApplication app(argc, argv);
    if (setIdentity)
        setIdentity();
    QApplication::setWindowIcon(icons::appIcon());
    QApplication::setDesktopFileName(QStringLiteral("io.github.keyrelay.KeyRelay"));
    QTranslator ownTranslator;
    QTranslator qtTranslator;
    installTranslators(app, &ownTranslator, &qtTranslator);

    SettingsRegistry settings(userconfig::openUserSettings());

    SingleInstance instance(settings.fileName());
    if (!instance.claim()) {
        if (instance.otherInstanceAnswered())
            return 0; // the running tray app shows its window
        reportServiceRunning(settings.fileName(), instance.otherInstancePid());
        return 1;
    }

    // Keys and the proxy password: in the system keychain when one answers, else in owner-only files.
    UserStores stores = openUserStores(settings.fileName());
    qCInfo(lcUi).noquote() << stores.notice();
    for (const QString &message : std::as_const(stores.messages))
        qCInfo(lcUi).noquote() << message;
    // The settings file's own problems are listed in the window's notice banner, one line per ignored value.
    QStringList startupProblems = stores.problems;
    QList<ApiKey> mainKeys;
    {
        QString error;
        if (!stores.keys->load(&mainKeys, &error))
            startupProblems << error;
    }
    ProxyCredentials proxyCredentials(stores.secrets.get());
    {
        QString error;
        bool moved = false;
        if (!proxyCredentials.load(&error))
            startupProblems << error;
        else if (!proxyCredentials.migrate(&settings, &moved, &error))
            startupProblems << QStringLiteral(
                                   "the upstream proxy password could not be moved out of the settings "
                                   "file (%1); it stays there")
                                   .arg(error);
        else if (moved)
            qCInfo(lcUi).noquote() << "moved the upstream proxy password from the settings file to"
                                   << stores.secrets->location();
    }
    // The proxy's objects, as --headless builds them: the main pool serves "default", each other provider
    // has its own keys, stored like the main list (issue 17).
    ProxyStack::Parts parts;
    parts.mainKeys = mainKeys;
    parts.mainStore = stores.keys.get();
    parts.openProviderStore = [&stores](const QString &providerId, QString *problem) {
        return std::unique_ptr<KeyStore>(stores.providerKeys(providerId, problem));
    };
    parts.providers = settings.providers();
    parts.settingsFile = settings.fileName();
    parts.usagePath = UsageStore::pathNextTo(settings.fileName());
    ProxyStack stack(parts);
    startupProblems << stack.problems();
    KeyPool &pool = stack.mainPool();
    ProviderKeys &providerKeys = stack.providerKeys();
    UsageStore &usage = stack.usage();
    ProxyService &service = stack.service();
    installRedactingMessageHandler(&service.redactor());
    const auto restoreHandler = qScopeGuard([] { installRedactingMessageHandler(nullptr); });
    XdgAutostartManager autostart;
    MainWindow window(&settings, &pool, stores.keys.get(), &service, &autostart, &usage);
    window.setProxyCredentials(&proxyCredentials);
    window.setProviderKeys(&providerKeys);
    window.keysPage()->setStorageNotice(KeysPage::storageNoticeFor(stores));
    TrayIcon tray;

    // Notices that stay until dealt with: ignored settings; keys a failed save left in memory only. Where the
    // keys and the proxy password go when the keychain refuses them is said once.
    auto *banner = new NoticeBanner;
    window.addBanner(banner);
    banner->showSettingsProblems(settings);
    StorageWarnings storageWarnings(stores.events.get(), banner, window.keysPage());
    QObject::connect(&storageWarnings, &StorageWarnings::announce, &tray,
                     [&tray](const QString &title, const QString &text) {
                         tray.notify(QStringLiteral("storage"), title, text, QSystemTrayIcon::Warning);
                     });

    // Tray -> actions.
    QObject::connect(&tray, &TrayIcon::showWindowRequested, &window, &MainWindow::bringToFront);
    QObject::connect(&tray, &TrayIcon::startRequested, &window, &MainWindow::startProxy);
    QObject::connect(&tray, &TrayIcon::stopRequested, &window, &MainWindow::stopProxy);
    QObject::connect(&tray, &TrayIcon::copyEndpointRequested, &window, &MainWindow::copyEndpoint);
    // Quit from the tray or with Ctrl+Q: the window asks about unapplied settings first.
    QObject::connect(&tray, &TrayIcon::quitRequested, &window, &MainWindow::requestQuit);
    QObject::connect(&window, &MainWindow::quitRequested, &app, [&service, &window] {
        // quit() would first ask every window to close, and ours only hides: exit directly.
        window.setHideOnClose(false);
        service.stop();
        QCoreApplication::exit(0);
    });
    QObject::connect(&instance, &SingleInstance::activationRequested, &window, &MainWindow::bringToFront);

    // State -> tray: the same ServiceStatus as the window's status line.
    tray.bind(window.serviceStatus());
    QObject::connect(&window, &MainWindow::proxyFailed, &tray, [&tray](const QString &error) {
        tray.notify(QStringLiteral("proxy"), QObject::tr("KeyRelay is not running"), error,
                    QSystemTrayIcon::Critical);
    });
    QObject::connect(&pool, &KeyPool::keyFailed, &tray,
                     [&tray](int, const QString &label, const QString &reason) {
                         tray.notify(QStringLiteral("key:") + label,
                                     QObject::tr("KeyRelay: key %1 stopped working").arg(label), reason);
                     });
    QObject::connect(&pool, &KeyPool::keyRecovered, &tray, [&tray](int, const QString &label) {
        tray.notify(QStringLiteral("key-ok:") + label, QObject::tr("KeyRelay: key %1 works again").arg(label),
                    QObject::tr("It is back in rotation."));
    });

    // With a tray, the window hides on close and the app lives on; without one, it is a normal window.
    const bool startMinimized = settings.value(Setting::StartMinimized).toBool();
    QObject::connect(&tray, &TrayIcon::ready, &window, [&] {
        QApplication::setQuitOnLastWindowClosed(false);
        window.setHideOnClose(true);
        if (service.state() == ProxyService::State::Failed)
            tray.notify(QStringLiteral("proxy"), QObject::tr("KeyRelay is not running"), service.lastError(),
                        QSystemTrayIcon::Critical);
    });
    QObject::connect(&tray, &TrayIcon::unavailable, &window, [&] {
        QApplication::setQuitOnLastWindowClosed(true);
        window.setHideOnClose(false);
        if (!window.isVisible())
            window.bringToFront();
    });

    if (!startupProblems.isEmpty())
        window.showMessage(
            QObject::tr("Problems found at start-up: %1").arg(startupProblems.join(QStringLiteral("; "))),
            true);
    else if (!stores.messages.isEmpty())
        window.showMessage(stores.messages.join(QLatin1Char(' ')), false);

    QString error;
    ProxyConfig config = settings.proxyConfig();
    proxyCredentials.complete(&config);
    if (!service.start(config, &error))
        qCWarning(lcUi).noquote() << "proxy did not start:" << error;

    if (!startMinimized)
        window.bringToFront();
    tray.install(5, 1000);

    const int code = QApplication::exec();
    service.stop();
    return code;
}

} // namespace keyrelay
