// The real `keyrelay --headless` binary (KEYRELAY_BINARY): serving through it, the per-request log line
// with the masked key, clean exit on SIGTERM (after in-flight requests), and start-up failures.
#include "keypool.h"
#include "keystore.h"
#include "mockupstream.h"
#include "rawclient.h"
#include "usagestore.h"

#include <QDir>
#include <QElapsedTimer>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QProcess>
#include <QRegularExpression>
#include <QTcpServer>
#include <QTemporaryDir>
#include <QtTest>

#include <csignal>

using namespace it;

namespace {
/// The user's environment: the binary's own default logging, not the test runner's QT_LOGGING_RULES; and an
/// empty configuration folder, so that the tester's own settings and keys (which `--headless` uses when no
/// --config/--keys-file is given), or a tray app running with them, cannot change the results.
QProcessEnvironment userEnvironment()
{
    static const QTemporaryDir configHome;
    QProcessEnvironment environment = QProcessEnvironment::systemEnvironment();
    environment.remove(QStringLiteral("QT_LOGGING_RULES"));
    environment.insert(QStringLiteral("XDG_CONFIG_HOME"), configHome.path());
    return environment;
}

const QString Key1 = QStringLiteral("sk-headless-secret-key-1111abcd");
const QString Key2 = QStringLiteral("sk-headless-secret-key-2222wxyz");
} // namespace

class HeadlessTest : public QObject
{
    Q_OBJECT

private Q_SLOTS:
    void initTestCase();
    void init();
    void cleanup();

    void servesAndLogsMaskedKey();
    void usageIsBookedPerKeyAndModel();
    void blockedWebsiteHintAndEchoedKey();
    void remoteWithoutTokenExitsWithUsageError();
    void sigtermFinishesInFlightRequest();
    void sigintExitsCleanly();
    void secondSignalStopsAtOnce();
    void configFile();
    void providersKeysFromTheTrayAppsStoreAndKeysFile();
    void portInUse();
    void proxyPasswordNeverInWarnings_data();
    void proxyPasswordNeverInWarnings();
    void sharedSettingsProxyPasswordMovedOut();
    void badStartup_data();
    void badStartup();
    void helpAndVersion_data();
    void helpAndVersion();

private:
    /// Starts the binary and waits for its "listening on" line; returns the port or 0.
    quint16 startProxy(const QStringList &extraArgs, bool withUpstream = true);
    QString writeKeysFile(const QByteArray &content);
    int runToExit(const QStringList &args, QByteArray *out, QByteArray *err, int timeoutMs = 15000);

    /// Starts the binary with @p environment instead of the default user environment.
    quint16 startProxyIn(const QProcessEnvironment &environment, const QStringList &extraArgs);

    QString m_binary;
    QTemporaryDir m_dir;
    std::unique_ptr<MockUpstream> m_mock;
    std::unique_ptr<QProcess> m_process;
    QByteArray m_stdout;
};

void HeadlessTest::initTestCase()
{
    m_binary = QString::fromLocal8Bit(qgetenv("KEYRELAY_BINARY"));
    QVERIFY2(!m_binary.isEmpty(), "KEYRELAY_BINARY is not set (run through ctest)");
    QVERIFY2(QFileInfo(m_binary).isExecutable(), qPrintable(m_binary));
    QVERIFY(m_dir.isValid());
}

void HeadlessTest::init()
{
    m_mock = std::make_unique<MockUpstream>();
    QVERIFY(m_mock->listen());
    m_stdout.clear();
}

void HeadlessTest::cleanup()
{
    if (m_process && m_process->state() != QProcess::NotRunning) {
        m_process->kill();
        m_process->waitForFinished(5000);
    }
    m_process.reset();
    m_mock.reset();
}

QString HeadlessTest::writeKeysFile(const QByteArray &content)
{
    static int counter = 0;
    const QString path = m_dir.filePath(QStringLiteral("keys-%1.txt").arg(++counter));
    QFile file(path);
    if (!file.open(QIODevice::WriteOnly))
        return QString();
    file.write(content);
    return path;
}

quint16 HeadlessTest::startProxy(const QStringList &extraArgs, bool withUpstream)
{
    QStringList args;
    if (withUpstream)
        args << QStringLiteral("--upstream") << m_mock->url().toString();
    return startProxyIn(userEnvironment(), args + extraArgs);
}

quint16 HeadlessTest::startProxyIn(const QProcessEnvironment &environment, const QStringList &extraArgs)
{
    m_process = std::make_unique<QProcess>();
    connect(m_process.get(), &QProcess::readyReadStandardOutput, this,
            [this] { m_stdout += m_process->readAllStandardOutput(); });
    const QStringList args { QStringLiteral("--headless"), QStringLiteral("--listen"),
                             QStringLiteral("127.0.0.1:0") };
    m_process->setProcessEnvironment(environment);
    m_process->start(m_binary, args + extraArgs);
    if (!m_process->waitForStarted(10000))
        return 0;
    static const QRegularExpression listening(
        QStringLiteral("listening on http://127\\.0\\.0\\.1:(\\d+) -> "));
    quint16 port = 0;
    [[maybe_unused]] const bool seen = QTest::qWaitFor(
        [&] {
            const QRegularExpressionMatch match = listening.match(QString::fromUtf8(m_stdout));
            if (match.hasMatch())
                port = quint16(match.captured(1).toUInt());
            return port != 0 || m_process->state() == QProcess::NotRunning;
        },
        15000);
    if (!port)
        qWarning() << "no listening line; stdout:" << m_stdout
                   << "stderr:" << m_process->readAllStandardError();
    return port;
}

int HeadlessTest::runToExit(const QStringList &args, QByteArray *out, QByteArray *err, int timeoutMs)
{
    QProcess process;
    process.setProcessEnvironment(userEnvironment());
    process.start(m_binary, args);
    if (!process.waitForFinished(timeoutMs)) {
        process.kill();
        process.waitForFinished();
        return -1000;
    }
    *out = process.readAllStandardOutput();
    *err = process.readAllStandardError();
    return process.exitStatus() == QProcess::NormalExit ? process.exitCode() : -2000;
}

void HeadlessTest::servesAndLogsMaskedKey()
{
    const QString keysFile = writeKeysFile("# my keys\n" + Key1.toUtf8() + "\n\n" + Key2.toUtf8() + "\n");
    const quint16 port = startProxy({ QStringLiteral("--keys-file"), keysFile });
    QVERIFY(port != 0);
    QVERIFY(m_stdout.contains("2 key(s)"));

    for (const QString &expectedKey : { Key1, Key2 }) {
        RawClient client;
        client.send(port,
                    buildRequest("POST", "/v1/embeddings", port,
                                 { { "Authorization", "Bearer sk-client-not-used" },
                                   { "Content-Type", "application/json" } },
                                 R"({"model":"text-embedding-3-small","input":"x"})"));
        QVERIFY(client.waitFinished());
        QCOMPARE(client.status(), 200);
        QCOMPARE(client.body(), QByteArray("ok"));
        QCOMPARE(m_mock->lastRequest().header("Authorization"), "Bearer " + expectedKey.toUtf8());
    }
    // One log line per request, naming the key by its masked form only.
    const QString masked1 = QStringLiteral("sk-") + QChar(0x2026) + Key1.right(4);
    const QString masked2 = QStringLiteral("sk-") + QChar(0x2026) + Key2.right(4);
    QTRY_VERIFY_WITH_TIMEOUT(QString::fromUtf8(m_stdout).contains(masked2), 5000);
    const QString out = QString::fromUtf8(m_stdout);
    QVERIFY2(out.contains(masked1), qPrintable(out));
    QVERIFY(out.contains(QStringLiteral("/v1/embeddings")));
    QVERIFY(out.contains(QStringLiteral("text-embedding-3-small")));
    QVERIFY(out.contains(QStringLiteral("status=200")));
    QVERIFY2(!out.contains(Key1) && !out.contains(Key2), qPrintable(out));
    QVERIFY(!out.contains(QStringLiteral("sk-client-not-used")));

    ::kill(pid_t(m_process->processId()), SIGTERM);
    QVERIFY(m_process->waitForFinished(10000));
    QCOMPARE(m_process->exitStatus(), QProcess::NormalExit);
    QCOMPARE(m_process->exitCode(), 0);
    const QByteArray err = m_process->readAllStandardError();
    QVERIFY(!err.contains(Key1.toUtf8()) && !err.contains(Key2.toUtf8()));
}

void HeadlessTest::sigtermFinishesInFlightRequest()
{
    const QString keysFile = writeKeysFile(Key1.toUtf8() + "\n");
    const quint16 port = startProxy({ QStringLiteral("--keys-file"), keysFile, QStringLiteral("--quiet") });
    QVERIFY(port != 0);
    m_mock->setHandler([](const RecordedRequest &) {
        return MockResponse::sse({ { 0, "data: 1\n\n" }, { 1200, "data: 2\n\ndata: [DONE]\n\n" } });
    });
    RawClient client;
    client.send(port,
                buildRequest("POST", "/v1/chat/completions", port, { { "Content-Type", "application/json" } },
                             R"({"model":"m","stream":true,"messages":[]})"));
    QTRY_VERIFY_WITH_TIMEOUT(client.body().contains("data: 1"), 5000);
    ::kill(pid_t(m_process->processId()), SIGTERM);
    // The stream in flight completes, then the process exits 0.
    QVERIFY2(client.waitFinished(8000),
             qPrintable(QString::fromUtf8(client.body() + "\nstderr: " + m_process->readAllStandardError())));
    QCOMPARE(client.body(), QByteArray("data: 1\n\ndata: 2\n\ndata: [DONE]\n\n"));
    QTRY_VERIFY_WITH_TIMEOUT(m_process->state() == QProcess::NotRunning, 8000);
    QCOMPARE(m_process->exitStatus(), QProcess::NormalExit);
    QCOMPARE(m_process->exitCode(), 0);
    QVERIFY(m_stdout.indexOf("status=") < 0); // --quiet
}

void HeadlessTest::secondSignalStopsAtOnce()
{
    const quint16 port = startProxy({ QStringLiteral("--quiet") });
    QVERIFY(port != 0);
    // A stream that would outlast the 10 s grace period by far.
    m_mock->setHandler([](const RecordedRequest &) {
        return MockResponse::sse({ { 0, "data: 1\n\n" }, { 60000, "data: [DONE]\n\n" } });
    });
    RawClient client;
    client.send(port,
                buildRequest("POST", "/v1/chat/completions", port, { { "Content-Type", "application/json" } },
                             R"({"model":"m","stream":true,"messages":[]})"));
    QTRY_VERIFY_WITH_TIMEOUT(client.body().contains("data: 1"), 5000);
    QElapsedTimer clock;
    clock.start();
    ::kill(pid_t(m_process->processId()), SIGTERM);
    QByteArray err;
    QTRY_VERIFY_WITH_TIMEOUT((err += m_process->readAllStandardError()).contains("finishing requests"), 5000);
    QVERIFY(m_process->state() == QProcess::Running); // the first signal waits for the stream
    ::kill(pid_t(m_process->processId()), SIGTERM);
    QTRY_VERIFY_WITH_TIMEOUT(m_process->state() == QProcess::NotRunning, 5000);
    QVERIFY2(clock.elapsed() < 8000, qPrintable(QString::number(clock.elapsed())));
    QCOMPARE(m_process->exitStatus(), QProcess::NormalExit);
    QCOMPARE(m_process->exitCode(), 0);
}

void HeadlessTest::sigintExitsCleanly()
{
    const quint16 port = startProxy({}); // no keys: pass-through
    QVERIFY(port != 0);
    QVERIFY(m_stdout.contains("pass through"));
    RawClient client;
    client.send(
        port,
        buildRequest("GET", "/v1/models", port, { { "Authorization", "Bearer sk-own-client-key-9999" } }));
    QVERIFY(client.waitFinished());
    QCOMPARE(client.status(), 200);
    QCOMPARE(m_mock->lastRequest().header("Authorization"), QByteArray("Bearer sk-own-client-key-9999"));
    ::kill(pid_t(m_process->processId()), SIGINT);
    QVERIFY(m_process->waitForFinished(10000));
    QCOMPARE(m_process->exitStatus(), QProcess::NormalExit);
    QCOMPARE(m_process->exitCode(), 0);
}

void HeadlessTest::configFile()
{
    // Settings come from the INI file; --listen on the command line wins over the file's port.
    const QString configPath = m_dir.filePath(QStringLiteral("keyrelay.ini"));
    {
        QFile file(configPath);
        QVERIFY(file.open(QIODevice::WriteOnly));
        file.write("[proxy]\nupstream=" + m_mock->url().toEncoded()
                   + "\nstripPrefixes=/release\nlistenPort=1\n"
                     "[rewrite]\nreorderSystemMessage=false\n"
                     "[security]\nallowedOrigins=https://bettergpt.chat\n");
    }
    const quint16 port = startProxy({ QStringLiteral("--config"), configPath }, false);
    QVERIFY(port != 0);
    QVERIFY(m_stdout.contains("reorder off"));
    const QByteArray body
        = R"({"model":"m","messages":[{"role":"system","content":"s"},{"role":"user","content":"1"},)"
          R"({"role":"user","content":"2"},{"role":"user","content":"3"},{"role":"user","content":"4"}]})";
    RawClient client;
    client.send(port,
                buildRequest("POST", "/release/v1/chat/completions", port,
                             { { "Authorization", "Bearer sk-own-key-0000000000" },
                               { "Content-Type", "application/json" },
                               { "Origin", "https://bettergpt.chat" } },
                             body));
    QVERIFY(client.waitFinished());
    QCOMPARE(client.status(), 200);
    QCOMPARE(client.header("Access-Control-Allow-Origin"), QByteArray("https://bettergpt.chat"));
    QCOMPARE(m_mock->lastRequest().target, QByteArray("/v1/chat/completions"));
    QCOMPARE(m_mock->lastRequest().body, body);
    ::kill(pid_t(m_process->processId()), SIGTERM);
    QVERIFY(m_process->waitForFinished(10000));
    QCOMPARE(m_process->exitCode(), 0);
}

void HeadlessTest::providersKeysFromTheTrayAppsStoreAndKeysFile()
{
    // A provider's keys as the tray app stores them (keys-<id>.json next to keys.json here, with --config),
    // and another provider's keysFile: --headless uses both, each for its own provider.
    QTemporaryDir dir;
    const QString configPath = dir.filePath(QStringLiteral("keyrelay.ini"));
    const QString claudeKey = QStringLiteral("sk-ant-stored-by-the-tray-app-0001");
    const QString openaiKey = QStringLiteral("sk-openai-from-its-keys-file-0002");
    {
        keyrelay::ApiKey key;
        key.secret = claudeKey;
        QFile stored(dir.filePath(QStringLiteral("keys-claude.json")));
        QVERIFY(stored.open(QIODevice::WriteOnly));
        stored.write(keyrelay::keysToJson({ key }));
        stored.setPermissions(QFileDevice::ReadOwner | QFileDevice::WriteOwner);
        QFile list(dir.filePath(QStringLiteral("openai-keys.txt")));
        QVERIFY(list.open(QIODevice::WriteOnly));
        list.write(openaiKey.toUtf8() + "\n");
        list.setPermissions(QFileDevice::ReadOwner | QFileDevice::WriteOwner);
        QFile file(configPath);
        QVERIFY(file.open(QIODevice::WriteOnly));
        file.write("[providers]\norder=openai, claude\n"
                   "[provider.openai]\nkind=openai\nbaseUrl=" + m_mock->url().toEncoded() + "\nkeysFile=openai-keys.txt\n"
                   "[provider.claude]\nkind=anthropic\nbaseUrl=" + m_mock->url().toEncoded() + "\n");
    }
    QProcessEnvironment environment = QProcessEnvironment::systemEnvironment();
    environment.insert(QStringLiteral("KEYRELAY_KEYSTORE"), QStringLiteral("file"));
    const quint16 port = startProxyIn(environment, { QStringLiteral("--config"), configPath });
    QVERIFY(port != 0);
    QVERIFY2(m_stdout.contains("openai=http://127.0.0.1") && m_stdout.contains("claude=http://127.0.0.1"),
             m_stdout.constData());
    for (const QByteArray &path : { QByteArrayLiteral("/v1/messages"), QByteArrayLiteral("/v1/chat/completions") }) {
        RawClient client;
        client.send(port, buildRequest("POST", path, port, { { "Content-Type", "application/json" } },
                                       R"({"model":"m","messages":[]})"));
        QVERIFY(client.waitFinished());
        QCOMPARE(client.status(), 200);
    }
    QCOMPARE(m_mock->requestCount(), 2);
    QCOMPARE(m_mock->requests().at(0).header("x-api-key"), claudeKey.toUtf8());
    QCOMPARE(m_mock->requests().at(1).header("Authorization"), "Bearer " + openaiKey.toUtf8());
    ::kill(pid_t(m_process->processId()), SIGTERM);
    QVERIFY(m_process->waitForFinished(10000));
    QCOMPARE(m_process->exitCode(), 0);
}

void HeadlessTest::portInUse()
{
    QTcpServer blocker;
    QVERIFY(blocker.listen(QHostAddress(QHostAddress::LocalHost), 0));
    const QString port = QString::number(blocker.serverPort());
    const QString keysFile = writeKeysFile(Key1.toUtf8());
    QByteArray out;
    QByteArray err;
    const int code = runToExit({ QStringLiteral("--headless"), QStringLiteral("--listen"),
                                 QStringLiteral("127.0.0.1:") + port, QStringLiteral("--upstream"),
                                 m_mock->url().toString(), QStringLiteral("--keys-file"), keysFile },
                               &out, &err);
    QVERIFY2(code > 0, qPrintable(QString::number(code)));
    const QString message = QString::fromUtf8(err).trimmed();
    QVERIFY2(message.contains(port), qPrintable(message));
    QVERIFY2(message.contains(QStringLiteral("in use")), qPrintable(message));
    QCOMPARE(message.count(QLatin1Char('\n')), 0); // one line
    QVERIFY(!out.contains("listening on"));
}

void HeadlessTest::usageIsBookedPerKeyAndModel()
{
    const QString configPath = m_dir.filePath(QStringLiteral("usage.ini"));
    {
        QFile file(configPath);
        QVERIFY(file.open(QIODevice::WriteOnly));
        file.write("[proxy]\nupstream=" + m_mock->url().toEncoded() + "\n");
    }
    const QString keysFile = writeKeysFile(Key1.toUtf8() + "\n");
    m_mock->setHandler([](const RecordedRequest &) {
        return MockResponse::json(
            200, R"({"id":"c","usage":{"prompt_tokens":11,"completion_tokens":7,"total_tokens":18}})");
    });
    const quint16 port = startProxy(
        { QStringLiteral("--config"), configPath, QStringLiteral("--keys-file"), keysFile }, false);
    QVERIFY(port != 0);
    for (int i = 0; i < 2; ++i) {
        RawClient client;
        client.send(port,
                    buildRequest("POST", "/v1/chat/completions", port,
                                 { { "Content-Type", "application/json" } },
                                 R"({"model":"gpt-usage","messages":[]})"));
        QVERIFY(client.waitFinished());
        QCOMPARE(client.status(), 200);
    }
    // GET /_keyrelay/status: answered by KeyRelay, never forwarded, never a whole key.
    const int upstreamRequests = m_mock->requestCount();
    RawClient status;
    status.send(port, buildRequest("GET", "/_keyrelay/status", port));
    QVERIFY(status.waitFinished());
    QCOMPARE(status.status(), 200);
    QCOMPARE(m_mock->requestCount(), upstreamRequests);
    QVERIFY2(!status.body().contains(Key1.toUtf8()), status.body().constData());
    const QJsonObject root = QJsonDocument::fromJson(status.body()).object();
    const QJsonArray statusKeys = root.value(QStringLiteral("keys")).toArray();
    QCOMPARE(statusKeys.size(), 1);
    const QJsonObject key = statusKeys.first().toObject();
    QCOMPARE(key.value(QStringLiteral("id")).toString(), keyrelay::KeyPool::keyId(Key1));
    QCOMPARE(key.value(QStringLiteral("state")).toString(), QStringLiteral("ok"));
    QCOMPARE(key.value(QStringLiteral("requests")).toInt(), 2);
    QCOMPARE(key.value(QStringLiteral("promptTokens")).toInt(), 22);
    QCOMPARE(key.value(QStringLiteral("completionTokens")).toInt(), 14);
    QVERIFY(key.contains(QStringLiteral("masked")) && key.contains(QStringLiteral("label"))
            && key.contains(QStringLiteral("reason")) && key.contains(QStringLiteral("until"))
            && key.contains(QStringLiteral("errors")));
    QCOMPARE(root.value(QStringLiteral("today")).toObject().value(QStringLiteral("totalTokens")).toInt(), 36);

    ::kill(pid_t(m_process->processId()), SIGTERM);
    QVERIFY(m_process->waitForFinished(10000));
    QCOMPARE(m_process->exitCode(), 0);
    // The store next to the settings holds what the mock reported, booked to the key's id.
    keyrelay::UsageStore store(keyrelay::UsageStore::pathNextTo(configPath));
    const QList<keyrelay::UsageRow> totals = store.totals(keyrelay::UsageStore::GroupBy::Key);
    QCOMPARE(totals.size(), 1);
    QCOMPARE(totals.first().keyId, keyrelay::KeyPool::keyId(Key1));
    QCOMPARE(totals.first().requests, 2);
    QCOMPARE(totals.first().promptTokens, 22);
    QCOMPARE(totals.first().completionTokens, 14);
}

void HeadlessTest::blockedWebsiteHintAndEchoedKey()
{
    const QString keysFile = writeKeysFile(Key1.toUtf8() + "\n");
    const quint16 port = startProxy({ QStringLiteral("--keys-file"), keysFile });
    QVERIFY(port != 0);
    // An upstream that puts the key it received into its error message.
    m_mock->setHandler([](const RecordedRequest &request) {
        return MockResponse::json(400,
                                  R"({"error":{"message":"bad request for key )"
                                      + request.header("Authorization").mid(7) + R"("}})");
    });
    RawClient echoed;
    echoed.send(port, buildRequest("GET", "/v1/models", port));
    QVERIFY(echoed.waitFinished());
    QCOMPARE(echoed.status(), 400);
    QVERIFY2(!echoed.body().contains(Key1.toUtf8()), echoed.body().constData());
    QVERIFY(echoed.body().contains("bad request for key"));

    for (int i = 0; i < 2; ++i) {
        RawClient blocked;
        blocked.send(port,
                     buildRequest("POST", "/v1/chat/completions", port,
                                  { { "Origin", "https://evil.example" }, { "Content-Type", "text/plain" } },
                                  "{}"));
        QVERIFY(blocked.waitFinished());
        QCOMPARE(blocked.status(), 403);
    }
    QTRY_VERIFY_WITH_TIMEOUT(m_stdout.count("blocked") == 2, 5000);
    ::kill(pid_t(m_process->processId()), SIGTERM);
    QVERIFY(m_process->waitForFinished(10000));
    QCOMPARE(m_process->exitCode(), 0);
    const QByteArray err = m_process->readAllStandardError();
    // Said once, with the setting that lets the website in.
    QCOMPARE(err.count("security/allowedOrigins"), 1);
    QVERIFY(err.contains("https://evil.example"));
    // No whole key in any output.
    QVERIFY2(!m_stdout.contains(Key1.toUtf8()), m_stdout.constData());
    QVERIFY(!err.contains(Key1.toUtf8()));
    QVERIFY(m_stdout.contains("bad request for key"));
}

void HeadlessTest::remoteWithoutTokenExitsWithUsageError()
{
    QByteArray out;
    QByteArray err;
    const int code = runToExit({ QStringLiteral("--headless"), QStringLiteral("--listen"),
                                 QStringLiteral("0.0.0.0:0"), QStringLiteral("--allow-remote") },
                               &out, &err);
    QCOMPARE(code, 2);
    QVERIFY2(err.contains("security/clientToken"), err.constData());
    QCOMPARE(err.trimmed().count('\n'), 0);
}

void HeadlessTest::badStartup_data()
{
    QTest::addColumn<QStringList>("args");
    QTest::addColumn<QString>("mentions");
    const QString missing = QStringLiteral("/nonexistent/dir/keys.txt");
    QTest::newRow("missing keys file") << QStringList { QStringLiteral("--keys-file"), missing } << missing;
    QTest::newRow("ftp upstream") << QStringList { QStringLiteral("--upstream"), QStringLiteral("ftp://x") }
                                  << QStringLiteral("ftp://x");
    QTest::newRow("upstream not a URL")
        << QStringList { QStringLiteral("--upstream"), QStringLiteral("not a url") }
        << QStringLiteral("upstream");
    QTest::newRow("bad listen port") << QStringList { QStringLiteral("--listen"),
                                                      QStringLiteral("127.0.0.1:99999") }
                                     << QStringLiteral("port");
    QTest::newRow("remote listen without opt-in")
        << QStringList { QStringLiteral("--listen"), QStringLiteral("0.0.0.0:0") }
        << QStringLiteral("0.0.0.0");
    QTest::newRow("remote listen without a client token")
        << QStringList { QStringLiteral("--listen"), QStringLiteral("0.0.0.0:0"),
                         QStringLiteral("--allow-remote") }
        << QStringLiteral("security/clientToken");
    QTest::newRow("key on the command line")
        << QStringList { QStringLiteral("sk-oops-a-key") } << QStringLiteral("keys-file");
}

void HeadlessTest::badStartup()
{
    QFETCH(QStringList, args);
    QFETCH(QString, mentions);
    QStringList full { QStringLiteral("--headless"), QStringLiteral("--listen"),
                       QStringLiteral("127.0.0.1:0"), QStringLiteral("--upstream"),
                       m_mock->url().toString() };
    full += args; // later options win
    QByteArray out;
    QByteArray err;
    const int code = runToExit(full, &out, &err);
    QVERIFY2(code > 0, qPrintable(QString::number(code)));
    const QString message = QString::fromUtf8(err).trimmed();
    QVERIFY2(message.startsWith(QStringLiteral("keyrelay: ")), qPrintable(message));
    QVERIFY2(message.contains(mentions), qPrintable(message));
    QVERIFY(!out.contains("listening on"));
    QCOMPARE(message.count(QLatin1Char('\n')), 0); // one line
    QCOMPARE(m_mock->totalConnections(), 0);
}

void HeadlessTest::helpAndVersion_data()
{
    QTest::addColumn<QString>("option");
    QTest::addColumn<QString>("expected");
    QTest::newRow("--help") << QStringLiteral("--help") << QStringLiteral("--keys-file");
    QTest::newRow("--version") << QStringLiteral("--version") << QStringLiteral(KEYRELAY_VERSION);
}

void HeadlessTest::helpAndVersion()
{
    QFETCH(QString, option);
    QFETCH(QString, expected);
    QByteArray out;
    QByteArray err;
    const int code = runToExit({ option }, &out, &err);
    QCOMPARE(code, 0);
    QVERIFY2(QString::fromUtf8(out).contains(expected), out.constData());
    QCOMPARE(m_mock->totalConnections(), 0);
}

void HeadlessTest::proxyPasswordNeverInWarnings_data()
{
    QTest::addColumn<QByteArray>("proxy");
    QTest::newRow("https proxy") << QByteArray("https://bob:Pw-secret-4711@proxy.example:8888");
    QTest::newRow("socks4") << QByteArray("socks4://bob:Pw-secret-4711@proxy.example:1080");
    QTest::newRow("port 99999") << QByteArray("http://bob:Pw-secret-4711@proxy.example:99999");
    QTest::newRow("@ and : in the password") << QByteArray("ftp://bob:Pw-secret-4711:x@y@proxy.example:21");
}

void HeadlessTest::proxyPasswordNeverInWarnings()
{
    // An upstream proxy setting KeyRelay cannot use is reported by its name and what is wrong with it,
    // never with its password; the backup of the file (which holds the password) is the owner's alone.
    QFETCH(QByteArray, proxy);
    QTemporaryDir dir;
    const QString configPath = dir.filePath(QStringLiteral("keyrelay.ini"));
    {
        QFile file(configPath);
        QVERIFY(file.open(QIODevice::WriteOnly));
        file.write("[proxy]\nupstream=" + m_mock->url().toEncoded() + "\nupstreamProxy=" + proxy + "\n");
    }
    const quint16 port = startProxy({ QStringLiteral("--config"), configPath, QStringLiteral("--keys-file"),
                                      writeKeysFile(Key1.toUtf8()) },
                                    false);
    QVERIFY(port != 0);
    ::kill(pid_t(m_process->processId()), SIGTERM);
    QVERIFY(m_process->waitForFinished(10000));
    const QByteArray err = m_process->readAllStandardError();
    QVERIFY2(!err.contains("secret-4711") && !err.contains("Pw-secret"), err.constData());
    QVERIFY2(err.contains("proxy/upstreamProxy"), err.constData());
    QVERIFY2(err.contains("line 3: setting proxy/upstreamProxy"), err.constData()); // where (issue 15)
    QVERIFY2(err.contains("upstream proxy must be"), err.constData()); // what is wrong
    QVERIFY2(!m_stdout.contains("secret-4711"), m_stdout.constData());
    // The damaged file is kept aside with a timestamp (issue 15), owner-only.
    const QStringList copies
        = QDir(dir.path()).entryList({ QStringLiteral("keyrelay.ini.damaged-*") }, QDir::Files);
    QCOMPARE(copies.size(), 1);
    const QFileInfo backup(dir.filePath(copies.first()));
    QVERIFY(backup.exists());
    QCOMPARE(backup.permissions()
                 & (QFileDevice::ReadGroup | QFileDevice::ReadOther | QFileDevice::WriteGroup
                    | QFileDevice::WriteOther),
             QFileDevice::Permissions());
}

void HeadlessTest::sharedSettingsProxyPasswordMovedOut()
{
    // keyrelay --headless with the tray app's own settings file moves a password written into
    // proxy/upstreamProxy to the secret store, as the tray app does (here the 0600 secrets.json).
    QTemporaryDir configHome;
    QProcessEnvironment environment = userEnvironment();
    environment.insert(QStringLiteral("XDG_CONFIG_HOME"), configHome.path());
    environment.insert(QStringLiteral("KEYRELAY_KEYSTORE"), QStringLiteral("file"));
    const QString folder = configHome.filePath(QStringLiteral("KeyRelay"));
    QVERIFY(QDir().mkpath(folder));
    const QString settingsPath = QDir(folder).filePath(QStringLiteral("KeyRelay.ini"));
    {
        QFile file(settingsPath);
        QVERIFY(file.open(QIODevice::WriteOnly));
        file.write("[proxy]\nupstream=" + m_mock->url().toEncoded()
                   + "\nupstreamProxy=http://alice:Pw-moved-0815@127.0.0.1:3128\n");
    }
    const quint16 port
        = startProxyIn(environment, { QStringLiteral("--keys-file"), writeKeysFile(Key1.toUtf8()) });
    QVERIFY(port != 0);
    ::kill(pid_t(m_process->processId()), SIGTERM);
    QVERIFY(m_process->waitForFinished(10000));
    const QByteArray err = m_process->readAllStandardError();
    QVERIFY2(!err.contains("Pw-moved-0815"), err.constData());
    QFile settings(settingsPath);
    QVERIFY(settings.open(QIODevice::ReadOnly));
    const QByteArray content = settings.readAll();
    QVERIFY2(!content.contains("Pw-moved-0815"), content.constData());
    QVERIFY2(content.contains("alice@127.0.0.1:3128"), content.constData());
    const QString secretsPath = QDir(folder).filePath(QStringLiteral("secrets.json"));
    QFile secrets(secretsPath);
    QVERIFY(secrets.open(QIODevice::ReadOnly));
    QVERIFY(secrets.readAll().contains("Pw-moved-0815"));
    QCOMPARE(QFileInfo(secretsPath).permissions() & (QFileDevice::ReadGroup | QFileDevice::ReadOther),
             QFileDevice::Permissions());
}

QTEST_GUILESS_MAIN(HeadlessTest)
#include "tst_it_headless.moc"
