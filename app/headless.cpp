#include "headless.h"

#include "keypool.h"
#include "logging.h"
#include "proxyservice.h"
#include "settingsregistry.h"
#include "unixsignalwatcher.h"

#include <QCommandLineParser>
#include <QCoreApplication>
#include <QFile>
#include <QFileInfo>
#include <QSet>
#include <QTextStream>

#include <cstdio>

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
                         "standard input). Without it, clients' own keys are passed through."),
          QStringLiteral("FILE") });
    parser.addOption({ QStringLiteral("config"), QStringLiteral("INI settings file, as written by the GUI."),
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

    ProxyConfig config;
    if (parser.isSet(QStringLiteral("config"))) {
        const QString path = parser.value(QStringLiteral("config"));
        QFileInfo info(path);
        if (!info.isFile() || !info.isReadable())
            return fail(QStringLiteral("cannot read config file %1").arg(path), ExitUsage);
        const auto settings = SettingsRegistry::openIni(path);
        for (const QString &problem : settings->problems())
            QTextStream(stderr) << "keyrelay: warning: " << problem << Qt::endl;
        config = settings->proxyConfig();
    }
    QString error;
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

    KeyPool keys;
    if (parser.isSet(QStringLiteral("keys-file"))) {
        QStringList secrets;
        if (!readKeysFile(parser.value(QStringLiteral("keys-file")), &secrets, &error))
            return fail(error, ExitUsage);
        QList<ApiKey> list;
        for (const QString &secret : std::as_const(secrets))
            list.append({ secret, QString(), true });
        keys.setKeys(list);
    }

    ProxyService service(&keys);
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
    out << "KeyRelay " << QCoreApplication::applicationVersion() << " listening on " << service.endpointUrl()
        << " -> " << config.upstream.toString() << " ("
        << (keys.isEmpty() ? QStringLiteral("no keys: clients' keys pass through")
                           : QStringLiteral("%1 key(s)").arg(keys.size()))
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
