#include "headless.h"

#include "keypool.h"
#include "keystore.h"
#include "logging.h"
#include "proxycredentials.h"
#include "proxyservice.h"
#include "proxystack.h"
#include "secretstore.h"
#include "settingsregistry.h"
#include "unixsignalwatcher.h"
#include "usagestore.h"
#include "userconfig.h"
#include "userstores.h"

#include <QCommandLineParser>
#include <QCoreApplication>
#include <QDir>
#include <QFile>
#include <QFileInfo>
#include <QLockFile>
#include <QSet>
#include <QTextStream>
#include <QUrl>

#include <cstdio>
#include <memory>
#include <vector>
#include <optional>

namespace keyrelay {

namespace {

enum ExitCode { ExitOk = 0, ExitRuntimeError = 1, ExitUsage = 2 };

int fail(const QString &message, int code)
{
    QTextStream(stderr) << "keyrelay: " << message << Qt::endl;
    return code;
}

bool readKeysFile(const QString &path, QStringList *keys, QString *error)
{
    QFile file;
    bool opened = false;
    if (path == QLatin1String("-")) {
        opened = file.open(stdin, QIODevice::ReadOnly);
    } else {
        file.setFileName(path);
        opened = file.open(QIODevice::ReadOnly | QIODevice::Text);
    }
    if (!opened) {
        *error = QStringLiteral("cannot read keys file %1: %2").arg(path, file.errorString());
        return false;
    }
    const QByteArray content = file.readAll();
    *keys = KeyPool::parseKeyList(QString::fromUtf8(content));
    if (keys->isEmpty()) {
        *error = QStringLiteral("keys file %1 holds no key (one key per line; # starts a comment)").arg(path);
        return false;
    }
    return true;
}

/// The settings: --config FILE, or the tray app's own settings file. Prints the problems found in it.
std::unique_ptr<SettingsRegistry> openSettings(const QCommandLineParser &parser, QString *error)
{
    std::unique_ptr<SettingsRegistry> settings;
    if (parser.isSet(QStringLiteral("config"))) {
        const QString path = parser.value(QStringLiteral("config"));
        QFileInfo info(path);
        if (!info.isFile() || !info.isReadable()) {
            *error = QStringLiteral("cannot read config file %1").arg(path);
            return nullptr;
        }
        settings = SettingsRegistry::openIni(path);
    } else {
        settings = std::make_unique<SettingsRegistry>(userconfig::openUserSettings());
    }
    for (const QString &problem : settings->problems())
        QTextStream(stderr) << "keyrelay: warning: " << problem << Qt::endl;
    return settings;
}

/// The key store and the upstream proxy's password that belong to @p settingsFile. With the tray app's
/// settings, the tray app's own stores (the system keychain when one answers, else the owner-only files next
/// to the settings; see openUserStores); with --config FILE, the files next to FILE, never the keychain,
/// which is one per user, not one per settings file. The one place to change where headless keys come from.
UserStores openStores(const QString &settingsFile, bool traySettings)
{
    if (traySettings)
        return openUserStores(settingsFile);
    UserStores stores;
    stores.reason = UserStores::Reason::ForcedFile;
    stores.keysFile = FileKeyStore::pathNextTo(settingsFile);
    stores.keys = std::make_unique<FileKeyStore>(stores.keysFile);
    stores.secrets = std::make_unique<FileSecretStore>(FileSecretStore::pathNextTo(settingsFile));
    return stores;
}

/// The keys: --keys-file FILE, or the key store of the settings file (the tray app's keys). Sets @p source to
/// where the keys came from, for the start-up line.
bool loadKeys(const QCommandLineParser &parser, const UserStores *stores, QList<ApiKey> *keys,
              QString *source, QString *error, int *exitCode)
{
    if (parser.isSet(QStringLiteral("keys-file"))) {
        QStringList secrets;
        *source = parser.value(QStringLiteral("keys-file"));
        if (!readKeysFile(*source, &secrets, error)) {
            *exitCode = ExitUsage;
            return false;
        }
        for (const QString &secret : std::as_const(secrets))
            keys->append({ secret, QString(), true });
        return true;
    }
    *source = stores->inKeychain() ? QStringLiteral("the system keychain") : stores->keysFile;
    if (!stores->keys->load(keys, error)) {
        *exitCode = ExitRuntimeError;
        return false;
    }
    return true;
}

/// Completes @p config with the stored upstream proxy password. With the tray app's settings file, a
/// password still written in it is first moved to the store, exactly as the tray app does; when it cannot be
/// stored, KeyRelay refuses to start rather than run with the password left in the shared file.
bool loadProxyPassword(SettingsRegistry *settings, bool traySettings, SecretStore *store, ProxyConfig *config,
                       QString *error)
{
    ProxyCredentials proxy(store);
    QString proxyError;
    if (!proxy.load(&proxyError)) {
        QTextStream(stderr) << "keyrelay: warning: " << proxyError << Qt::endl;
        return true;
    }
    if (traySettings) {
        bool moved = false;
        if (!proxy.migrate(settings, &moved, &proxyError)) {
            *error
                = QStringLiteral("the upstream proxy password in %1 could not be moved to %2 (%3); remove it "
                                 "from proxy/upstreamProxy and enter it in the tray app, or start with "
                                 "--config FILE")
                      .arg(settings->fileName(), store->location(), proxyError);
            return false;
        }
        if (moved)
            QTextStream(stderr) << "keyrelay: moved the upstream proxy password from " << settings->fileName()
                                << " to " << store->location() << Qt::endl;
    }
    proxy.complete(config);
    return true;
}

} // namespace

int runHeadless(QCoreApplication &app)
{
    QCommandLineParser parser;
    parser.setApplicationDescription(QStringLiteral("KeyRelay: a local OpenAI-compatible proxy that rotates "
                                                    "your API keys and keeps them from your clients."));
    parser.addHelpOption();
    parser.addVersionOption();
    parser.addOption({ QStringLiteral("headless"), QStringLiteral("Run the proxy without the tray GUI.") });
    parser.addOption({ QStringLiteral("listen"),
                       QStringLiteral("Address to listen on (default 127.0.0.1:9000)."),
                       QStringLiteral("HOST:PORT") });
    parser.addOption({ QStringLiteral("upstream"),
                       QStringLiteral("Upstream base URL (default https://api.openai.com)."),
                       QStringLiteral("URL") });
    parser.addOption(
        { QStringLiteral("keys-file"),
          QStringLiteral("File with one API key per line (# comments; k1|k2 also accepted; - reads "
                         "standard input). Default: the tray app's keys (system keychain or keys.json "
                         "next to the settings file); with none, clients' own keys are passed through."),
          QStringLiteral("FILE") });
    parser.addOption({ QStringLiteral("config"),
                       QStringLiteral("INI settings file, as written by the GUI. Default: the tray app's "
                                      "settings file."),
                       QStringLiteral("FILE") });
    parser.addOption(
        { QStringLiteral("no-reorder"), QStringLiteral("Do not move the system message of long chats.") });
    parser.addOption(
        { QStringLiteral("allow-remote"),
          QStringLiteral("Allow listening on a non-loopback address (other machines could then use "
                         "your keys).") });
    parser.addOption({ QStringLiteral("quiet"), QStringLiteral("Do not print a line per request.") });
    parser.process(app);

    if (!parser.positionalArguments().isEmpty())
        return fail(
            QStringLiteral("unexpected argument \"%1\"; keys go in --keys-file, never on the command line")
                .arg(parser.positionalArguments().first()),
            ExitUsage);

    QString error;
    const std::unique_ptr<SettingsRegistry> settings = openSettings(parser, &error);
    if (!settings)
        return fail(error, ExitUsage);
    const QString settingsFile = settings->fileName();
    ProxyConfig config = settings->proxyConfig();
    if (parser.isSet(QStringLiteral("listen"))
        && !ProxyConfig::parseListen(parser.value(QStringLiteral("listen")), &config.listenHost,
                                     &config.listenPort, &error)) {
        return fail(error, ExitUsage);
    }
    if (parser.isSet(QStringLiteral("upstream"))
        && !ProxyConfig::parseUpstream(parser.value(QStringLiteral("upstream")), &config.upstream, &error)) {
        return fail(error, ExitUsage);
    }
    if (parser.isSet(QStringLiteral("no-reorder")))
        config.reorderEnabled = false;
    if (parser.isSet(QStringLiteral("allow-remote")))
        config.allowRemoteClients = true;
    const QStringList problems = config.validate();
    if (!problems.isEmpty())
        return fail(problems.join(QStringLiteral("; ")), ExitUsage);

    // With the tray app's settings and keys this is the same KeyRelay as the tray app: one at a time.
    std::unique_ptr<QLockFile> instanceLock;
    if (!parser.isSet(QStringLiteral("config")) && !parser.isSet(QStringLiteral("keys-file"))) {
        instanceLock = std::make_unique<QLockFile>(userconfig::instanceLockPath(settingsFile));
        instanceLock->setStaleLockTime(0); // only a dead process's lock is stale
        if (!instanceLock->tryLock(100)) {
            qint64 pid = 0;
            QString hostName;
            QString appName;
            const QString pidText = instanceLock->getLockInfo(&pid, &hostName, &appName)
                ? QStringLiteral(" (pid %1)").arg(pid)
                : QString();
            return fail(QStringLiteral("KeyRelay already runs with the settings in %1%2 (the tray app or "
                                       "another keyrelay --headless); quit it first, or give this one its "
                                       "own --config or --keys-file")
                            .arg(settingsFile, pidText),
                        ExitRuntimeError);
        }
    }

    QString keySource;
    QList<ApiKey> mainKeys;
    // The stores hold the keys and the proxy password. With --keys-file they are only needed for a proxy
    // with a user name: no keychain probe (up to a few seconds on a desktop bus) for everyone else.
    std::optional<UserStores> stores;
    {
        const bool traySettings = !parser.isSet(QStringLiteral("config"));
        const bool proxyHasUser
            = !QUrl(config.upstreamProxy.trimmed(), QUrl::TolerantMode).userName().isEmpty();
        if (!parser.isSet(QStringLiteral("keys-file")) || proxyHasUser) {
            stores.emplace(openStores(settingsFile, traySettings));
            for (const QString &line : stores->messages + stores->problems)
                QTextStream(stderr) << "keyrelay: " << line << Qt::endl;
            if (!loadProxyPassword(settings.get(), traySettings, stores->secrets.get(), &config, &error))
                return fail(error, ExitRuntimeError);
        }
        int exitCode = ExitOk;
        if (!loadKeys(parser, stores ? &*stores : nullptr, &mainKeys, &keySource, &error, &exitCode))
            return fail(error, exitCode);
    }

    // The proxy's objects, as the tray app builds them: the keys above serve "default"; every other provider
    // has its own (its keysFile, or what the tray app stored for it), and usage goes next to the settings.
    ProxyStack::Parts parts;
    parts.mainKeys = mainKeys;
    if (stores) {
        parts.openProviderStore = [&stores](const QString &providerId, QString *problem) {
            return std::unique_ptr<KeyStore>(stores->providerKeys(providerId, problem));
        };
    }
    parts.providers = config.providers;
    parts.settingsFile = settingsFile;
    parts.usagePath = UsageStore::pathNextTo(settingsFile);
    ProxyStack stack(parts);
    if (!stack.providerKeys().problems().isEmpty())
        return fail(stack.providerKeys().problems().join(QLatin1String("; ")), ExitRuntimeError);
    if (!stack.usage().problem().isEmpty())
        QTextStream(stderr) << "keyrelay: warning: " << stack.usage().problem() << Qt::endl;
    const bool defaultListed = std::any_of(config.providers.cbegin(), config.providers.cend(), [](const ProviderConfig &p) {
        return p.id == QLatin1String(ProviderConfig::DefaultId);
    });
    if (!config.providers.isEmpty() && !defaultListed && !mainKeys.isEmpty())
        QTextStream(stderr) << "keyrelay: warning: the " << mainKeys.size() << " key(s) from " << keySource
                            << " serve the provider \"default\", which [providers] does not list; give each "
                               "provider its keys (keysFile= in its [provider.<id>], or the tray app's Keys page)"
                            << Qt::endl;
    KeyPool &keys = stack.mainPool();
    ProxyService &service = stack.service();
    installRedactingMessageHandler(&service.redactor());
    UnixSignalWatcher signalWatcher;
    const bool quiet = parser.isSet(QStringLiteral("quiet"));
    if (!quiet) {
        QObject::connect(&service, &ProxyService::requestFinished, &app, [](const RequestRecord &record) {
            const QByteArray line = record.toLogLine().toUtf8() + '\n';
            std::fwrite(line.constData(), 1, size_t(line.size()), stdout);
            std::fflush(stdout);
        });
    }
    // A website the user may have meant to allow: say once per origin which setting lets it in.
    QSet<QString> reportedOrigins;
    QObject::connect(&service, &ProxyService::requestFinished, &app,
                     [&reportedOrigins](const RequestRecord &record) {
                         if (!record.originBlocked || reportedOrigins.contains(record.origin)
                             || reportedOrigins.size() > 100)
                             return;
                         reportedOrigins.insert(record.origin);
                         QTextStream(stderr)
                             << "keyrelay: blocked a request from the website " << record.origin
                             << "; if you trust it, add it to security/allowedOrigins in the settings file "
                                "(comma-separated, e.g. allowedOrigins="
                             << record.origin << ")" << Qt::endl;
                     });
    if (!service.start(config, &error))
        return fail(error, ExitRuntimeError);

    QTextStream out(stdout);
    QStringList upstreams;
    for (const ProviderConfig &provider : config.effectiveProviders()) {
        const QString url = ProxyConfig::withoutUserInfo(provider.baseUrl.toString());
        upstreams.append(config.providers.isEmpty() ? url : provider.id + QLatin1Char('=') + url);
    }
    out << "KeyRelay " << QCoreApplication::applicationVersion() << " listening on " << service.endpointUrl()
        << " -> " << upstreams.join(QLatin1String(", ")) << " ("
        << (keys.isEmpty() ? QStringLiteral("no keys: clients' keys pass through")
                           : QStringLiteral("%1 key(s) from %2").arg(keys.size()).arg(keySource))
        << ", system-message reorder " << (config.reorderEnabled ? "on" : "off") << ")" << Qt::endl;

    bool stopping = false;
    QObject::connect(&signalWatcher, &UnixSignalWatcher::terminationRequested, &app, [&](int signalNumber) {
        if (stopping) { // a second Ctrl+C: stop at once
            QTextStream(stderr) << "keyrelay: stopping now" << Qt::endl;
            QCoreApplication::exit(ExitOk);
            return;
        }
        stopping = true;
        QTextStream(stderr) << "keyrelay: signal " << signalNumber << ", finishing requests in flight"
                            << Qt::endl;
        service.shutdown(config.shutdownGraceSec * 1000);
    });
    QObject::connect(&service, &ProxyService::shutdownComplete, &app, [] { QCoreApplication::exit(ExitOk); });
    const int code = QCoreApplication::exec();
    installRedactingMessageHandler(nullptr);
    return code;
}

} // namespace keyrelay
